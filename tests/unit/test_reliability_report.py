"""The reliability report's table: one row per case, in case order, escaped."""

from __future__ import annotations

from tests.reliability.report import Row, render_report


def test_rows_sort_naturally_and_cells_are_escaped() -> None:
    text = render_report(
        [
            Row("R10", "ten", ["saw a | b"], "pass", 1.25),
            Row("R2", "two", [], "FAIL", 0.5),
        ]
    )
    rows = [line for line in text.splitlines() if line.startswith("| R")]
    assert rows == [
        "| R2 | two | — | FAIL (0.5 s) |",
        "| R10 | ten | saw a \\| b | pass (1.2 s) |",
    ]
    assert "1 of 2 cases pass" in text
