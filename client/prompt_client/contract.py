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
import itertools
import json
import math
import os
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_EXT",
    "HIDDEN_DIR",
    "MAX_FILE_BYTES",
    "MAX_KEY_BYTES",
    "META_DIR",
    "STAGING_DIR",
    "PromptMeta",
    "choose_variant",
    "key_problem",
    "lookalike_problem",
    "meta_path",
    "now_rfc3339",
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
# 200 bytes of key + an extension + ".json" stays under NAME_MAX (255 bytes).
MAX_KEY_BYTES = 200
CONTRACT_VERSION = 1
# The largest file anyone reads from a prompt directory. A ConfigMap holds at
# most 1 MiB, so a text is smaller and its metadata (which may repeat every
# variant's text, JSON-escaped) at most a few MiB; anything bigger was not
# written by the sidecar and is not read.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Every read in a prompt directory: no symlink is followed, a FIFO or device
# planted there never blocks (O_NONBLOCK), and only regular files are read.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a prompt file, or ``None`` when it can.

    A key is the name apps look a prompt up by; the file is ``<key><ext>``
    directly in the prompt directory, so a key can never be a path.
    """
    if not key:
        return "the key is empty"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"the key is longer than {MAX_KEY_BYTES} bytes in UTF-8"
    if "/" in key or "\\" in key:
        return "the key contains a slash; it names a file, not a path"
    if "\x00" in key:
        return "the key contains a NUL character"
    if key.startswith("."):
        return "the key starts with '.'; hidden names are reserved for metadata"
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        return "the key contains a control character"
    invisible = next((ch for ch in key if unicodedata.category(ch) == "Cf"), None)
    if invisible is not None:
        # Zero-width and bidi characters make a file name look like another one.
        return (
            f"the key contains an invisible formatting character (U+{ord(invisible):04X}); "
            "it would make the file name look like another"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "the key is not valid UTF-8"
    return lookalike_problem(key)


# The key rule against names that look alike. The CRD's CEL says the same with
# RE2 classes (see crds/prompts.yaml), and tests/corpus/keys.json holds the cases
# all three must agree on.
#
# Characters that render as nothing: Unicode's Default_Ignorable_Code_Point
# (some are letters or marks, not Cf: the Hangul fillers, variation selectors)
# and the blank Braille pattern.
_INVISIBLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Conjoining Hangul jamo: NFC writes a modern syllable precomposed, and the API
# server (which cannot normalize) refuses them all, so this rule does too.
_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
# The scripts whose letters look alike ("а" and "a", "ο" and "o").
_LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def _within(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in ranges)


def _script(ch: str) -> str | None:
    """LATIN, GREEK or CYRILLIC for a letter of those scripts, else None."""
    words = unicodedata.name(ch, "").split()
    return next((s for s in _LOOKALIKE_SCRIPTS if s in words), None)


def lookalike_problem(key: str) -> str | None:
    """Why ``key`` could look like another key, or None.

    NFC only (the same name typed on two systems is one key); no character
    that renders as nothing or as a space other than U+0020, no line or
    paragraph separator; no combining mark after a Latin, Greek or Cyrillic
    letter and no conjoining Hangul jamo (precomposed forms exist, and the API
    server can refuse these without normalizing); and no word (a run of
    letters and marks) that mixes Latin, Greek and Cyrillic letters. Other
    scripts may share a word (``iPhone用``), and words of different scripts
    may share a key (``hello-привет``).
    """
    nfc = unicodedata.normalize("NFC", key)
    if nfc != key:
        return (
            f"the key is not in Unicode NFC (composed) form; write it as {nfc!r} "
            f"({' '.join(f'U+{ord(c):04X}' for c in nfc)})"
        )
    for ch in key:
        if ch != " " and unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            return (
                f"the key contains U+{ord(ch):04X} ({unicodedata.name(ch, 'a separator')}); "
                "the only space allowed is U+0020, and no line or paragraph separator"
            )
        if _within(ch, _INVISIBLE):
            return (
                f"the key contains U+{ord(ch):04X}, which renders as nothing; it would make "
                "the file name look like another"
            )
        if _within(ch, _JAMO):
            return (
                f"the key contains the conjoining Hangul jamo U+{ord(ch):04X}; write the "
                "syllable precomposed"
            )
    for before, ch in itertools.pairwise(key):
        if unicodedata.category(ch).startswith("M") and _script(before) is not None:
            return (
                f"the key has the combining mark U+{ord(ch):04X} after {before!r}; use a "
                "precomposed letter or none (such a pair looks like another letter)"
            )
    word: list[str] = []
    for ch in [*key, " "]:
        if unicodedata.category(ch)[0] in "LM":
            word.append(ch)
            continue
        scripts = sorted({s for c in word if (s := _script(c)) is not None})
        if len(scripts) > 1:
            mixed = " and ".join(s.title() for s in scripts)
            return (
                f"the word {''.join(word)!r} in the key mixes {mixed} "
                "letters, which look alike; write each word in one script"
            )
        word = []
    return None


def now_rfc3339() -> str:
    """The time for ``PromptMeta.updated_at``: RFC 3339 in UTC with microseconds."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text_sha256(data: bytes) -> str:
    """Hex SHA-256 of the exact bytes of a prompt file."""
    return hashlib.sha256(data).hexdigest()


def text_path(directory: str, key: str, ext: str = DEFAULT_EXT) -> str:
    """Path of the prompt file for ``key``."""
    return os.path.join(directory, key + ext)


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

    def to_json(self) -> bytes:
        data = asdict(self)
        data["variables"] = list(self.variables)
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


def choose_variant(unit: str, prompt: str, weights: Iterable[tuple[str, int]]) -> str | None:
    """The variant of ``prompt`` that ``unit`` (a pod name, a user id) is served.

    Weighted rendezvous hashing: each variant scores ``-weight / ln(u)`` with
    ``u`` a uniform hash of (prompt, unit, variant), and the best score wins.
    So a variant is chosen with probability proportional to its weight, the
    same unit always gets the same variant while the weights stay, and a weight
    change moves only the units it must (no reshuffle of the rest). The
    operator, the sidecar and the client all call this one function.
    """
    best: str | None = None
    best_score = -math.inf
    for name, weight in weights:
        if weight <= 0:
            continue
        digest = hashlib.sha256(f"{prompt}\x00{unit}\x00{name}".encode()).digest()
        u = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # strictly inside (0, 1)
        score = -weight / math.log(u)
        if score > best_score or (score == best_score and best is not None and name < best):
            best, best_score = name, score
    return best
