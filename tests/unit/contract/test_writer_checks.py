"""What the writer checks before it writes, on every write, although it
remembers the keys it has already found good (see ``PromptFiles._checked_meta``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import prompt_contract.writer
from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.writer import PromptFiles


def meta(key: str, data: bytes, revision: str = "r1") -> PromptMeta:
    return PromptMeta(
        key=key,
        prompt=f"ns/{key}",
        revision=revision,
        sha256=text_sha256(data),
        updated_at="2026-01-01T00:00:00Z",
    )


def test_a_bad_key_is_refused_every_time(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    for _ in range(2):
        with pytest.raises(ValueError, match="refusing prompt key"):
            files.write(meta("../escape", b"x"), b"x")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_key_written_before_still_needs_a_text_that_matches_its_hash(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    assert files.write(meta("p", b"one"), b"one")
    with pytest.raises(ValueError, match="sha256 does not match"):
        files.write(
            dataclasses.replace(meta("p", b"two", "r2"), sha256=text_sha256(b"one")), b"two"
        )
    assert (tmp_path / "p.txt").read_bytes() == b"one"


def test_the_keys_remembered_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompt_contract.writer, "MAX_CHECKED_KEYS", 3)
    files = PromptFiles(str(tmp_path))
    for i in range(10):
        assert files.write(meta(f"p{i}", b"t"), b"t")
    assert len(files._checked) <= 3
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == sorted(f"p{i}.txt" for i in range(10))


def test_an_edit_is_written_and_a_replay_of_the_same_metadata_is_not(tmp_path: Path) -> None:
    # An edit changes the hash, so the old metadata is not even parsed; the same
    # metadata again (another updated_at aside) writes nothing.
    files = PromptFiles(str(tmp_path))
    assert files.write(meta("p", b"one"), b"one")
    assert files.write(meta("p", b"two", "r2"), b"two")
    again = dataclasses.replace(meta("p", b"two", "r2"), updated_at="2027-01-01T00:00:00Z")
    assert not files.write(again, b"two")
    assert (tmp_path / "p.txt").read_bytes() == b"two"
