"""Reading a prompt directory: one consistent entry per prompt file.

A scan lists the directory, skips hidden names (``.prompts/``, editor swap
files, the kubelet's ``..data``), and reuses the previous entry of every file
whose identity (inode, size, mtime) did not change, so a rescan of a thousand
unchanged prompts costs a thousand ``stat`` calls and nothing more.

Consistency: the sidecar renames the metadata into place before the text, so
a text whose hash disagrees with its metadata was caught between the two
renames; the scan reads both again until they agree. A file written in place
by someone else's tool is read again when it changed while being read.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from prompt_contract.calls import CALL_EXT, CALL_FORM
from prompt_contract.files import PromptMeta, read_meta, read_regular, text_sha256

__all__ = ["Entry", "PromptInfo", "scan_directory"]

logger = logging.getLogger("prompt_client")

Signature = tuple[int, int, int, int]  # device, inode, size, mtime_ns

_MISMATCH_RETRIES = 20  # x 5 ms: the sidecar renames metadata, then text, back to back
_FORM_CHANGE_TRIES = 5  # listings of one key while its file changes form
# File systems stamp mtimes with a coarse clock (a jiffy, up to 10 ms; whole
# seconds on a few), so a file rewritten with the same size within one tick of
# our read, its inode number reused, would look unchanged. As git does for
# "racily clean" index entries, such an entry is checked by content on every
# scan until its read is older than one tick.
_FINE_TICK_NS = 20_000_000
_COARSE_TICK_NS = 2_000_000_000


def _racy(mtime_ns: int, read_at_ns: int) -> bool:
    tick = _COARSE_TICK_NS if mtime_ns % 1_000_000_000 == 0 else _FINE_TICK_NS
    return mtime_ns >= read_at_ns - tick


@dataclass(frozen=True)
class PromptInfo:
    """Where the text served for one prompt came from; consistent with that text.

    ``revision``, ``variant`` and ``source`` (``"<namespace>/<Prompt>"``) come
    from the metadata the sidecar writes and are ``None`` for a file without
    metadata; ``source`` is ``"default"`` for an app default. ``loaded_at`` is
    when the registry read this text; ``sha256`` is the hash of its bytes.
    ``variables``, ``defaults`` and ``format`` are what ``render`` uses.
    """

    name: str
    revision: str | None
    variant: str | None
    source: str | None
    loaded_at: datetime
    sha256: str | None
    variables: tuple[str, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    format: str = "python"
    # "call": the text is a call document (``PromptRegistry.call`` fills it in); None: a text.
    form: str | None = None

    @property
    def has_metadata(self) -> bool:
        """Whether the sidecar's metadata describes this text."""
        return self.revision is not None


@dataclass(frozen=True)
class Entry:
    """One prompt as read from disk (internal to the registry)."""

    text: str
    info: PromptInfo
    signature: Signature  # identity of the file the text came from
    racy: bool = False  # read too soon after a write to trust the signature alone
    # With A/B variants: every variant of this revision, name -> (weight, text),
    # for choices per user or conversation (``render(name, variant_key=...)``).
    variants: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def same_content(self, other: Entry) -> bool:
        a, b = self.info, other.info
        mine = (self.text, a.sha256, a.revision, a.variant, a.source, a.variables, a.format, a.form)
        theirs = (other.text, b.sha256, b.revision, b.variant, b.source, b.variables, b.format)
        return mine == (*theirs, b.form) and (dict(a.defaults), dict(self.variants)) == (
            dict(b.defaults),
            dict(other.variants),
        )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def scan_directory(directory: str, previous: Mapping[str, Entry] | None = None) -> dict[str, Entry]:
    """Read every prompt file in ``directory``; reuse entries whose file did not change.

    The key is the file name without its extension, as in
    ``prompt-hot-reloading``. Hidden names are skipped, and so are files that
    vanish or cannot be read during this scan (the next scan tries again).
    When two files share a key (``a.txt`` and ``a.md``) the first in sorted
    order wins, so the choice never flips between scans; the one the metadata's
    form names wins when the sidecar is between the two steps of a form change
    (``a.json`` renamed in, ``a.txt`` not yet removed).
    """
    previous = previous or {}
    entries: dict[str, Entry] = {}
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return entries
    by_key: dict[str, list[str]] = {}
    for fname in names:
        if not fname.startswith("."):
            by_key.setdefault(os.path.splitext(fname)[0], []).append(fname)
    for name, fnames in by_key.items():
        entry = _load_key(directory, name, fnames, previous.get(name))
        if entry is not None:
            entries[name] = entry
    return entries


