"""The usage counter's series stay bounded however many revisions a prompt goes through."""

from __future__ import annotations

import uuid

import pytest

from prompt_client import PromptRegistry
from prompt_client.usage import KEEP_REVISIONS
from tests.reliability.report import Observed

from .support import Writer

EDITS = 200


def series_of(prompt: str) -> dict[str, float]:
    """revision -> count of every ``prompt_usage_total`` series of ``prompt``."""
    from prometheus_client import REGISTRY

    found: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "prompt_usage_total" and sample.labels.get("prompt") == prompt:
                found[sample.labels["revision"]] = sample.value
    return found


@pytest.mark.reliability(
    case="R-usage-series",
    did=f"an app logs one use of a prompt after each of {EDITS} edits (a new revision each)",
)
def test_usage_series_stay_bounded_over_many_revisions(
    writer: Writer, registry: PromptRegistry, observed: Observed
) -> None:
    name = "p-" + uuid.uuid4().hex[:8]  # the counter is process-wide: a name of its own
    revisions = []
    for i in range(EDITS):
        revisions.append(writer.put(name, f"text {i}"))
        registry.refresh()
        registry.log_usage(name)
        registry.log_usage(name)
    series = series_of(name)
    observed(f"{len(series)} series of prompt_usage_total left for the prompt after {EDITS} edits")
    assert len(series) == KEEP_REVISIONS  # before: one per revision, 200
    assert series == {rev: 2.0 for rev in revisions[-KEEP_REVISIONS:]}


def test_an_older_revision_used_again_comes_back_counting_from_zero(
    writer: Writer, registry: PromptRegistry
) -> None:
    name = "p-" + uuid.uuid4().hex[:8]
    first = writer.put(name, "v0")
    registry.refresh()
    session = registry.snapshot()  # a conversation holds the first revision
    session.log_usage(name)
    for i in range(KEEP_REVISIONS):
        writer.put(name, f"v{i + 1}")
        registry.refresh()
        registry.log_usage(name)
    assert first not in series_of(name)
    session.log_usage(name)
    assert series_of(name)[first] == 1.0
    assert len(series_of(name)) == KEEP_REVISIONS
