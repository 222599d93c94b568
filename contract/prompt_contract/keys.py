"""What may name a prompt file: the key rules.

A key is the name apps look a prompt up by; the file is ``<key><ext>`` directly
in the prompt directory. The CRD's CEL says the same with RE2 classes (see
crds/prompts.yaml), and tests/corpus/keys.json holds the cases all three must
agree on.
"""

from __future__ import annotations

import itertools
import unicodedata

__all__ = ["MAX_KEY_BYTES", "key_problem", "lookalike_problem"]

# 200 bytes of key + an extension + ".json" stays under NAME_MAX (255 bytes).
MAX_KEY_BYTES = 200


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
    if key.isascii() and key.isprintable():
        # Nearly every key, on every write: printable ASCII has no control or
        # invisible character, is NFC and mixes no scripts, so the rules below
        # have nothing to find (they cost the sidecar 11 µs a call).
        return None
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
