"""The word diff's bound: whatever two texts within the CRD's limits (1 MB each)
are compared, the matcher does at most a page's budget of steps, and the page
shows at most MAX_CHANGED_ROWS changed rows and folds long unchanged runs."""

from __future__ import annotations

import random

import pytest

from prompt_operator.console import worddiff
from prompt_operator.console.compare import compare_texts
from tests.reliability.report import Observed


def spent(budget: worddiff.Budget) -> tuple[int, int]:
    return worddiff.LINE_STEPS - budget.lines.left, worddiff.WORD_STEPS - budget.words.left


def lines(values: list[str]) -> str:
    return "\n".join(values) + "\n"


@pytest.mark.reliability(
    case="C-diff-quadratic",
    did="compare 8,000 identical lines; the same framed by one differing line at each "
    "end; 1 MB of lines drawn from 120 values; one 1 MB line changed in two words",
)
def test_every_comparison_within_the_crd_limits_has_a_bounded_cost(observed: Observed) -> None:
    same = ["the same line of a prompt"] * 8000
    budget = worddiff.Budget()
    rows = worddiff.side_by_side(lines(same), lines(same), budget)
    assert spent(budget)[0] == 0  # head and tail cut off: no matcher at all
    assert [r.kind for r in rows] == ["fold"] and rows[0].folded == 8000

    with pytest.raises(worddiff.TooLarge):  # 64 M steps of matching, charged before any
        worddiff.side_by_side(lines(["A", *same, "B"]), lines(["C", *same, "D"]))

    rng = random.Random(1)
    values = [f"line {i} of the prompt" for i in range(120)]
    big_a = lines([rng.choice(values) for _ in range(45_000)])[:1_000_000]
    big_b = lines([rng.choice(values) for _ in range(45_000)])[:1_000_000]
    [(_, shown)] = compare_texts([("", big_a, big_b)])
    assert isinstance(shown, str) and "characters" in shown  # "too large to compare"

    words = " ".join(f"w{i % 50}" for i in range(160_000))[:1_000_000]
    edited = words.replace("w7 ", "X ", 1).replace("w9 ", "Y ", 1)
    budget = worddiff.Budget()
    rows = worddiff.side_by_side(words, edited, budget)
    assert [r.kind for r in rows] == ["change"]
    assert spent(budget)[1] <= worddiff.PAIR_STEPS
    observed(
        "identical: 0 matcher steps, one fold row; framed, random 1 MB: too large to "
        f"compare within {worddiff.LINE_STEPS:,} steps; a 1 MB line: one row"
    )


def test_a_text_with_many_rows_folds_its_unchanged_runs_around_the_change() -> None:
    old = [f"line {i}" for i in range(1000)]
    new = [*old[:500], "changed", *old[501:]]
    rows = worddiff.side_by_side(lines(old), lines(new))
    kinds = [r.kind for r in rows]
    assert kinds == ["fold", "equal", "equal", "equal", "change", "equal", "equal", "equal", "fold"]
    assert (rows[0].folded, rows[-1].folded) == (497, 496)
    assert worddiff.line_changes(rows) == (1, 1)
    small = worddiff.side_by_side("a\nb\nc\n", "a\nB\nc\n")
    assert [r.kind for r in small] == ["equal", "change", "equal"]  # short texts: whole


def test_more_changed_lines_than_a_page_shows_is_too_large() -> None:
    old = lines([f"old {i}" for i in range(worddiff.MAX_CHANGED_ROWS + 1)])
    new = lines([f"new {i}" for i in range(worddiff.MAX_CHANGED_ROWS + 1)])
    with pytest.raises(worddiff.TooLarge, match="changed lines"):
        worddiff.side_by_side(old, new, worddiff.Budget(lines=10**9))


def test_a_word_diff_over_its_share_shows_the_line_pair_whole() -> None:
    old = " ".join(["x", *["a"] * 3000, "y"])
    new = " ".join(["X", *["a"] * 3000, "Y"])  # changed at both ends: the middle is matched
    budget = worddiff.Budget(words=100)
    [row] = worddiff.side_by_side(old, new, budget)
    assert row.kind == "change"
    assert row.old.segments == (worddiff.Segment(old, "del"),)
    assert budget.words.left == 0
