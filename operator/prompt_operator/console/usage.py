"""Uses of a Prompt from Prometheus: by revision, variant and outcome.

Pure: the query to send and the table made of its answer; the service asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# -- usage from Prometheus ----------------------------------------------------------------


def usage_query(key: str) -> str:
    """PromQL for a Prompt's uses by revision, variant and outcome (the client's counter)."""
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'sum by (revision, variant, outcome) (prompt_usage_total{{prompt="{escaped}"}})'


@dataclass(frozen=True)
class UsageRow:
    revision: str
    variant: str
    total: int
    shares: tuple[tuple[str, int, float], ...]  # (outcome, count, percent of total)


@dataclass(frozen=True)
class Usage:
    outcomes: tuple[str, ...]  # columns, "" shown as "none"
    rows: tuple[UsageRow, ...]


def usage(result: Iterable[Mapping[str, Any]]) -> Usage:
    """Rows per (revision, variant) with each outcome's count and share, from the
    ``data.result`` of an instant query of ``usage_query``."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    outcomes: set[str] = set()
    for sample in result:
        labels = sample.get("metric") or {}
        try:
            value = round(float((sample.get("value") or [0, "0"])[1]))
        except (TypeError, ValueError):
            continue
        key = (str(labels.get("revision") or ""), str(labels.get("variant") or ""))
        outcome = str(labels.get("outcome") or "")
        outcomes.add(outcome)
        counts.setdefault(key, {})[outcome] = counts.get(key, {}).get(outcome, 0) + value
    columns = tuple(sorted(outcomes, key=lambda o: (o in ("", "other"), o)))
    rows = []
    for (revision, variant), by_outcome in sorted(counts.items(), key=lambda kv: kv[0][::-1]):
        total = sum(by_outcome.values())
        rows.append(
            UsageRow(
                revision,
                variant,
                total,
                tuple(
                    (o, by_outcome.get(o, 0), round(100 * by_outcome.get(o, 0) / (total or 1), 1))
                    for o in columns
                ),
            )
        )
    return Usage(columns, tuple(rows))
