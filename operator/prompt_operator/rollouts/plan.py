"""The rollout's state machine: pure, from the status and the clock to a decision.

``plan`` takes what ``status.rollout`` says, the candidate (the spec's render),
the stable revision, the time, the current analysis step's judged run and a
manual action, and returns the next state, what to serve and when to look
again. Every deadline is an absolute time kept in the status, so an operator
restart or a new leader carries on where the last one stopped: a step is
entered once (its entry is written with the revision it serves) and left once.

One step is entered per reconcile: a ``setWeight`` step is done once its
weight has been served (the next reconcile, at once), a pause when its
deadline passes or on ``promote``, an analysis when its run succeeds (a
failure aborts). As Argo Rollouts: a new spec during a rollout restarts it from
the stable revision; a spec equal to the stable revision is served at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from prompt_contract import objects

from .model import Rollout, RolloutStep

PROGRESSING = "Progressing"
PAUSED = "Paused"
PROMOTED = "Promoted"
ABORTED = "Aborted"
PHASES = (PROGRESSING, PAUSED, PROMOTED, ABORTED)
MAX_RUNS = 20  # analysis runs kept in status.rollout

# What a decision serves.
CANDIDATE = "candidate"
STABLE = "stable"
COMPOSITE = "composite"

# Analysis run phases (analysis.py judges them).
SUCCESSFUL = "Successful"
FAILED = "Failed"


def time_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class RolloutState:
    """``status.rollout``, typed."""

    phase: str
    stable: str
    candidate: str
    revisions: tuple[str, ...] = ()
    step: int = 0
    steps: int = 0
    weight: int = 0
    step_started_at: datetime | None = None
    pause_until: datetime | None = None
    paused_by_user: bool = False
    message: str = ""
    analysis_runs: tuple[Mapping[str, Any], ...] = ()

    @property
    def serves(self) -> str:
        if self.phase == PROMOTED:
            return CANDIDATE
        if self.phase == ABORTED or self.weight <= 0:
            return STABLE
        return COMPOSITE

    @property
    def running(self) -> bool:
        return self.phase in (PROGRESSING, PAUSED)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "phase": self.phase,
            "stableRevision": self.stable,
            "candidateRevision": self.candidate,
            "revisions": list(self.revisions),
            "step": self.step,
            "steps": self.steps,
            "weight": self.weight,
            "message": self.message,
            "analysisRuns": [dict(run) for run in self.analysis_runs],
        }
        if self.step_started_at is not None:
            status["stepStartedAt"] = time_text(self.step_started_at)
        if self.pause_until is not None:
            status["pauseUntil"] = time_text(self.pause_until)
        if self.paused_by_user:
            status["pausedByUser"] = True
        return status

    @classmethod
    def from_status(cls, raw: Any) -> RolloutState | None:
        """The state ``status.rollout`` holds (None: none, or not one we wrote)."""
        if not isinstance(raw, Mapping) or raw.get("phase") not in PHASES:
            return None
        stable, candidate = raw.get("stableRevision"), raw.get("candidateRevision")
        if not isinstance(stable, str) or not isinstance(candidate, str):
            return None
        runs = raw.get("analysisRuns")
        return cls(
            phase=str(raw["phase"]),
            stable=stable,
            candidate=candidate,
            revisions=tuple(str(r) for r in raw.get("revisions") or [] if isinstance(r, str)),
            step=_count(raw.get("step")),
            steps=_count(raw.get("steps")),
            weight=_count(raw.get("weight")),
            step_started_at=parse_time(raw.get("stepStartedAt")),
            pause_until=parse_time(raw.get("pauseUntil")),
            paused_by_user=raw.get("pausedByUser") is True,
            message=str(raw.get("message") or ""),
            analysis_runs=tuple(r for r in runs if isinstance(r, Mapping))
            if isinstance(runs, list)
            else (),
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True)
class RolloutEvent:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Analysis:
    """The current analysis step's run, judged (``analysis.judge``)."""

    phase: str  # Running | Successful | Failed | Inconclusive
    runs: tuple[Mapping[str, Any], ...]  # every run of this rollout, this one updated
    retry_after: float  # seconds until the next measurement or look
    message: str


@dataclass(frozen=True)
class Decision:
    state: RolloutState | None  # None: no rollout (status.rollout removed)
    requeue_after: float | None
    events: tuple[RolloutEvent, ...] = ()

    @property
    def serves(self) -> str:
        return CANDIDATE if self.state is None else self.state.serves


def stable_revision(state: RolloutState | None, served: str | None) -> str | None:
    """What a change rolls out from: the stable revision of a rollout that has not
    finished (an aborted one serves it), else what is served now."""
    if state is not None and state.phase != PROMOTED:
        return state.stable
    return served


