"""The rollout's state machine, step by step, with the clock given."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prompt_operator.rollouts.model import Rollout, parse_rollout
from prompt_operator.rollouts.plan import (
    ABORTED,
    CANDIDATE,
    COMPOSITE,
    PAUSED,
    PROGRESSING,
    PROMOTED,
    STABLE,
    Analysis,
    Decision,
    RolloutState,
    plan,
    stable_revision,
)

T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=timezone.utc)
OLD, NEW, NEWER = "a" * 16, "b" * 16, "c" * 16


def rollout(*steps: dict[str, Any]) -> Rollout:
    parsed = parse_rollout({"steps": list(steps)})
    assert parsed is not None
    return parsed


CANARY = rollout({"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 50}, {"pause": {}})
ANALYSED = rollout(
    {"setWeight": 20},
    {"analysis": {"prometheus": {"goodOutcomes": ["ok"], "threshold": {"minimum": 0.9}}}},
)


def through_status(decision: Decision) -> RolloutState:
    """The state as a restarted operator reads it back from status."""
    assert decision.state is not None
    back = RolloutState.from_status(decision.state.to_status())
    assert back is not None
    return back


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def test_first_revision_and_an_unchanged_spec_are_served_directly() -> None:
    assert plan(CANARY, None, NEW, None, T0) == Decision(None, None)
    assert plan(CANARY, None, NEW, NEW, T0).serves == CANDIDATE


def test_each_phase_from_start_to_promotion() -> None:
    started = plan(CANARY, None, NEW, OLD, T0)
    assert reasons(started) == ["RolloutStarted", "RolloutStepAdvanced"]
    state = through_status(started)
    assert (state.phase, state.step, state.weight, state.serves) == (PROGRESSING, 0, 20, COMPOSITE)
    assert started.requeue_after == 0.0  # the weight is served; the step ends on the next look
    paused = plan(CANARY, state, NEW, OLD, T0)
    state = through_status(paused)
    assert (state.phase, state.step, state.weight) == (PAUSED, 1, 20)
    assert state.pause_until == T0 + timedelta(minutes=1)  # an absolute deadline
    assert paused.requeue_after == 60.0 and reasons(paused) == ["RolloutPaused"]
    waiting = plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=45))
    assert waiting.state == state and waiting.requeue_after == 15.0 and not waiting.events
    state = through_status(plan(CANARY, state, NEW, OLD, T0 + timedelta(minutes=1)))
    assert (state.phase, state.step, state.weight) == (PROGRESSING, 2, 50)
    held = plan(CANARY, state, NEW, OLD, T0 + timedelta(minutes=2))
    state = through_status(held)
    assert (state.phase, state.step, state.pause_until) == (PAUSED, 3, None)
    assert held.requeue_after is None  # waits for promote, no timer
    assert plan(CANARY, state, NEW, OLD, T0 + timedelta(days=3)).state == state
    promoted = plan(CANARY, state, NEW, OLD, T0 + timedelta(days=3), action="promote")
    state = through_status(promoted)
    assert (state.phase, state.step, state.weight, state.serves) == (PROMOTED, 4, 100, CANDIDATE)
    assert "RolloutPromoted" in reasons(promoted)
    again = plan(CANARY, state, NEW, NEW, T0 + timedelta(days=4))
    assert again.state == state and again.requeue_after is None


def test_a_restart_keeps_the_pause_deadline_and_repeats_no_step() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    state = through_status(plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=1)))
    deadline = state.pause_until
    for seconds in (5, 30, 59):  # each look is a fresh read of the status
        decision = plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=seconds))
        assert through_status(decision) == state and not decision.events
        assert decision.requeue_after == (deadline - (T0 + timedelta(seconds=seconds))).seconds
    after = through_status(plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=61)))
    assert after.step == 2


def test_a_new_spec_mid_rollout_restarts_from_stable() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    stable = stable_revision(state, "composite-hash")
    assert stable == OLD
    restarted = plan(CANARY, state, NEWER, stable, T0 + timedelta(seconds=5))
    fresh = through_status(restarted)
    assert (fresh.stable, fresh.candidate, fresh.step, fresh.revisions) == (OLD, NEWER, 0, ())
    assert "restarted from stable" in restarted.events[0].message


def test_after_promotion_the_next_change_starts_from_the_promoted_revision() -> None:
    promoted = plan(CANARY, None, NEW, OLD, T0, action=None)
    state = through_status(
        plan(CANARY, through_status(promoted), NEW, OLD, T0, action="promote-full")
    )
    assert state.phase == PROMOTED
    assert stable_revision(state, NEW) == NEW
    nxt = through_status(plan(CANARY, state, NEWER, NEW, T0))
    assert (nxt.stable, nxt.candidate) == (NEW, NEWER)


def test_spec_back_to_stable_is_served_at_once() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    decision = plan(CANARY, state, OLD, stable_revision(state, None), T0)
    assert decision.state is None and decision.serves == CANDIDATE


def analysis(phase: str, message: str = "m", wait: float = 30.0) -> Analysis:
    return Analysis(phase, ({"step": 1, "phase": phase},), wait, message)


def test_analysis_passes_waits_or_aborts() -> None:
    state = through_status(plan(ANALYSED, None, NEW, OLD, T0))
    state = through_status(plan(ANALYSED, state, NEW, OLD, T0))
    assert state.step == 1 and state.phase == PROGRESSING
    waiting = plan(ANALYSED, state, NEW, OLD, T0, analysis("Running", "1 of 3 passed", 30))
    assert waiting.requeue_after == 30 and "1 of 3 passed" in (waiting.state or state).message
    assert (waiting.state or state).analysis_runs == ({"step": 1, "phase": "Running"},)
    passed = plan(ANALYSED, state, NEW, OLD, T0, analysis("Successful"))
    assert through_status(passed).phase == PROMOTED
    failed = plan(ANALYSED, state, NEW, OLD, T0, analysis("Failed", "0.5 < 0.9"))
    aborted = through_status(failed)
    assert (aborted.phase, aborted.weight, aborted.serves) == (ABORTED, 0, STABLE)
    assert reasons(failed) == ["AnalysisFailed", "RolloutAborted"]
    assert "retry" in aborted.message and OLD in aborted.message


def test_inconclusive_never_promotes() -> None:
    state = through_status(plan(ANALYSED, None, NEW, OLD, T0))
    state = through_status(plan(ANALYSED, state, NEW, OLD, T0))
    for minutes in range(0, 600, 7):
        decision = plan(
            ANALYSED,
            state,
            NEW,
            OLD,
            T0 + timedelta(minutes=minutes),
            analysis("Inconclusive", "Prometheus unavailable: refused"),
        )
        now = through_status(decision)
        assert (now.phase, now.step) == (PROGRESSING, 1)
        assert "Prometheus unavailable" in now.message


def test_manual_abort_retry_pause_resume() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    aborted = plan(CANARY, state, NEW, OLD, T0, action="abort")
    state = through_status(aborted)
    assert state.phase == ABORTED and reasons(aborted) == ["RolloutAborted"]
    assert plan(CANARY, state, NEW, OLD, T0 + timedelta(hours=1)).state == state  # stays
    ignored = plan(CANARY, state, NEW, OLD, T0, action="pause")
    assert ignored.state == state and reasons(ignored) == ["RolloutActionIgnored"]
    retried = plan(CANARY, state, NEW, OLD, T0, action="retry")
    state = through_status(retried)
    assert (state.phase, state.step, state.weight) == (PROGRESSING, 0, 20)
    assert reasons(retried)[0] == "RolloutStarted"
    paused = plan(CANARY, state, NEW, OLD, T0, action="pause")
    state = through_status(paused)
    assert state.phase == PAUSED and state.paused_by_user
    assert plan(CANARY, state, NEW, OLD, T0 + timedelta(hours=2)).state == state  # holds
    resumed = plan(CANARY, state, NEW, OLD, T0 + timedelta(hours=2), action="resume")
    state = through_status(resumed)
    assert not state.paused_by_user and state.step == 1  # the setWeight step then ends
    assert reasons(resumed)[0] == "RolloutResumed"


def test_pause_by_hand_during_a_timed_pause_keeps_its_deadline() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    state = through_status(plan(CANARY, state, NEW, OLD, T0))
    deadline = state.pause_until
    state = through_status(plan(CANARY, state, NEW, OLD, T0, action="pause"))
    assert plan(CANARY, state, NEW, OLD, T0 + timedelta(minutes=5)).state == state
    state = through_status(
        plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=30), action="resume")
    )
    assert state.pause_until == deadline and state.step == 1 and state.phase == PAUSED
    assert through_status(plan(CANARY, state, NEW, OLD, T0 + timedelta(seconds=61))).step == 2


def test_promote_ends_a_timed_pause_and_an_analysis_step() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    state = through_status(plan(CANARY, state, NEW, OLD, T0))
    ended = through_status(plan(CANARY, state, NEW, OLD, T0, action="promote"))
    assert (ended.step, ended.weight) == (2, 50)
    state = through_status(plan(ANALYSED, None, NEW, OLD, T0))
    state = through_status(plan(ANALYSED, state, NEW, OLD, T0))
    assert through_status(plan(ANALYSED, state, NEW, OLD, T0, action="promote")).phase == PROMOTED


def test_promote_full_and_unknown_actions() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    full = plan(CANARY, state, NEW, OLD, T0, action="promote-full")
    assert through_status(full).phase == PROMOTED and reasons(full)[0] == "RolloutPromoted"
    odd = plan(CANARY, state, NEW, OLD, T0, action="yolo")
    assert reasons(odd)[0] == "RolloutActionIgnored" and "unknown action" in odd.events[0].message
    assert through_status(odd).step == 1  # otherwise it goes on as without the action


def test_the_status_round_trip_and_foreign_status() -> None:
    state = through_status(plan(CANARY, None, NEW, OLD, T0))
    assert state.step_started_at == T0
    assert RolloutState.from_status({"phase": "Weird"}) is None
    assert RolloutState.from_status(None) is None
    assert RolloutState.from_status({"phase": PAUSED, "stableRevision": 1}) is None


def test_a_zero_weight_serves_the_stable_revision() -> None:
    zero = rollout({"pause": {}}, {"setWeight": 100})
    state = through_status(plan(zero, None, NEW, OLD, T0))
    assert state.serves == STABLE and state.phase == PAUSED
