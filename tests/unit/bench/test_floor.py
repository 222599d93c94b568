"""The floor bench's signed sidecar does the work it claims to be the least of:
it checks the operator's real signed entries and writes the file contract's
two files, metadata first, never going back a revision."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import floor
from bench.sidecar_cpu import configmap, signed_body, signed_revisions, text_of
from prompt_contract import objects


@pytest.fixture
def revisions() -> object:
    return signed_revisions()


def test_a_signed_edit_writes_metadata_then_text(tmp_path: Path, revisions: object) -> None:
    sidecar = floor.SignedFloor(str(tmp_path))
    sidecar.handle(signed_body(revisions, "p1", 3))
    text = tmp_path / "p1.txt"
    meta = tmp_path / ".prompts" / "meta" / "p1.json"
    assert text.read_text() == text_of("p1", 3)
    assert (
        json.loads(meta.read_bytes())["revision"]
        == configmap("p1", 3, 5)["metadata"]["annotations"][objects.REVISION_ANNOTATION]
    )
    # Metadata is renamed into place before the text (its change time is not later).
    assert os.stat(meta).st_ctime_ns <= os.stat(text).st_ctime_ns
    assert os.listdir(tmp_path / ".prompts" / "staging") == []
    assert sorted(os.listdir(tmp_path)) == [".prompts", "p1.txt"]


def test_an_older_revision_changes_nothing(tmp_path: Path, revisions: object) -> None:
    sidecar = floor.SignedFloor(str(tmp_path))
    newer, older = signed_body(revisions, "p1", 7), signed_body(revisions, "p1", 3)
    sidecar.handle(newer)
    sidecar.handle(older)
    assert (tmp_path / "p1.txt").read_text() == text_of("p1", 7)


def test_a_tampered_entry_is_refused_and_writes_nothing(tmp_path: Path, revisions: object) -> None:
    sidecar = floor.SignedFloor(str(tmp_path))
    body = json.loads(signed_body(revisions, "p1", 3))
    signed = body["prompts"][0]["signed"]
    signed["sig"] = ("B" if signed["sig"][0] == "A" else "A") + signed["sig"][1:]
    with pytest.raises(SystemExit, match="refused: bad-signature"):
        sidecar.handle(json.dumps(body).encode())
    assert not (tmp_path / "p1.txt").exists()
