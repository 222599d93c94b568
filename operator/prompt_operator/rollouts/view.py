"""A Prompt's rollout as people see it: ``status.rollout`` (the operator's one record
of it) and the steps of ``spec.rollout``, read into typed values for the CLI and the
console, and which manual action makes sense in which phase.

Pure and tolerant: a field missing or of the wrong type reads as unknown, never as an
error, so an older or newer operator's status still shows what it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROGRESSING, PAUSED, PROMOTED, ABORTED = "Progressing", "Paused", "Promoted", "Aborted"
SPEC_SERVED = "SpecServed"  # the condition an aborted rollout sets False
ABORTED_DEFAULT = (
    "What is served differs from the spec: the rollout was aborted and the stable "
    "revision is served. A new spec clears it, or `prompt-operator rollout retry NAME` "
    "tries the candidate again from the first step."
)


@dataclass(frozen=True)
class Measurement:
    at: str
    value: float | None
    stable: float | None  # the stable revision measured the same way, when relative
    threshold: float | None  # the value the candidate must reach
    samples: int | None
    phase: str

    @property
    def comparison(self) -> str:
        """``0.82 < 0.9``: the measured value against the threshold, as a person reads it."""
        if self.value is None:
            return "no value"
        if self.threshold is None:
            return number(self.value)
        sign = ">=" if self.value >= self.threshold else "<"
        return f"{number(self.value)} {sign} {number(self.threshold)}"


@dataclass(frozen=True)
class AnalysisRun:
    step: int | None
    provider: str
    phase: str
    started_at: str
    finished_at: str
    measurements: tuple[Measurement, ...]
    failures: int
    job: str
    log: str
    message: str


@dataclass(frozen=True)
class Rollout:
    phase: str
    stable_revision: str
    candidate_revision: str
    revisions: tuple[str, ...]
    step: int | None  # 0-based; == steps once promoted
    steps: int | None
    weight: int | None  # the canary's percent served now
    step_started_at: str
    pause_until: str
    message: str
    analysis_runs: tuple[AnalysisRun, ...]

    @property
    def running(self) -> bool:
        return self.phase in (PROGRESSING, PAUSED)

    @property
    def position(self) -> str:
        """``3/5``: the current step counted from 1, as people count; ``5/5`` when done."""
        if self.step is None or self.steps is None:
            return "?"
        return f"{min(self.step + 1, self.steps)}/{self.steps}"


@dataclass(frozen=True)
class Step:
    """One step of ``spec.rollout`` described in a few words."""

    kind: str  # setWeight | pause | analysis | unknown
    text: str


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def number(value: float) -> str:
    """A measured value short: 0.9, 0.8333, 12."""
    return f"{value:.4g}"


def _measurement(raw: Mapping[str, Any]) -> Measurement:
    return Measurement(
        at=_text(raw.get("at")),
        value=_float(raw.get("value")),
        stable=_float(raw.get("stable")),
        threshold=_float(raw.get("threshold")),
        samples=_int(raw.get("samples")),
        phase=_text(raw.get("phase")),
    )


def _run(raw: Mapping[str, Any]) -> AnalysisRun:
    return AnalysisRun(
        step=_int(raw.get("step")),
        provider=_text(raw.get("provider")),
        phase=_text(raw.get("phase")),
        started_at=_text(raw.get("startedAt")),
        finished_at=_text(raw.get("finishedAt")),
        measurements=tuple(_measurement(m) for m in _maps(raw.get("measurements"))),
        failures=_int(raw.get("failures")) or 0,
        job=_text(raw.get("job")),
        log=_text(raw.get("log")),
        message=_text(raw.get("message")),
    )


def rollout_of(status: Mapping[str, Any] | None) -> Rollout | None:
    """``status.rollout`` read; None when the Prompt has had no rollout."""
    raw = (status or {}).get("rollout")
    if not isinstance(raw, Mapping) or not raw:
        return None
    revisions = raw.get("revisions")
    return Rollout(
        phase=_text(raw.get("phase")) or "Unknown",
        stable_revision=_text(raw.get("stableRevision")),
        candidate_revision=_text(raw.get("candidateRevision")),
        revisions=tuple(r for r in revisions if isinstance(r, str))
        if isinstance(revisions, list)
        else (),
        step=_int(raw.get("step")),
        steps=_int(raw.get("steps")),
        weight=_int(raw.get("weight")),
        step_started_at=_text(raw.get("stepStartedAt")),
        pause_until=_text(raw.get("pauseUntil")),
        message=_text(raw.get("message")),
        analysis_runs=tuple(_run(r) for r in _maps(raw.get("analysisRuns"))),
    )


def _analysis_text(raw: Mapping[str, Any]) -> str:
    prometheus, job = raw.get("prometheus"), raw.get("job")
    if isinstance(prometheus, Mapping):
        threshold = prometheus.get("threshold")
        threshold = threshold if isinstance(threshold, Mapping) else {}
        if (minimum := _float(threshold.get("minimum"))) is not None:
            bound = f"candidate >= {number(minimum)}"
        elif (drop := _float(threshold.get("maxDropFromStable"))) is not None:
            bound = f"candidate >= stable - {number(drop)}"
        else:
            bound = "threshold not set"
        count = _int(prometheus.get("count"))
        times = f", {count} times" if count else ""
        return f"analysis: Prometheus, {bound}{times}"
    if isinstance(job, Mapping):
        timeout = _text(job.get("timeout"))
        return "analysis: Job passes on exit 0" + (f" (timeout {timeout})" if timeout else "")
    return "analysis"


def _step(raw: Mapping[str, Any]) -> Step:
    if (weight := _int(raw.get("setWeight"))) is not None:
        return Step("setWeight", f"set weight: canary {weight}%")
    pause = raw.get("pause")
    if isinstance(pause, Mapping):
        duration = _text(pause.get("duration"))
        return Step("pause", f"pause {duration}" if duration else "pause until promoted")
    analysis = raw.get("analysis")
    if isinstance(analysis, Mapping):
        return Step("analysis", _analysis_text(analysis))
    return Step("unknown", "a step this version does not know")


def steps_of(spec: Mapping[str, Any] | None) -> tuple[Step, ...]:
    """``spec.rollout.steps`` described; empty without a rollout in the spec."""
    rollout = (spec or {}).get("rollout")
    if not isinstance(rollout, Mapping):
        return ()
    return tuple(_step(s) for s in _maps(rollout.get("steps")))


def step_states(count: int, rollout: Rollout) -> tuple[str, ...]:
    """Each of ``count`` steps as ``done``, ``current`` (running now), ``stopped``
    (where an abort happened) or ``next``."""
    states = []
    for i in range(count):
        if rollout.step is None:
            states.append("next")
        elif i < rollout.step or rollout.phase == PROMOTED:
            states.append("done")
        elif i == rollout.step and rollout.running:
            states.append("current")
        elif i == rollout.step and rollout.phase == ABORTED:
            states.append("stopped")
        else:
            states.append("next")
    return tuple(states)


def spec_served_message(status: Mapping[str, Any] | None) -> str | None:
    """The SpecServed=False condition's message (what is served, why, what clears it);
    None while what is served is the spec."""
    for cond in _maps((status or {}).get("conditions")):
        if cond.get("type") == SPEC_SERVED and cond.get("status") == "False":
            return _text(cond.get("message")) or ABORTED_DEFAULT
    return None


def action_problem(rollout: Rollout | None, action: str, name: str) -> str | None:
    """Why ``action`` makes no sense for this rollout now (the sentence to show), or
    None when it may be asked for. The operator decides again when it acts."""
    starts = "a rollout starts when the spec changes while spec.rollout is set"
    if rollout is None:
        return f"Prompt {name} has no rollout running: {starts}"
    if rollout.phase == PROMOTED:
        return f"the rollout of Prompt {name} is over (promoted): {starts}"
    if rollout.phase == ABORTED:
        if action == "retry":
            return None
        return (
            f"the rollout of Prompt {name} was aborted: `retry` starts it again from the "
            "first step, or a new spec starts a new one"
        )
    if action == "retry":
        return f"the rollout of Prompt {name} is not aborted ({rollout.phase}): nothing to retry"
    if action == "pause" and rollout.phase == PAUSED:
        return f"the rollout of Prompt {name} is paused already; `resume` goes on"
    if action == "resume" and rollout.phase != PAUSED:
        return f"the rollout of Prompt {name} is not paused ({rollout.phase}); nothing to resume"
    return None
