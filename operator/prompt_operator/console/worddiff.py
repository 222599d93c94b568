"""Two revisions side by side, changed words highlighted, at a bounded cost.

Lines are matched first (as ``diff`` does); inside a changed block each
old line is compared to its new counterpart word by word, so a one-word edit
in a long paragraph shows as that word, not as the whole paragraph.

``difflib.SequenceMatcher`` is quadratic or worse on repeated elements (8,000
identical lines took 10 s), and a Prompt may hold 1 MB of text in each of 10
variants. So every comparison spends from one ``Budget`` of matcher steps,
counted before each step is taken: the common head and tail are cut off first
(cheap, and most edits touch a few lines), a line diff that would overspend
raises ``TooLarge`` (the page says "too large to compare"), and a line pair
over 20,000 characters, or whose word diff would overspend, is shown whole.
Long runs of unchanged lines are folded into one row, and at most
``MAX_CHANGED_ROWS`` changed rows are shown, so the page's size is bounded too.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

# Matcher steps one page may spend matching lines, and matching words inside
# changed lines: each about 0.3 s of CPU (see bench/console_diff.py), spent in a
# worker thread, not on the event loop.
LINE_STEPS = 3_000_000
WORD_STEPS = 3_000_000
# One line pair's word diff may use at most this much of WORD_STEPS.
PAIR_STEPS = 200_000
# A line pair longer than this is shown whole: tokenizing it would hold the
# interpreter (and so the event loop) for tens of milliseconds at a time.
MAX_WORD_DIFF_CHARS = 20_000
# More changed rows than this is not a comparison a person reads on a page.
MAX_CHANGED_ROWS = 5_000
# Texts with more rows than this fold runs of unchanged lines, keeping CONTEXT.
FOLD_ABOVE_ROWS = 400
CONTEXT = 3
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")

Kind = Literal["same", "del", "ins"]


class TooLarge(Exception):
    """Comparing these texts would cost more than the page may spend."""


class Steps:
    """Matcher steps left; ``spend`` raises ``TooLarge`` when they run out."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooLarge("the comparison needs more work than a page may spend")


class Budget:
    """What one page may spend: steps for matching lines, and for matching words."""

    def __init__(self, lines: int = LINE_STEPS, words: int = WORD_STEPS) -> None:
        self.lines = Steps(lines)
        self.words = Steps(words)


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
    kind: Literal["equal", "change", "delete", "insert", "fold"]
    old: Side
    new: Side
    folded: int = 0  # for a "fold" row: how many unchanged lines it stands for


_EMPTY = Side(None, ())


class _Matcher(difflib.SequenceMatcher):  # type: ignore[type-arg]
    """SequenceMatcher that pays for each longest-match search before making it.

    The search visits, for each element of ``a[alo:ahi]``, its positions in
    ``b``: their count is the search's cost, charged in advance."""

    def __init__(self, a: Sequence[Hashable], b: Sequence[Hashable], budget: Steps) -> None:
        self._budget = budget
        budget.spend(len(a) + len(b))  # building b's index
        self._a = a
        self._b_len = len(b)
        self._in_b = Counter(b)  # positions of each element in b (no junk: autojunk off)
        super().__init__(None, a, b, autojunk=False)

    def find_longest_match(
        self, alo: int = 0, ahi: int | None = None, blo: int = 0, bhi: int | None = None
    ) -> difflib.Match:
        ahi = len(self._a) if ahi is None else ahi
        bhi = self._b_len if bhi is None else bhi
        self._budget.spend(ahi - alo + 1 + sum(self._in_b[x] for x in self._a[alo:ahi]))
        return super().find_longest_match(alo, ahi, blo, bhi)


Opcode = tuple[str, int, int, int, int]


