"""The history summary counts changed lines in linear time, exactly for the edits
people make (lines inserted, deleted or replaced anywhere)."""

from __future__ import annotations

import pytest

from prompt_operator import history

BASE = "\n".join(f"line {i}" for i in range(50))


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (BASE + "\nadded", (1, 0)),
        ("first\n" + BASE, (1, 0)),
        (BASE.replace("line 20\n", ""), (0, 1)),
        (BASE.replace("line 20", "changed 20").replace("line 30", "changed 30"), (2, 2)),
        (BASE.replace("line 10\n", "a\nb\nc\n"), (3, 1)),
        (BASE, (0, 0)),
    ],
)
def test_line_changes_are_exact_for_insertions_deletions_and_replacements(
    new: str, expected: tuple[int, int]
) -> None:
    assert history.line_changes(BASE, new) == expected


def test_repeated_lines_count_once_each() -> None:
    assert history.line_changes("x\nx\ny", "x\nx\nx\ny") == (1, 0)


def test_a_moved_line_is_said_to_have_moved() -> None:
    old = history.Snapshot("k", "python", (), (("", "a\nb\nc"),))
    new = history.Snapshot("k", "python", (), (("", "c\na\nb"),))
    assert history.summarize(old, new) == "text +0 -0 lines (lines moved or line endings changed)"
