"""Two revisions side by side, changed words highlighted.

Lines are matched first (as ``diff`` does); inside a changed block each
old line is compared to its new counterpart word by word, so a one-word edit
in a long paragraph shows as that word, not as the whole paragraph.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

# A line pair larger than this is shown as changed without a word diff (quadratic cost).
MAX_WORD_DIFF_CHARS = 20_000
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")

Kind = Literal["same", "del", "ins"]


@dataclass(frozen=True)
class Segment:
    text: str
    kind: Kind


@dataclass(frozen=True)
class Side:
    number: int | None  # 1-based line number; None for the empty side of an insert/delete
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Row:
    kind: Literal["equal", "change", "delete", "insert"]
    old: Side
    new: Side


_EMPTY = Side(None, ())


def _words(old: str, new: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    if len(old) + len(new) > MAX_WORD_DIFF_CHARS:
        return (Segment(old, "del"),), (Segment(new, "ins"),)
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    left: list[Segment] = []
    right: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            text = "".join(a[i1:i2])
            left.append(Segment(text, "same"))
            right.append(Segment(text, "same"))
            continue
        if i2 > i1:
            left.append(Segment("".join(a[i1:i2]), "del"))
        if j2 > j1:
            right.append(Segment("".join(b[j1:j2]), "ins"))
    return tuple(left), tuple(right)


def side_by_side(old: str, new: str) -> list[Row]:
    """Rows for a two-column view of ``old`` and ``new``."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                text = (Segment(a[i1 + k], "same"),)
                rows.append(Row("equal", Side(i1 + k + 1, text), Side(j1 + k + 1, text)))
            continue
        paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(paired):
            left, right = _words(a[i1 + k], b[j1 + k])
            rows.append(Row("change", Side(i1 + k + 1, left), Side(j1 + k + 1, right)))
        for k in range(i1 + paired, i2):
            rows.append(Row("delete", Side(k + 1, (Segment(a[k], "del"),)), _EMPTY))
        for k in range(j1 + paired, j2):
            rows.append(Row("insert", _EMPTY, Side(k + 1, (Segment(b[k], "ins"),))))
    return rows


def changed_words(rows: list[Row]) -> tuple[int, int]:
    """How many removed and added segments the rows hold (for a one-line summary)."""
    removed = sum(1 for r in rows for s in r.old.segments if s.kind == "del" and s.text.strip())
    added = sum(1 for r in rows for s in r.new.segments if s.kind == "ins" and s.text.strip())
    return removed, added
