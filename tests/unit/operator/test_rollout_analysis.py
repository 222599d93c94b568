"""Judging analysis measurements: thresholds, samples, count and failure limit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from prompt_operator import history
from prompt_operator.configmap import revision_labels
from prompt_operator.controllers.revisions import plan_cleanup, prune_margin
from prompt_operator.inventory import Entry
from prompt_operator.model import parse_prompt
from prompt_operator.rollouts.analysis import (
    INCONCLUSIVE,
    RUNNING,
    Measurement,
    current_run,
    judge,
    measurement_phase,
    record,
)
from prompt_operator.rollouts.model import PrometheusAnalysis, RolloutStep, Threshold
from prompt_operator.rollouts.plan import FAILED, PROGRESSING, SUCCESSFUL, RolloutState

T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=timezone.utc)
MINIMUM = Threshold(minimum=0.9)
RELATIVE = Threshold(max_drop_from_stable=0.05)


def test_missing_data_is_inconclusive_never_a_pass() -> None:
    assert measurement_phase(MINIMUM, None, None, 50, 20)[0] == INCONCLUSIVE
    assert measurement_phase(MINIMUM, math.nan, None, 50, 20)[0] == INCONCLUSIVE
    phase, why = measurement_phase(MINIMUM, 1.0, None, 3, 20)
    assert phase == INCONCLUSIVE and "fewer than 20" in why
    assert measurement_phase(RELATIVE, 0.95, None, 50, 20)[0] == INCONCLUSIVE


def test_thresholds_absolute_and_relative_to_stable() -> None:
    assert measurement_phase(MINIMUM, 0.9, None, 20, 20)[0] == SUCCESSFUL
    assert measurement_phase(MINIMUM, 0.89, None, 20, 20)[0] == FAILED
    assert measurement_phase(RELATIVE, 0.86, 0.9, 20, 20)[0] == SUCCESSFUL
    phase, why = measurement_phase(RELATIVE, 0.8, 0.9, 20, 20)
    assert phase == FAILED and "0.8 < 0.85" in why


SPEC = PrometheusAnalysis("", ("ok",), MINIMUM, min_samples=1, count=2, failure_limit=1)


def measured(phase: str) -> Measurement:
    return Measurement("t", 0.5, None, ">= 0.9", 10, phase)


def test_count_and_failure_limit() -> None:
    run: dict[str, object] = {"step": 1, "startedAt": "s", "measurements": [], "failures": 0}
    run = record(run, measured(SUCCESSFUL), SPEC, T0)
    assert run["phase"] == RUNNING
    run = record(run, measured(INCONCLUSIVE), SPEC, T0)
    assert run["phase"] == INCONCLUSIVE and run["failures"] == 0
    run = record(run, measured(FAILED), SPEC, T0)
    assert run["phase"] == RUNNING and run["failures"] == 1  # one failure tolerated
    run = record(run, measured(FAILED), SPEC, T0)
    assert run["phase"] == FAILED and "finishedAt" in run
    passing: dict[str, object] = {"step": 1, "startedAt": "s", "measurements": []}
    for _ in range(2):
        passing = record(passing, measured(SUCCESSFUL), SPEC, T0)
    assert passing["phase"] == SUCCESSFUL
    assert judge(SPEC, [{"phase": SUCCESSFUL}] * 5, failures=2) == FAILED


def test_a_step_entered_again_gets_a_new_run() -> None:
    step = RolloutStep(prometheus=SPEC)
    old = {"step": 1, "startedAt": "2026-12-05T11:00:00Z", "phase": FAILED}
    state = RolloutState(PROGRESSING, "a", "b", step=1, step_started_at=T0, analysis_runs=(old,))
    run = current_run(state, step)
    assert run["phase"] == RUNNING and run["startedAt"] == "2026-12-05T12:00:00Z"
    later = RolloutState(
        PROGRESSING, "a", "b", step=1, step_started_at=T0 - timedelta(hours=2), analysis_runs=(old,)
    )
    assert current_run(later, step)["phase"] == FAILED


def test_pruning_never_takes_a_rollouts_stable_revision() -> None:
    body = {
        "metadata": {"name": "greeter", "namespace": "ns", "uid": "uid-1", "generation": 1},
        "spec": {"template": "t", "revisionHistoryLimit": 2},
    }
    prompt = parse_prompt(body)
    last = 2 + prune_margin(2) + 1  # one more than the margin: a batch prune is due
    records = [history.Record(n, f"r{n}", "t", "spec", "") for n in range(1, last + 1)]
    entries = [
        Entry(f"cm-{n}", "greeter", f"r{n}", n, revision_labels(prompt, n))
        for n in range(1, last + 1)
    ]
    kept = history.retained(records, None, 2)
    assert "r1" in {e.revision for e in plan_cleanup(prompt, kept, entries).pruned}
    guarded = plan_cleanup(prompt, kept, entries, protected=("r1",))
    assert "r1" not in {e.revision for e in guarded.pruned}
    assert guarded.selector is not None and "(2,3,4,5,6)" in guarded.selector