def _load_key(directory: str, name: str, fnames: list[str], old: Entry | None) -> Entry | None:
    """The entry for key ``name`` from the first of its files that can be read.

    A file that vanished may have been replaced by the key's file of the other
    form (the sidecar renames the new one in, then removes the old one): the
    directory is listed again, a few times, so the key never goes missing in
    between. A key whose files are all gone was removed; one still changing form
    after every try keeps what the reader had (the next scan catches up).
    """
    for _ in range(_FORM_CHANGE_TRIES):
        if len(fnames) > 1:
            fnames = _preferred_first(fnames, read_meta(directory, name))
        for fname in fnames:
            entry = _load(directory, name, os.path.join(directory, fname), old)
            if entry is not None:
                return entry
        fnames = _files_of(directory, name)
        if not fnames:
            return None
    return old


def _files_of(directory: str, name: str) -> list[str]:
    try:
        listed = os.listdir(directory)
    except OSError:
        return []
    return sorted(f for f in listed if not f.startswith(".") and os.path.splitext(f)[0] == name)


def _preferred_first(fnames: list[str], meta: PromptMeta | None) -> list[str]:
    """``fnames`` (sorted) with the one of the metadata's form first."""
    if meta is None:
        return fnames
    call = meta.form == CALL_FORM
    return sorted(fnames, key=lambda fname: (fname.endswith(CALL_EXT) != call, fname))


def _load(directory: str, name: str, path: str, old: Entry | None) -> Entry | None:
    try:
        st = os.stat(path)  # follows symlinks, as a ConfigMap volume needs
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if old is not None and old.signature == _signature(st) and not old.racy:
        return old
    result: tuple[bytes, Signature] | None = None
    digest = ""
    meta: PromptMeta | None = None
    for _ in range(_MISMATCH_RETRIES):
        read_at = time.time_ns()
        try:
            result = read_stable(path)
        except OSError as exc:
            # There but unreadable right now (permissions, I/O): keep the last good text.
            logger.debug("prompt %r: cannot read %s (%s); keeping what we had", name, path, exc)
            return old
        if result is None:
            return None
        data, signature = result
        racy = _racy(signature[3], read_at)
        digest = text_sha256(data)
        if old is not None and old.signature == signature and old.info.sha256 == digest:
            return old if old.racy == racy else replace(old, racy=racy)
        meta = read_meta(directory, name)
        if meta is None or meta.sha256 == digest:
            return _entry(name, data, digest, meta, signature, racy, old)
        time.sleep(0.005)  # between the sidecar's two renames: read again
    logger.warning(
        "prompt %r: text and metadata keep disagreeing; serving the text without metadata", name
    )
    assert result is not None
    return _entry(name, result[0], digest, None, result[1], racy, old)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_stable(path: str) -> tuple[bytes, Signature] | None:
    """The bytes of regular file ``path`` and its identity, read in one piece.

    ``None`` when it vanished or is not a regular file; ``OSError`` when it
    is there but cannot be read. A file that changed while being read
    (written in place by another tool) is read again.
    """
    for _ in range(50):
        before = _lstat(path)
        if before is None:
            return None
        found = read_regular(path)  # no symlink, no FIFO, bounded: the contract's one read
        if found is None:
            return None
        data, after = found
        signature = _signature(after)
        if _signature(before) == signature and len(data) == after.st_size:
            return data, signature
    raise OSError(errno.EAGAIN, f"{path} keeps changing while it is read")


def _entry(
    name: str,
    data: bytes,
    digest: str,
    meta: PromptMeta | None,
    signature: Signature,
    racy: bool,
    old: Entry | None,
) -> Entry:
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
        form=meta.form if meta else None,
    )
    entry = Entry(text, info, signature, racy, _variants(meta))
    if old is not None and old.same_content(entry):
        # Same text and metadata in a new file: keep what was served, and when.
        return replace(old, signature=signature, racy=racy)
    return entry


def _variants(meta: PromptMeta | None) -> dict[str, tuple[int, str]]:
    """The variants in the metadata as name -> (weight, text); unusable ones left out."""
    found: dict[str, tuple[int, str]] = {}
    for name, spec in (meta.variants if meta else {}).items():
        weight = spec.get("weight") if isinstance(spec, dict) else None
        text = spec.get("text") if isinstance(spec, dict) else None
        if isinstance(weight, int) and isinstance(text, str):
            found[str(name)] = (weight, text)
    return found