def plan(
    spec: Rollout,
    state: RolloutState | None,
    candidate: str,
    stable: str | None,
    now: datetime,
    analysis: Analysis | None = None,
    action: str | None = None,
) -> Decision:
    """The next state of a rollout of ``candidate`` from ``stable`` at ``now``."""
    now = now.replace(microsecond=0)
    if state is None or state.candidate != candidate:
        return _change(spec, state, candidate, stable, now)
    events: list[RolloutEvent] = []
    if action is not None:
        state, done = _act(spec, state, action, now, events)
        if done is not None:
            return done
    if analysis is not None and state.running:
        state = dataclasses.replace(state, analysis_runs=tuple(analysis.runs)[-MAX_RUNS:])
    decision = _progress(spec, state, now, analysis)
    return dataclasses.replace(decision, events=tuple(events) + decision.events)


def _change(
    spec: Rollout, state: RolloutState | None, candidate: str, stable: str | None, now: datetime
) -> Decision:
    """A new candidate: served at once when there is nothing to roll out from, or
    it is the stable revision again; else a rollout from ``stable`` begins."""
    if stable is None or stable == candidate:
        events: tuple[RolloutEvent, ...] = ()
        if state is not None and state.running:
            events = (
                RolloutEvent(
                    "RolloutAborted",
                    f"the spec is the stable revision {candidate} again: served to every pod at "
                    f"once (the rollout of {state.candidate} stops)",
                ),
            )
        return Decision(None, None, events)
    restarted = state is not None and state.running
    fresh = RolloutState(PROGRESSING, stable, candidate, steps=len(spec.steps))
    why = (
        f"a new spec during the rollout of {state.candidate}: restarted from stable {stable}"
        if restarted and state is not None
        else f"rollout of {candidate} from stable {stable} started"
    )
    started = RolloutEvent("RolloutStarted", f"{why} ({len(spec.steps)} steps)")
    decision = _enter(spec, fresh, 0, now)
    return dataclasses.replace(decision, events=(started, *decision.events))


def _enter(spec: Rollout, state: RolloutState, index: int, now: datetime) -> Decision:
    """Step ``index`` begins at ``now`` (past the last step: promoted)."""
    steps = spec.steps
    if index >= len(steps):
        done = dataclasses.replace(
            state,
            phase=PROMOTED,
            step=len(steps),
            steps=len(steps),
            weight=100,
            step_started_at=now,
            pause_until=None,
            paused_by_user=False,
            message=f"promoted: every pod and user is served {state.candidate}",
        )
        event = RolloutEvent(
            "RolloutPromoted", f"{state.candidate} promoted after {len(steps)} steps"
        )
        return Decision(done, None, (event,))
    step = steps[index]
    entered = dataclasses.replace(
        state,
        phase=PROGRESSING,
        step=index,
        steps=len(steps),
        step_started_at=now,
        pause_until=None,
    )
    where = f"step {index + 1}/{len(steps)}"
    if step.set_weight is not None:
        entered = dataclasses.replace(
            entered,
            weight=step.set_weight,
            message=f"{where}: canary {step.set_weight}%",
        )
        event = RolloutEvent("RolloutStepAdvanced", f"{where}: canary {step.set_weight}%")
        return Decision(entered, 0.0, (event,))
    if step.pause:
        return _pause(entered, step, where, now)
    entered = dataclasses.replace(
        entered, message=f"{where}: {step.describe()} at canary {entered.weight}%"
    )
    event = RolloutEvent("RolloutStepAdvanced", f"{where}: {step.describe()} begins")
    return Decision(entered, 0.0, (event,))


def _pause(state: RolloutState, step: RolloutStep, where: str, now: datetime) -> Decision:
    if step.pause_seconds is None:
        paused = dataclasses.replace(
            state,
            phase=PAUSED,
            message=f"{where}: paused at canary {state.weight}% until promoted "
            "(prompt-operator rollout promote NAME)",
        )
        return Decision(paused, None, (RolloutEvent("RolloutPaused", paused.message),))
    until = now + timedelta(seconds=step.pause_seconds)
    paused = dataclasses.replace(
        state,
        phase=PAUSED,
        pause_until=until,
        message=f"{where}: paused at canary {state.weight}% until {time_text(until)}",
    )
    event = RolloutEvent("RolloutPaused", paused.message)
    return Decision(paused, float(step.pause_seconds), (event,))


def _progress(
    spec: Rollout, state: RolloutState, now: datetime, analysis: Analysis | None
) -> Decision:
    """Where a started rollout goes from its current step."""
    if not state.running:
        return Decision(state, None)
    if state.step >= len(spec.steps):  # the steps were shortened under it
        return _enter(spec, state, len(spec.steps), now)
    if state.paused_by_user:
        return Decision(state, None)
    step = spec.steps[state.step]
    if step.set_weight is not None:
        if state.weight != step.set_weight:  # the step's weight was edited
            return _enter(spec, state, state.step, now)
        return _enter(spec, state, state.step + 1, now)
    if step.pause:
        if state.pause_until is None and step.pause_seconds is not None:
            return _enter(spec, state, state.step, now)  # it became a timed pause
        if state.pause_until is None or now < state.pause_until:
            left = None if state.pause_until is None else (state.pause_until - now).total_seconds()
            return Decision(state, left)
        return _enter(spec, state, state.step + 1, now)
    return _judged(spec, state, now, analysis)


