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
"""

from __future__ import annotations

import json
import os
import time

# The hops of one edit, in order. "accepted" and "read" are stamped by the
# bench (the API call returned; a reader outside our code saw the new bytes).
ACCEPTED = "accepted"
SEEN = "seen"  # the operator's handler got the Prompt's watch event
APPLIED = "applied"  # the revision's ConfigMap write returned
SIGNALLED = "signalled"  # the signal to one pod is about to be sent
RECEIVED = "received"  # the sidecar parsed that signal
FETCHED = "fetched"  # the sidecar's GET of the ConfigMap returned
RENAMED = "renamed"  # the new file is in place under its name
READ = "read"
HOPS = (ACCEPTED, SEEN, APPLIED, SIGNALLED, RECEIVED, FETCHED, RENAMED, READ)

# A batch that names more Prompts than this (a restart's catch-up) is not an
# edit: stamping each of its names would only slow the catch-up down.
MAX_NAMES_STAMPED = 16

_fd: int | None = None


def enable(path: str | None) -> None:
    """Append hops to ``path`` from now on; ``None`` turns tracing off."""
    global _fd
    if _fd is not None:
        os.close(_fd)
        _fd = None
    if path:
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def enabled() -> bool:
    return _fd is not None


def mark(hop: str, prompt: str, revision: str = "", pod: str = "") -> None:
    """Stamp ``hop`` for ``prompt`` ("namespace/name") now; free when tracing is off."""
    if _fd is None:
        return
    at = time.time()
    line = {"hop": hop, "at": round(at, 6), "prompt": prompt, "revision": revision, "pod": pod}
    # One write of one short line with O_APPEND: lines from threads never interleave.
    os.write(_fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
