"""status.rollout read for people (rollouts.view) and the `rollout` command's pure
parts: its text, which action is refused in which phase, its arguments."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from prompt_contract import objects
from prompt_operator import cli, rollout_cli
from prompt_operator.rollouts import view

STABLE = "1f0e2d3c4b5a6978"
CANDIDATE = "9a8b7c6d5e4f3021"

SPEC_ROLLOUT = {
    "steps": [
        {"setWeight": 20},
        {
            "analysis": {
                "prometheus": {
                    "goodOutcomes": ["resolved"],
                    "threshold": {"minimum": 0.9},
                    "count": 3,
                }
            }
        },
        {"pause": {"duration": "2m"}},
        {"analysis": {"job": {"template": {}, "timeout": "10m"}}},
        {"pause": {}},
    ]
}

ROLLOUT = {
    "phase": "Progressing",
    "stableRevision": STABLE,
    "candidateRevision": CANDIDATE,
    "revisions": ["c0ffee0000000001"],
    "step": 1,
    "steps": 5,
    "weight": 20,
    "stepStartedAt": "2026-12-05T07:00:00Z",
    "pauseUntil": None,
    "message": "measuring the canary's share of good outcomes",
    "analysisRuns": [
        {
            "step": 1,
            "provider": "prometheus",
            "phase": "Running",
            "startedAt": "2026-12-05T07:00:00Z",
            "measurements": [
                {
                    "at": "2026-12-05T07:00:30Z",
                    "value": 0.95,
                    "threshold": 0.9,
                    "samples": 40,
                    "phase": "Successful",
                },
                {
                    "at": "2026-12-05T07:01:00Z",
                    "value": 0.8333333,
                    "stable": 0.93,
                    "threshold": 0.9,
                    "samples": 36,
                    "phase": "Failed",
                },
            ],
            "failures": 1,
        }
    ],
}


def prompt(rollout: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "greeter", "namespace": "ns"},
        "spec": {"template": "Hello", "rollout": SPEC_ROLLOUT},
        "status": dict(status),
    }
    if rollout is not None:
        obj["status"]["rollout"] = rollout
    return obj


def with_phase(phase: str, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(ROLLOUT)
    raw.update(phase=phase, **changes)
    return raw


# -- reading status.rollout ----------------------------------------------------------------


def test_status_rollout_is_read_into_typed_values() -> None:
    rollout = view.rollout_of({"rollout": ROLLOUT})
    assert rollout is not None
    assert (rollout.phase, rollout.step, rollout.steps, rollout.weight) == ("Progressing", 1, 5, 20)
    assert rollout.position == "2/5" and rollout.running
    run = rollout.analysis_runs[0]
    assert (run.provider, run.phase, run.failures, run.step) == ("prometheus", "Running", 1, 1)
    assert [m.comparison for m in run.measurements] == ["0.95 >= 0.9", "0.8333 < 0.9"]
    assert run.measurements[1].stable == 0.93 and run.measurements[0].stable is None


@pytest.mark.parametrize("status", [None, {}, {"rollout": None}, {"rollout": {}}, {"rollout": 3}])
def test_no_rollout_reads_as_none(status: Any) -> None:
    assert view.rollout_of(status) is None


def test_missing_or_garbled_fields_read_as_unknown_not_as_errors() -> None:
    rollout = view.rollout_of(
        {
            "rollout": {
                "step": "two",
                "weight": True,
                "revisions": "abc",
                "analysisRuns": [7, {"measurements": [{"value": "high"}, None]}],
            }
        }
    )
    assert rollout is not None
    assert (rollout.phase, rollout.step, rollout.weight, rollout.revisions) == (
        "Unknown",
        None,
        None,
        (),
    )
    assert rollout.position == "?" and not rollout.running
    (run,) = rollout.analysis_runs
    assert [m.comparison for m in run.measurements] == ["no value"]


def test_spec_steps_are_described_in_a_few_words() -> None:
    assert [s.text for s in view.steps_of({"rollout": SPEC_ROLLOUT})] == [
        "set weight: canary 20%",
        "analysis: Prometheus, candidate >= 0.9, 3 times",
        "pause 2m",
        "analysis: Job passes on exit 0 (timeout 10m)",
        "pause until promoted",
    ]
    relative = {"prometheus": {"threshold": {"maxDropFromStable": 0.05}}}
    assert view.steps_of({"rollout": {"steps": [{"analysis": relative}, {"x": 1}]}}) == (
        view.Step("analysis", "analysis: Prometheus, candidate >= stable - 0.05"),
        view.Step("unknown", "a step this version does not know"),
    )
    assert view.steps_of({"template": "Hello"}) == ()


def test_the_spec_served_message_is_the_false_conditions_own() -> None:
    cond = {"type": "SpecServed", "status": "False", "message": "stable 1f0e served"}
    assert view.spec_served_message({"conditions": [cond]}) == "stable 1f0e served"
    assert view.spec_served_message({"conditions": [{**cond, "message": ""}]}) == (
        view.ABORTED_DEFAULT
    )
    assert view.spec_served_message({"conditions": [{**cond, "status": "True"}]}) is None


# -- which action makes sense when ---------------------------------------------------------

ALLOWED = {
    "Progressing": {"promote", "promote-full", "abort", "pause"},
    "Paused": {"promote", "promote-full", "abort", "resume"},
    "Aborted": {"retry"},
    "Promoted": set(),
}


@pytest.mark.parametrize("phase", sorted(ALLOWED))
def test_each_phase_allows_only_the_actions_that_make_sense(phase: str) -> None:
    rollout = view.rollout_of({"rollout": with_phase(phase)})
    allowed = {a for a in objects.ROLLOUT_ACTIONS if not view.action_problem(rollout, a, "g")}
    assert allowed == ALLOWED[phase]


def test_a_refusal_says_why_and_what_to_do_instead() -> None:
    assert "has no rollout running: a rollout starts when the spec changes" in str(
        view.action_problem(None, "promote", "greeter")
    )
    aborted = view.rollout_of({"rollout": with_phase("Aborted")})
    assert "`retry` starts it again" in str(view.action_problem(aborted, "abort", "greeter"))
    paused = view.rollout_of({"rollout": with_phase("Paused")})
    assert "paused already; `resume` goes on" in str(view.action_problem(paused, "pause", "g"))


# -- the command's text and arguments ------------------------------------------------------


def test_status_text_shows_phase_step_weights_steps_and_measurements() -> None:
    text = rollout_cli.status_text("greeter", prompt(ROLLOUT))
    assert text.splitlines()[:4] == [
        "Prompt greeter: rollout Progressing, step 2/5, canary 20%",
        f"  stable     {STABLE}  (served to 80%)",
        f"  candidate  {CANDIDATE}  (served to 20%)",
        "  measuring the canary's share of good outcomes",
    ]
    assert "  done 1  set weight: canary 20%" in text
    assert "     > 2  analysis: Prometheus, candidate >= 0.9, 3 times" in text
    assert "       3  pause 2m" in text
    assert "  step 2  prometheus  Running, 1 failed" in text
    assert "    2026-12-05T07:01:00Z  0.8333 < 0.9  stable 0.93  36 samples  Failed" in text
    assert "served differs" not in text


def test_status_text_of_an_aborted_rollout_says_what_is_served_and_what_clears_it() -> None:
    cond = {"type": "SpecServed", "status": "False", "reason": "RolloutAborted", "message": "M"}
    job_run = {
        "step": 3,
        "provider": "job",
        "phase": "Failed",
        "job": "prompt-greeter-9a8b7c6d-3",
        "log": "kubectl logs -n ns job/prompt-greeter-9a8b7c6d-3",
    }
    text = rollout_cli.status_text(
        "greeter",
        prompt(with_phase("Aborted", weight=0, analysisRuns=[job_run]), conditions=[cond]),
    )
    assert "rollout Aborted, step 2/5, canary 0%" in text
    assert "served differs from the spec: M" in text
    assert "`prompt-operator rollout retry greeter`" in text
    assert "    job prompt-greeter-9a8b7c6d-3: kubectl logs -n ns job/" in text
    assert "     x 2  analysis" in text and "     > " not in text  # where it stopped


def test_status_text_without_a_rollout_says_how_one_starts() -> None:
    assert "has had no rollout" in rollout_cli.status_text("greeter", prompt())


def test_promote_full_is_its_own_value_and_the_patch_is_metadata_only() -> None:
    assert rollout_cli.action_value("promote", True) == "promote-full"
    assert rollout_cli.action_value("abort", False) == "abort"
    assert rollout_cli.action_patch("abort") == {
        "metadata": {"annotations": {"prompts.dev/rollout-action": "abort"}}
    }
    assert set(rollout_cli.ACTIONS) | {"promote-full"} == set(objects.ROLLOUT_ACTIONS)


def test_arguments_go_anywhere_and_full_belongs_to_promote_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = rollout_cli.parser().parse_args(["abort", "-n", "team", "greeter"])
    assert (args.command, args.name, args.namespace) == ("abort", "greeter", "team")
    assert rollout_cli.parser().parse_args(["promote", "greeter", "--full"]).full is True
    for argv in (["abort", "greeter", "--full"], ["restart", "greeter"], ["status"]):
        with pytest.raises(SystemExit) as done:
            rollout_cli.parser().parse_args(argv)
        assert done.value.code == 2
    capsys.readouterr()


def test_an_unreadable_kubeconfig_is_exit_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert cli.main(["rollout", "status", "greeter", "--kubeconfig", str(missing)]) == 1
    assert "error:" in capsys.readouterr().err