def _judged(
    spec: Rollout, state: RolloutState, now: datetime, analysis: Analysis | None
) -> Decision:
    where = f"step {state.step + 1}/{len(spec.steps)}"
    if analysis is None:
        return Decision(state, 0.0)  # measured on the next look
    if analysis.phase == SUCCESSFUL:
        return _enter(spec, state, state.step + 1, now)
    if analysis.phase == FAILED:
        return _abort(state, f"{where}: analysis failed: {analysis.message}", now, failed=True)
    waiting = dataclasses.replace(
        state, message=f"{where}: analysis at canary {state.weight}%: {analysis.message}"
    )
    return Decision(waiting, max(0.0, analysis.retry_after))


def _abort(state: RolloutState, why: str, now: datetime, *, failed: bool) -> Decision:
    aborted = dataclasses.replace(
        state,
        phase=ABORTED,
        weight=0,
        pause_until=None,
        paused_by_user=False,
        step_started_at=now,
        message=f"aborted ({why}): every pod and user is served the stable revision "
        f"{state.stable}; a new spec or `prompt-operator rollout retry NAME` clears it",
    )
    events = [RolloutEvent("RolloutAborted", aborted.message, warning=True)]
    if failed:
        events.insert(0, RolloutEvent("AnalysisFailed", why, warning=True))
    return Decision(aborted, None, tuple(events))


def _act(
    spec: Rollout, state: RolloutState, action: str, now: datetime, events: list[RolloutEvent]
) -> tuple[RolloutState, Decision | None]:
    """A manual action applied: the new state, or a final decision (promote-full,
    abort, retry). Events say what was done or why nothing was."""
    running = state.running
    if action == "promote-full" and state.phase != PROMOTED:
        decision = _enter(spec, state, len(spec.steps), now)
        return state, _with(decision, "RolloutPromoted", "promoted by hand (promote-full)")
    if action == "abort" and running:
        return state, _abort(state, "by hand", now, failed=False)
    if action == "retry" and state.phase == ABORTED:
        fresh = RolloutState(PROGRESSING, state.stable, state.candidate, steps=len(spec.steps))
        decision = _enter(spec, fresh, 0, now)
        return state, _with(decision, "RolloutStarted", "retried by hand from step 1")
    if action == "pause" and running and not state.paused_by_user:
        events.append(RolloutEvent("RolloutPaused", "paused by hand until resumed"))
        return dataclasses.replace(state, phase=PAUSED, paused_by_user=True), None
    if action in ("resume", "promote") and running:
        return _promote(spec, state, action, now, events)
    known = action in objects.ROLLOUT_ACTIONS
    why = f"the rollout is {state.phase}" if known else "unknown action"
    events.append(RolloutEvent("RolloutActionIgnored", f"{action!r} ignored: {why}", warning=True))
    return state, None


def _promote(
    spec: Rollout, state: RolloutState, action: str, now: datetime, events: list[RolloutEvent]
) -> tuple[RolloutState, Decision | None]:
    """``resume`` lifts a pause by hand; ``promote`` does too, and also ends the
    current pause or analysis step. ``resume`` at a pause step without a duration
    ends it as ``promote`` does (Argo's promote and resume are one command)."""
    step = spec.steps[state.step] if state.step < len(spec.steps) else None
    by_user = state.paused_by_user
    resumed = dataclasses.replace(state, paused_by_user=False)
    ends_step = step is not None and (
        (action == "promote" and (step.pause or step.is_analysis))
        or (step.pause and step.pause_seconds is None and not by_user)
    )
    if ends_step:
        decision = _enter(spec, resumed, state.step + 1, now)
        return state, _with(
            decision, "RolloutResumed", f"step {state.step + 1}/{len(spec.steps)} ended by {action}"
        )
    if step is not None and not step.pause:
        resumed = dataclasses.replace(resumed, phase=PROGRESSING)
    events.append(RolloutEvent("RolloutResumed", f"{action}: the rollout goes on"))
    return resumed, None


def _with(decision: Decision, reason: str, message: str) -> Decision:
    events = [e for e in decision.events if e.reason != reason]
    return dataclasses.replace(decision, events=(RolloutEvent(reason, message), *events))


def runs_of_step(runs: Sequence[Mapping[str, Any]], state: RolloutState) -> list[Mapping[str, Any]]:
    """This step's runs (started since the step began)."""
    started = time_text(state.step_started_at) if state.step_started_at else ""
    return [r for r in runs if r.get("step") == state.step and str(r.get("startedAt")) >= started]
