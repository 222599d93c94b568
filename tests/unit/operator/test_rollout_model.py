"""spec.rollout parsed into typed steps, and the operator's checks of it."""

from __future__ import annotations

from typing import Any

import pytest

from prompt_operator.model import SpecError, parse_prompt
from prompt_operator.policies import evaluate
from prompt_operator.render import render
from prompt_operator.rollouts.model import Threshold, parse_duration, parse_rollout
from prompt_operator.status import status_patch


def body(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": spec}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("24h", 86400), ("1h2m3s", 3723)],
)
def test_go_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "2 minutes", "1d", "m", "1m1h"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_every_kind_of_step_is_parsed() -> None:
    rollout = parse_rollout(
        {
            "steps": [
                {"setWeight": 20},
                {"pause": {"duration": "2m"}},
                {"pause": {}},
                {
                    "analysis": {
                        "prometheus": {
                            "goodOutcomes": ["resolved"],
                            "threshold": {"maxDropFromStable": 0.05},
                            "minSamples": 20,
                            "interval": "10s",
                            "count": 3,
                            "failureLimit": 1,
                        }
                    }
                },
                {"analysis": {"job": {"template": {"spec": {}}, "timeout": "5m"}}},
            ]
        }
    )
    assert rollout is not None
    weight, timed, open_ended, prometheus, job = rollout.steps
    assert weight.set_weight == 20 and not weight.is_analysis
    assert (timed.pause, timed.pause_seconds) == (True, 120)
    assert (open_ended.pause, open_ended.pause_seconds) == (True, None)
    assert open_ended.describe() == "pause until promoted"
    analysis = prometheus.prometheus
    assert analysis is not None and prometheus.is_analysis
    assert analysis.threshold == Threshold(max_drop_from_stable=0.05)
    assert (analysis.min_samples, analysis.interval_seconds, analysis.count) == (20, 10, 3)
    assert analysis.failure_limit == 1 and analysis.good_outcomes == ("resolved",)
    assert job.job is not None and job.job.timeout_seconds == 300


def test_a_prompt_without_rollout_has_none() -> None:
    assert parse_prompt(body({"template": "x"})).rollout is None


def test_a_wrong_shape_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"spec\.rollout\.steps"):
        parse_prompt(body({"template": "x", "rollout": {"steps": "no"}}))


def verdict_of(spec: dict[str, Any]) -> tuple[str | None, str]:
    prompt = parse_prompt(body(spec))
    problem = evaluate(prompt, render(prompt)).problem
    return (problem.reason, problem.message) if problem else (None, "")


def test_rollout_with_variants_is_refused() -> None:
    reason, message = verdict_of(
        {
            "variants": [{"name": "a", "weight": 1, "template": "A"}],
            "rollout": {"steps": [{"setWeight": 10}]},
        }
    )
    assert reason == "InvalidRollout"
    assert "spec.rollout cannot be combined with spec.variants" in message


def test_rollout_with_schedule_is_refused() -> None:
    reason, _ = verdict_of(
        {
            "template": "x",
            "schedule": [{"at": "2030-01-01T00:00:00Z", "template": "y"}],
            "rollout": {"steps": [{"setWeight": 10}]},
        }
    )
    assert reason == "InvalidRollout"


def test_pause_bounds_and_analysis_needs_something_to_measure() -> None:
    long = {"template": "x", "rollout": {"steps": [{"pause": {"duration": "25h"}}]}}
    assert verdict_of(long)[0] == "InvalidRollout"
    vague = {
        "template": "x",
        "rollout": {"steps": [{"analysis": {"prometheus": {"threshold": {"minimum": 1}}}}]},
    }
    reason, message = verdict_of(vague)
    assert reason == "InvalidRollout" and "goodOutcomes" in message
    fine = {"template": "x", "rollout": {"steps": [{"setWeight": 5}, {"pause": {}}]}}
    assert verdict_of(fine)[0] is None


def test_a_status_patch_removes_what_a_nested_object_no_longer_has() -> None:
    before = {"rollout": {"phase": "Paused", "pauseUntil": "t", "step": 1}, "revision": "r"}
    after = {"rollout": {"phase": "Progressing", "step": 1}, "revision": "r"}
    assert status_patch(before, after) == {"rollout": {"phase": "Progressing", "pauseUntil": None}}
    assert status_patch(after, after) == {}
