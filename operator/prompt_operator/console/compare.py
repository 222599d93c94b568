"""Two revisions (or two versions of a text) compared part by part for a page, within a budget.

Pure CPU, no I/O: the service runs ``compare_texts`` in a worker thread, a few
at a time, so a megabyte of text never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .. import history
from . import callview, worddiff

# One text's comparison: its rows, or why it is too large to compare on a page.
Compared = tuple[str, "list[worddiff.Row] | str"]


def compare_texts(pairs: list[tuple[str, str, str]]) -> list[Compared]:
    """(name, old, new) texts compared within one page's budget."""
    budget = worddiff.Budget()
    out: list[Compared] = []
    for name, old, new in pairs:
        try:
            out.append((name, worddiff.side_by_side(old, new, budget)))
        except worddiff.TooLarge as exc:
            out.append((name, f"{exc} ({len(old):,} and {len(new):,} characters)"))
    return out


def part_pairs(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(heading, old text, new text) of every part either revision ConfigMap serves, old
    ones first: texts, or a call document's messages, model and tools one by one. A part
    only one side has is compared with nothing, so a text and a call revision compare."""
    a, b = callview.revision_parts(old), callview.revision_parts(new)
    names = [n for n, _ in a] + [n for n, _ in b if n not in dict(a)]
    before, after = dict(a), dict(b)
    return [(n, before.get(n, ""), after.get(n, "")) for n in names]


def summarize(
    old: history.Snapshot,
    new: history.Snapshot,
    pairs: list[tuple[str, str, str]],
    texts: list[Compared],
) -> str:
    """history.summarize's line, its line counts taken from the bounded comparison
    (history's own runs difflib on up to 200 KB, on the caller's thread)."""
    bare = history.summarize(replace(old, texts=()), replace(new, texts=()))
    parts = [] if bare == history.summarize(new, new) else [bare]
    for (heading, before, after), (_, rows) in zip(pairs, texts, strict=True):
        if before == after:
            continue
        where = heading or "text"
        if isinstance(rows, str):
            parts.append(f"{where} changed ({len(before):,} -> {len(after):,} characters)")
        else:
            plus, minus = worddiff.line_changes(rows)
            parts.append(f"{where} +{plus} -{minus} lines")
    return "; ".join(parts) or history.summarize(new, new)
