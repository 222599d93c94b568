"""Two revisions (or two versions of a text) compared for a page, within a budget.

Pure CPU, no I/O: the service runs ``compare_texts`` in a worker thread, a few
at a time, so a megabyte of text never blocks the event loop.
"""

from __future__ import annotations

from dataclasses import replace

from .. import history
from . import worddiff

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


def text_pairs(old: history.Snapshot, new: history.Snapshot) -> list[tuple[str, str, str]]:
    """(name, old text, new text) of every text either revision has, old ones first."""
    names = [n for n, _ in old.texts] + [n for n, _ in new.texts if n not in dict(old.texts)]
    a, b = dict(old.texts), dict(new.texts)
    return [(n, a.get(n, ""), b.get(n, "")) for n in names]


def summarize(old: history.Snapshot, new: history.Snapshot, texts: list[Compared]) -> str:
    """history.summarize's line, its line counts taken from the bounded comparison
    (history's own runs difflib on up to 200 KB, on the caller's thread)."""
    bare = history.summarize(replace(old, texts=()), replace(new, texts=()))
    parts = [] if bare == history.summarize(new, new) else [bare]
    old_texts, new_texts = dict(old.texts), dict(new.texts)
    for name, rows in texts:
        before, after = old_texts.get(name), new_texts.get(name)
        if before is None or after is None or before == after:
            continue
        where = f"variant {name}" if name else "text"
        if isinstance(rows, str):
            parts.append(f"{where} changed ({len(before):,} -> {len(after):,} characters)")
        else:
            plus, minus = worddiff.line_changes(rows)
            parts.append(f"{where} +{plus} -{minus} lines")
    return "; ".join(parts) or history.summarize(new, new)
