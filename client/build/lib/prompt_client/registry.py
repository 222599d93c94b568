"""A hot-reloading prompt registry that reads the directory the sidecar writes.

Reads never touch the disk: the registry holds an immutable dict of entries
and swaps it for a new one whenever a watcher thread sees the directory change
(plus a periodic rescan as a safety net). So ``registry["name"]`` is lock-free,
never blocks an asyncio loop, and never returns half a file: the sidecar
renames whole files into place, and the registry checks each text against the
content hash in the sidecar's metadata before it publishes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

from .contract import HIDDEN_DIR, PromptMeta, read_meta, text_sha256
from .templates import TemplateError, render_template
from .usage import UsageLog

logger = logging.getLogger("prompt_client")

ChangeCallback = Callable[[str, "str | None"], None]
"""Called with (name, new revision); the revision is None when the prompt was removed
or has no metadata."""

_MISMATCH_RETRIES = 20  # ~0.1 s: the sidecar renames metadata, then text, back to back


@dataclass(frozen=True)
class PromptInfo:
    """Where a prompt's text came from; consistent with the text served with it."""

    name: str
    revision: str | None
    variant: str | None
    source: str | None  # "<namespace>/<Prompt>" as the operator named it, or "default"
    loaded_at: datetime
    sha256: str | None
    variables: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    format: str = "python"


@dataclass(frozen=True)
class _Entry:
    text: str
    info: PromptInfo
    signature: tuple[int, int, int]  # inode, size, mtime_ns of the file it came from


class PromptSource(Protocol):
    """The ``prompt-hot-reloading`` source interface, which any source may implement."""

    def load_all(self) -> dict[str, str]: ...

    def watch(self, on_change: Callable[[str, str], None]) -> None: ...


def _now() -> datetime:
    return datetime.now(timezone.utc)


def scan_directory(
    directory: str, previous: Mapping[str, _Entry] | None = None
) -> dict[str, _Entry]:
    """Read every prompt file in ``directory``; reuse entries whose file did not change.

    Hidden names are skipped (they are not prompts), files that vanish or cannot
    be read are left out of this scan, and a text whose content hash disagrees
    with its metadata is read again until they agree.
    """
    previous = previous or {}
    entries: dict[str, _Entry] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return entries
    for fname in names:
        if fname.startswith("."):
            continue
        name = os.path.splitext(fname)[0]
        path = os.path.join(directory, fname)
        entry = _load(directory, name, path, previous.get(name))
        if entry is not None:
            entries[name] = entry
    return entries


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _load(directory: str, name: str, path: str, old: _Entry | None) -> _Entry | None:
    for _ in range(_MISMATCH_RETRIES):
        signature = _signature(path)
        if signature is None:
            return None
        if old is not None and old.signature == signature:
            return old
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None  # vanished or unreadable right now; the next scan tries again
        digest = text_sha256(data)
        meta = read_meta(directory, name)
        if meta is None or meta.sha256 == digest:
            return _entry(name, data, digest, meta, signature)
        time.sleep(0.005)  # between the sidecar's two renames: read again
    logger.warning("prompt %r: text and metadata disagree; serving the text without metadata", name)
    assert signature is not None
    return _entry(name, data, digest, None, signature)


def _entry(
    name: str, data: bytes, digest: str, meta: PromptMeta | None, sig: tuple[int, int, int]
) -> _Entry:
    text = data.decode("utf-8", errors="replace")
    info = PromptInfo(
        name=name,
        revision=meta.revision if meta else None,
        variant=meta.variant if meta else None,
        source=meta.prompt if meta else None,
        loaded_at=_now(),
        sha256=digest,
        variables=meta.variables if meta else (),
        defaults=dict(meta.defaults) if meta else {},
        format=meta.format if meta else "python",
    )
    return _Entry(text, info, sig)