def _common(same: Callable[[int], bool], most: int) -> int:
    """The largest k <= ``most`` with ``same(k)`` (a common head or tail length),
    by bisection: each test is one slice comparison in C, not a Python loop."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        if same(mid):
            low = mid
        else:
            high = mid - 1
    return low


def opcodes(a: Sequence[Hashable], b: Sequence[Hashable], budget: Steps) -> list[Opcode]:
    """``get_opcodes()`` of ``a`` and ``b``, the common head and tail cut off first."""
    n = min(len(a), len(b))
    head = _common(lambda k: a[:k] == b[:k], n)
    tail = _common(lambda k: a[len(a) - k :] == b[len(b) - k :], n - head)
    out: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    a_mid, b_mid = a[head : len(a) - tail], b[head : len(b) - tail]
    if a_mid or b_mid:
        for op, i1, i2, j1, j2 in _Matcher(a_mid, b_mid, budget).get_opcodes():
            out.append((op, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        out.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return out


def _words(old: str, new: str, budget: Steps) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """The pair's word diff, or the pair whole when it costs more than is left."""
    if len(old) + len(new) > MAX_WORD_DIFF_CHARS:
        return (Segment(old, "del"),), (Segment(new, "ins"),)
    allowed = max(0, min(PAIR_STEPS, budget.left))
    pair = Steps(allowed)
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    ops: list[Opcode] | None
    try:
        ops = opcodes(a, b, pair)
    except TooLarge:
        ops = None
    budget.left -= allowed - max(pair.left, 0)
    if ops is None:
        return (Segment(old, "del"),), (Segment(new, "ins"),)
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in ops:
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


def side_by_side(old: str, new: str, budget: Budget | None = None) -> list[Row]:
    """Rows for a two-column view of ``old`` and ``new``; ``TooLarge`` if comparing
    them costs more than ``budget`` (a fresh page's budget when None)."""
    budget = budget or Budget()
    a, b = old.splitlines(), new.splitlines()
    ops = opcodes(a, b, budget.lines)
    changed = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
    if changed > MAX_CHANGED_ROWS:
        raise TooLarge(f"{changed:,} changed lines (a page shows at most {MAX_CHANGED_ROWS:,})")
    rows: list[Row] = []
    for op, i1, i2, j1, j2 in ops:
        if op == "equal":
            for k in range(i2 - i1):
                text = (Segment(a[i1 + k], "same"),)
                rows.append(Row("equal", Side(i1 + k + 1, text), Side(j1 + k + 1, text)))
            continue
        paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(paired):
            left, right = _words(a[i1 + k], b[j1 + k], budget.words)
            rows.append(Row("change", Side(i1 + k + 1, left), Side(j1 + k + 1, right)))
        for k in range(i1 + paired, i2):
            rows.append(Row("delete", Side(k + 1, (Segment(a[k], "del"),)), _EMPTY))
        for k in range(j1 + paired, j2):
            rows.append(Row("insert", _EMPTY, Side(k + 1, (Segment(b[k], "ins"),))))
    return fold(rows) if len(rows) > FOLD_ABOVE_ROWS else rows


def fold(rows: list[Row]) -> list[Row]:
    """Runs of unchanged rows longer than twice ``CONTEXT`` become one "fold" row."""
    out: list[Row] = []
    run: list[Row] = []

    def flush(first: bool, last: bool) -> None:
        keep_head = 0 if first else CONTEXT
        keep_tail = 0 if last else CONTEXT
        if len(run) <= keep_head + keep_tail + 1:
            out.extend(run)
        else:
            out.extend(run[:keep_head])
            out.append(Row("fold", _EMPTY, _EMPTY, len(run) - keep_head - keep_tail))
            out.extend(run[len(run) - keep_tail :])
        run.clear()

    for row in rows:
        if row.kind == "equal":
            run.append(row)
            continue
        if run:
            flush(first=not out, last=False)
        out.append(row)
    if run:
        flush(first=not out, last=True)
    return out


def line_changes(rows: list[Row]) -> tuple[int, int]:
    """Lines added and removed, as ``diff`` counts them (a changed line is one of each)."""
    added = sum(1 for r in rows if r.kind in ("change", "insert"))
    removed = sum(1 for r in rows if r.kind in ("change", "delete"))
    return added, removed


def changed_words(rows: list[Row]) -> tuple[int, int]:
    """How many removed and added segments the rows hold (for a one-line summary)."""
    removed = sum(1 for r in rows for s in r.old.segments if s.kind == "del" and s.text.strip())
    added = sum(1 for r in rows for s in r.new.segments if s.kind == "ins" and s.text.strip())
    return removed, added
