"""The file contract between the sidecar (writer) and apps (readers).

Layout of a prompt directory ``DIR``::

    DIR/<key><ext>                  the prompt text, exact UTF-8 bytes
    DIR/.prompts/meta/<key>.json    metadata, written before the text
    DIR/.prompts/staging/           where new files are written, then renamed

Readers such as ``prompt-hot-reloading`` watch ``DIR`` without recursion, so
they never see the hidden subdirectory. A reader checks that the text it read
hashes to ``sha256`` in the metadata; when it does not, the writer is between
the two renames and the reader reads again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field

from .calls import CALL_EXT, CALL_FORM

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_EXT",
    "HIDDEN_DIR",
    "MAX_FILE_BYTES",
    "META_DIR",
    "STAGING_DIR",
    "PromptMeta",
    "file_ext",
    "meta_path",
    "read_meta",
    "read_regular",
    "text_path",
    "text_sha256",
]

DEFAULT_EXT = ".txt"
HIDDEN_DIR = ".prompts"
META_DIR = os.path.join(HIDDEN_DIR, "meta")
STAGING_DIR = os.path.join(HIDDEN_DIR, "staging")
META_SUFFIX = ".json"
CONTRACT_VERSION = 1
# The largest file anyone reads from a prompt directory. A ConfigMap holds at
# most 1 MiB, so a text is smaller and its metadata (which may repeat every
# variant's text, JSON-escaped) at most a few MiB; anything bigger was not
# written by the sidecar and is not read.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Every read in a prompt directory: no symlink is followed, a FIFO or device
# planted there never blocks (O_NONBLOCK), and only regular files are read.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def text_sha256(data: bytes) -> str:
    """Hex SHA-256 of the exact bytes of a prompt file."""
    return hashlib.sha256(data).hexdigest()


def text_path(directory: str, key: str, ext: str = DEFAULT_EXT, form: str | None = None) -> str:
    """Path of the prompt file for ``key``: ``<key><ext>`` for a text, ``<key>.json``
    for a call document (``form`` "call"), whatever ``ext`` is."""
    return os.path.join(directory, key + file_ext(ext, form))


def file_ext(ext: str, form: str | None) -> str:
    """The extension of a prompt file of ``form`` when texts end in ``ext``."""
    return CALL_EXT if form == CALL_FORM else ext


def meta_path(directory: str, key: str) -> str:
    """Path of the metadata file for ``key``."""
    return os.path.join(directory, META_DIR, key + META_SUFFIX)


@dataclass(frozen=True)
class PromptMeta:
    """What the sidecar records about one prompt file.

    ``sha256`` is the hash of the text file's bytes, so a reader can tell
    whether the text it read belongs to this metadata. ``variables`` are the
    declared variable names, ``defaults`` their default values.
    """

    key: str
    prompt: str  # "<namespace>/<name>" of the source Prompt
    revision: str
    sha256: str
    updated_at: str  # RFC 3339, UTC
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    format: str = "python"
    # With A/B variants: the variant this file holds, and every variant of the
    # revision as {name: {"weight": int, "text": str}} for per-user choices.
    variant: str | None = None
    variants: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION
    # "call" when the file is a call document (``<key>.json``, see
    # ``prompt_contract.calls``); None for a text, and then the JSON has no
    # "form" at all, so a text's metadata is byte for byte what it always was.
    form: str | None = None

    def to_json(self) -> bytes:
        # A shallow copy, not ``asdict``: its deep copy was a fifth of the
        # sidecar's decisions per write, and json.dumps copies nothing anyway.
        data = dict(vars(self))
        data["variables"] = list(self.variables)
        if self.form is None:
            del data["form"]
        return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> PromptMeta:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("metadata is not a JSON object")
        return cls(
            key=str(data["key"]),
            prompt=str(data.get("prompt", "")),
            revision=str(data["revision"]),
            sha256=str(data["sha256"]),
            updated_at=str(data.get("updated_at", "")),
            variables=tuple(str(v) for v in data.get("variables", ())),
            defaults={str(k): str(v) for k, v in dict(data.get("defaults", {})).items()},
            format=str(data.get("format", "python")),
            variant=data.get("variant"),
            variants=dict(data.get("variants", {})),
            version=int(data.get("version", CONTRACT_VERSION)),
            form=None if data.get("form") is None else str(data["form"]),
        )


def read_regular(
    path: str, dir_fd: int | None = None, limit: int = MAX_FILE_BYTES
) -> tuple[bytes, os.stat_result] | None:
    """The bytes of regular file ``path`` (relative to ``dir_fd`` if given) and its
    ``fstat`` after the read; ``None`` when it is missing, a symlink, not a
    regular file (a FIFO, a device, a directory) or larger than ``limit`` bytes.
    ``OSError`` when it is there but cannot be read.

    Opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` on the
    open descriptor, so what is read is what was checked.
    """
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: never followed
            return None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        size = 0
        while size <= limit and (chunk := os.read(fd, min(limit + 1 - size, 1 << 20))):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew while being read
            return None
        return b"".join(chunks), os.fstat(fd)
    finally:
        os.close(fd)


def read_meta(directory: str, key: str) -> PromptMeta | None:
    """The metadata for ``key``, or ``None`` when absent or unreadable."""
    try:
        found = read_regular(meta_path(directory, key))
        return None if found is None else PromptMeta.from_json(found[0])
    except (OSError, ValueError, KeyError, TypeError):
        return None