class PromptSnapshot(Mapping[str, str]):
    """An immutable view of every prompt at one moment (one conversation's worth)."""

    def __init__(self, entries: Mapping[str, _Entry], defaults: Mapping[str, str]) -> None:
        self._entries = entries
        self._defaults = MappingProxyType(dict(defaults))

    def __getitem__(self, name: str) -> str:
        entry = self._entries.get(name)
        if entry is not None:
            return entry.text
        return self._defaults[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._entries) | set(self._defaults)))

    def __len__(self) -> int:
        return len(set(self._entries) | set(self._defaults))

    def info(self, name: str) -> PromptInfo:
        """Revision, variant and source of the text this snapshot serves for ``name``."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.info
        if name in self._defaults:
            return PromptInfo(name, None, None, "default", _now(), None)
        raise KeyError(name)

    def render(self, name: str, /, **variables: Any) -> str:
        """Fill in ``name``'s placeholders with the restricted rules the operator checks.

        Raises ``MissingVariableError`` or ``UnknownVariableError`` (both
        ``RenderError``) naming the prompt, the variable and the declared ones.
        """
        text = self[name]
        info = self.info(name)
        if info.format == "raw":
            if variables:
                raise TemplateError(
                    "RawPrompt", f"prompt {name!r} has format raw; it takes no variables"
                )
            return text
        declared = info.variables if info.revision is not None else None
        return render_template(
            text, variables, defaults=info.defaults, prompt=name, declared=declared
        )


class PromptRegistry(Mapping[str, str]):
    """Prompts by name, kept current as files change; a drop-in for
    ``prompt_hot_reloading.PromptRegistry``.

    ``PromptRegistry("prompts")`` or ``PromptRegistry(FileSystemSource("prompts"))``
    read a directory; any other object with ``load_all()`` and ``watch()`` (for
    example ``prompt-hot-reloading``'s ``S3PollingSource``) works too.
    ``defaults`` are served for names that have no file.
    """

    def __init__(
        self,
        prompt_source: PromptSource | str | os.PathLike[str],
        *,
        defaults: Mapping[str, str] | None = None,
        watch: bool = True,
        rescan_interval: float = 2.0,
    ) -> None:
        from .sources import FileSystemSource

        if isinstance(prompt_source, (str, os.PathLike)):
            prompt_source = FileSystemSource(os.fspath(prompt_source))
        self.prompt_source = prompt_source
        self._defaults = dict(defaults or {})
        self._defaults_logged: set[str] = set()
        self._callbacks: list[ChangeCallback] = []
        self._lock = threading.Lock()  # serialises writers; readers never wait
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._generation = 0
        self.usage = UsageLog()
        self._directory: str | None = None
        if isinstance(prompt_source, FileSystemSource):
            self._directory = prompt_source.prompt_dir
            self._entries: Mapping[str, _Entry] = scan_directory(self._directory)
            if watch:
                prompt_source.start_watcher(self.refresh, self._stop, rescan_interval)
        else:
            self._entries = {
                name: _Entry(text, PromptInfo(name, None, None, None, _now(), None), (0, 0, 0))
                for name, text in prompt_source.load_all().items()
            }
            if watch:
                prompt_source.watch(self._set_text)

    # -- reading -------------------------------------------------------------------

    def __getitem__(self, name: str) -> str:
        entry = self._entries.get(name)
        if entry is not None:
            return entry.text
        if name in self._defaults:
            if name not in self._defaults_logged:
                self._defaults_logged.add(name)
                logger.warning("prompt %r is missing; serving the app's default", name)
            return self._defaults[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._defaults

    def snapshot(self) -> PromptSnapshot:
        """Every prompt as it is now, frozen: hold it for a whole conversation."""
        return PromptSnapshot(self._entries, self._defaults)

    def info(self, name: str) -> PromptInfo:
        """Revision, variant, source and load time of what ``registry[name]`` serves."""
        return self.snapshot().info(name)

    def render(self, name: str, /, **variables: Any) -> str:
        """Fill in ``name``'s ``{placeholders}`` (see ``PromptSnapshot.render``)."""
        return self.snapshot().render(name, **variables)

    def log_usage(self, name: str, /, **metadata: Any) -> dict[str, Any]:
        """Record that the app used ``name`` (with revision and variant) for an outcome.

        The record goes to the ``prompt_client.usage`` logger, to every callback
        registered with ``on_usage``, and to a Prometheus counter when
        ``prometheus-client`` is installed. Returns the record.
        """
        return self.usage.record(self.info(name), metadata)

    def on_usage(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(record)`` for every ``log_usage`` (send it to your tracker)."""
        self.usage.add_callback(callback)

    # -- changes -------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(name, revision)`` after a prompt changes or disappears.

        It runs on the watcher thread; one that raises is logged and never stops
        the watcher.
        """
        self._callbacks.append(callback)

    def wait_for_change(self, timeout: float | None = None) -> bool:
        """Block until the next change is published (for tests and scripts)."""
        with self._changed:
            start = self._generation
            return self._changed.wait_for(lambda: self._generation != start, timeout)

    def refresh(self) -> None:
        """Rescan the directory now (the watcher does this on every change)."""
        if self._directory is None:
            return
        with self._lock:
            old = self._entries
            new = scan_directory(self._directory, old)
            changed = [
                (name, entry.info.revision)
                for name, entry in new.items()
                if old.get(name) is not entry
            ] + [(name, None) for name in old if name not in new]
            if not changed:
                return
            self._entries = new  # one reference swap: readers see old or new, never a mix
        self._publish(changed)

    def _set_text(self, name: str, text: str) -> None:
        with self._lock:
            entries = dict(self._entries)
            entries[name] = _Entry(
                text, PromptInfo(name, None, None, None, _now(), None), (0, 0, 0)
            )
            self._entries = entries
        self._publish([(name, None)])

    def _publish(self, changed: list[tuple[str, str | None]]) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
        for name, revision in changed:
            for callback in list(self._callbacks):
                try:
                    callback(name, revision)
                except Exception:
                    logger.exception("on_change callback failed for prompt %r", name)

    def close(self) -> None:
        """Stop watching (the registry keeps serving what it has)."""
        self._stop.set()

    def __enter__(self) -> PromptRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PromptRegistry({sorted(self)!r})"


__all__ = ["HIDDEN_DIR", "PromptInfo", "PromptRegistry", "PromptSnapshot", "scan_directory"]
