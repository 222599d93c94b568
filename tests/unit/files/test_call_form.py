"""Call documents on disk: <key>.json whatever the extension, and a key that
moves between the text and the call form never has two files, nor none."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from prompt_client.scan import scan_directory
from prompt_contract.calls import CALL_EXT, CALL_FORM, call_document, dump_call
from prompt_contract.files import PromptMeta, read_meta, text_sha256
from prompt_contract.writer import PromptFiles

CALL = dump_call(
    call_document(
        format="python",
        variables=[],
        defaults={},
        messages=[{"role": "user", "content": "hi"}],
        model={"name": "m", "parameters": {"temperature": 0.5}},
    )
).encode()
TEXT = b"Hello"


def meta(key: str, data: bytes, form: str | None = None) -> PromptMeta:
    digest = text_sha256(data)
    return PromptMeta(key, f"ns/{key}", digest[:12], digest, "2025-01-01T00:00:00Z", form=form)


def top_level(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_a_call_document_is_key_json_and_its_metadata_says_so(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path), ".md")
    assert files.write(meta("greet", CALL, CALL_FORM), CALL)
    assert top_level(tmp_path) == ["greet.json"]
    assert (tmp_path / "greet.json").read_bytes() == CALL
    stored = json.loads((tmp_path / ".prompts/meta/greet.json").read_bytes())
    assert stored["form"] == "call"
    assert files.keys() == {"greet"}
    assert not files.write(meta("greet", CALL, CALL_FORM), CALL)  # already current


def test_a_text_metadata_has_no_form_field(tmp_path: Path) -> None:
    PromptFiles(str(tmp_path)).write(meta("greet", TEXT), TEXT)
    assert "form" not in json.loads((tmp_path / ".prompts/meta/greet.json").read_bytes())
    found = read_meta(str(tmp_path), "greet")
    assert found is not None and found.form is None


@pytest.mark.parametrize("ext", [".txt", ".json"])
def test_moving_between_forms_leaves_one_file(tmp_path: Path, ext: str) -> None:
    files = PromptFiles(str(tmp_path), ext)
    files.write(meta("greet", TEXT), TEXT)
    assert top_level(tmp_path) == [f"greet{ext}"]
    assert files.write(meta("greet", CALL, CALL_FORM), CALL)
    assert top_level(tmp_path) == ["greet.json"]
    assert files.write(meta("greet", TEXT), TEXT)
    assert top_level(tmp_path) == [f"greet{ext}"]
    assert (tmp_path / f"greet{ext}").read_bytes() == TEXT
    assert files.remove("greet") and top_level(tmp_path) == []
    files.write(meta("greet", CALL, CALL_FORM), CALL)
    assert files.remove("greet") and top_level(tmp_path) == []
    assert not files.remove("greet")


def test_a_leftover_file_of_the_other_form_is_removed_on_the_next_write(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("greet", CALL, CALL_FORM), CALL)
    (tmp_path / "greet.txt").write_bytes(TEXT)  # say a crash between rename and unlink
    assert files.write(meta("greet", CALL, CALL_FORM), CALL)  # not "already current"
    assert top_level(tmp_path) == ["greet.json"]


def test_staged_call_documents_commit_to_key_json(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("greet", TEXT), TEXT)
    staged = files.stage(meta("greet", CALL, CALL_FORM), CALL)
    assert top_level(tmp_path) == ["greet.txt"]
    files.commit(staged)
    assert top_level(tmp_path) == ["greet.json"]


def test_a_reader_never_misses_the_key_while_it_changes_form(tmp_path: Path) -> None:
    """A reader scanning the directory in a loop while the writer flips the form
    sees the key every time, with a text that matches its form."""
    files = PromptFiles(str(tmp_path))
    files.write(meta("greet", TEXT), TEXT)
    stop = threading.Event()
    seen: list[tuple[bool, str | None, str]] = []

    def read() -> None:
        entries: dict = {}
        while not stop.is_set():
            entries = scan_directory(str(tmp_path), entries)
            entry = entries.get("greet")
            seen.append((entry is not None, entry and entry.info.form, entry.text if entry else ""))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(150):
            files.write(meta("greet", CALL, CALL_FORM), CALL)
            files.write(meta("greet", TEXT), TEXT)
    finally:
        stop.set()
        reader.join()
    assert seen and all(found for found, _, _ in seen)
    assert {(form, text) for _, form, text in seen} <= {
        (None, TEXT.decode()),
        (CALL_FORM, CALL.decode()),
    }
    assert os.listdir(tmp_path / ".prompts/staging") == []
    assert CALL_EXT == ".json"
