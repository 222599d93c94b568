"""Helpers for the client tests: the sidecar's own writer and deadline waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.writer import PromptFiles


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.002)


def meta_for(key: str, data: bytes, **extra: Any) -> PromptMeta:
    digest = text_sha256(data)
    return PromptMeta(
        key=key,
        prompt=f"ns/{key}",
        revision=digest[:12],
        sha256=digest,
        updated_at="2025-01-01T00:00:00Z",
        **extra,
    )


class Writer:
    """Writes prompt files exactly as the sidecar does."""

    def __init__(self, directory: Path) -> None:
        self.files = PromptFiles(str(directory))

    def put(self, key: str, text: str | bytes, **extra: Any) -> str:
        """Write ``key``; returns its revision."""
        data = text.encode() if isinstance(text, str) else text
        meta = meta_for(key, data, **extra)
        self.files.write(meta, data)
        return meta.revision

    def remove(self, key: str) -> None:
        self.files.remove(key)


def their_registry(directory: Path) -> Any:
    """prompt-hot-reloading 0.1.4 reading ``directory``, set up as its README says."""
    from prompt_hot_reloading import PromptRegistry as TheirRegistry
    from prompt_hot_reloading.prompt_source.file_system_source import (
        FileSystemSource as TheirSource,
    )

    return TheirRegistry(TheirSource(str(directory)))
