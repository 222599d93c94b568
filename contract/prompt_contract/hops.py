"""Where an edit's time goes: each process stamps the hops it sees.

Off by default. A process started with ``--trace-file PATH`` (operator and
sidecar) appends one JSON line per hop of every edit to PATH, with the wall
clock it read at that moment::

    {"hop": "signalled", "at": 1764440000.123456, "prompt": "ns/greeting",
     "revision": "7f3a9c2e1b", "pod": "ns/app-0"}

The processes share one clock on one machine, so lines from different files
line up; `make bench` joins them with the times it takes itself (when the API
call returned, when a separate reader saw the bytes) into a table per hop.
Stamps are taken where each step ends, so the difference between two
consecutive hops is what the step between them cost.

PATH must be a regular file (created if missing): a symbolic link, a FIFO or a
device is refused with ``TraceFileError``, so a trace file planted by someone
else can neither redirect the writes nor block the process. The file grows to
``MAX_TRACE_BYTES`` (64 MiB, about 500,000 hops) at most: past that, tracing
stops with one warning (a sidecar stamps names from any signal it gets).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from json.encoder import encode_basestring_ascii as _quote

# The hops of one edit, in order. "accepted" and "read" are stamped by the
# bench (the API call returned; a reader outside our code saw the new bytes).
ACCEPTED = "accepted"
SEEN = "seen"  # the operator's handler got the Prompt's watch event
APPLIED = "applied"  # the revision's ConfigMap write returned
SIGNALLED = "signalled"  # the signal to one pod is about to be sent
RECEIVED = "received"  # the sidecar parsed that signal
VERIFIED = "verified"  # the sidecar checked the signed revision the signal carried
FETCHED = "fetched"  # the sidecar's GET of the ConfigMap returned (a signal it could not verify)
RENAMED = "renamed"  # the new file is in place under its name
READ = "read"
HOPS = (ACCEPTED, SEEN, APPLIED, SIGNALLED, RECEIVED, VERIFIED, FETCHED, RENAMED, READ)

# A batch that names more Prompts than this (a restart's catch-up) is not an
# edit: stamping each of its names would only slow the catch-up down.
MAX_NAMES_STAMPED = 16

MAX_TRACE_BYTES = 64 * 1024 * 1024

logger = logging.getLogger(__name__)

_fd: int | None = None
_room = 0  # bytes the file may still grow by
_cap = MAX_TRACE_BYTES
_lock = threading.Lock()


class TraceFileError(ValueError):
    """The trace file cannot be used; the message says why and what to give instead."""


def _open_regular(path: str) -> int:
    """``path`` opened for appending, refused unless it is (or becomes) a regular file."""
    # O_NOFOLLOW: a symlink in the last component is refused, never followed.
    # O_NONBLOCK: opening a FIFO never waits for a reader (it fails, or is
    # refused by the check below); on a regular file it changes nothing.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    hint = "give the path of a regular file (or of one to create)"
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TraceFileError(f"trace file {path}: is a symbolic link; {hint}") from None
        if exc.errno == errno.ENXIO:
            raise TraceFileError(f"trace file {path}: is a FIFO; {hint}") from None
        raise TraceFileError(f"trace file {path}: {exc.strerror}; {hint}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or other special file"
        raise TraceFileError(f"trace file {path}: is {kind}; {hint}")
    return fd


def enable(path: str | None, max_bytes: int = MAX_TRACE_BYTES) -> None:
    """Append hops to ``path`` from now on, until it holds ``max_bytes``; ``None``
    turns tracing off. Raises ``TraceFileError`` unless ``path`` is a regular file."""
    global _fd, _room, _cap
    with _lock:
        _cap = max_bytes
        if _fd is not None:
            os.close(_fd)
            _fd = None
        if path:
            fd = _open_regular(path)
            _room = max_bytes - os.fstat(fd).st_size
            _fd = fd


def enabled() -> bool:
    return _fd is not None


def mark(hop: str, prompt: str, revision: str = "", pod: str = "") -> None:
    """Stamp ``hop`` for ``prompt`` ("namespace/name") now; free when tracing is off."""
    global _fd, _room
    if _fd is None:
        return
    # The line formatted here: json.dumps of a dict costs a hop five times as much.
    data = (
        f'{{"hop":{_quote(hop)},"at":{time.time():.6f},"prompt":{_quote(prompt)},'
        f'"revision":{_quote(revision)},"pod":{_quote(pod)}}}\n'
    ).encode()
    with _lock:
        if _fd is None:
            return
        if len(data) > _room:
            os.close(_fd)
            _fd = None
            logger.warning("trace file full (%d bytes at most): tracing stopped", _cap)
            return
        _room -= len(data)
        # One write of one short line with O_APPEND: lines never interleave.
        os.write(_fd, data)
