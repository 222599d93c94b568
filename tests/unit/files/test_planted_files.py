"""FIFOs, symlinks and huge files planted in a prompt directory: every read of the
sidecar and of the client opens without following links and without blocking,
and reads only regular files of bounded size."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from prompt_client.scan import scan_directory
from prompt_contract.files import MAX_FILE_BYTES, META_DIR, read_meta, read_regular
from prompt_contract.writer import PromptFiles
from tests.reliability.report import Observed


def finishes(call: Callable[[], object], seconds: float = 5.0) -> object:
    """``call()``'s result, or a failure if it blocks (as an open of a FIFO would)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return result[0]


@pytest.mark.reliability(
    case="S-files FIFO",
    did="plant a FIFO as .prompts/meta/<key>.json (and as a prompt file), then scan with "
    "the client and read metadata with the sidecar",
)
def test_a_fifo_in_the_metadata_directory_hangs_nobody(tmp_path: Path, observed: Observed) -> None:
    files = PromptFiles(str(tmp_path))
    (tmp_path / "a.txt").write_bytes(b"hello")
    (tmp_path / META_DIR).mkdir(parents=True)
    os.mkfifo(tmp_path / META_DIR / "a.json")
    os.mkfifo(tmp_path / "b.txt")
    scanned = finishes(lambda: scan_directory(str(tmp_path)))
    assert isinstance(scanned, dict) and sorted(scanned) == ["a"]
    assert finishes(lambda: files.current("a")) is None
    assert finishes(files.all_meta) == {}
    assert finishes(lambda: read_meta(str(tmp_path), "a")) is None
    observed("the client's scan and the sidecar's metadata reads returned at once; FIFOs skipped")


def test_symlinks_and_oversized_files_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    (tmp_path / "link.txt").symlink_to(secret)
    assert read_regular(str(tmp_path / "link.txt")) is None
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert read_regular(str(big)) is None
    assert read_regular(str(tmp_path / "missing")) is None
    found = read_regular(str(secret))
    assert found is not None and found[0] == b"not yours"
