"""Analysis steps: a run per step, measured by a provider and judged here.

A run lives in ``status.rollout.analysisRuns`` (so a new leader carries on
with the measurements already taken). ``advance`` takes the next measurement
when one is due and judges the run; the judging is pure (``measurement_phase``,
``judge``). Missing data never passes: Prometheus unreachable, an empty answer,
NaN or fewer than ``minSamples`` uses make a measurement Inconclusive, which
neither passes nor fails, and the rollout waits, saying why.

The providers (``prometheus.py``, ``jobs.py``) are imported when a step needs
them, so the rest of the rollout works without either.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..runtime.client import KubeApi, object_path
from ..runtime.errors import NotFound
from .compose import CANARY, STABLE
from .model import JobAnalysis, PrometheusAnalysis, RolloutStep, Threshold
from .plan import FAILED, SUCCESSFUL, Analysis, RolloutState, parse_time, time_text

RUNNING = "Running"
INCONCLUSIVE = "Inconclusive"
MAX_MEASUREMENTS = 10  # kept per run
JOB_POLL_SECONDS = 5.0
MAX_TEXT_ENV = 128 * 1024  # PROMPT_TEXT is passed only below this size


@dataclass(frozen=True)
class Measurement:
    at: str
    value: float | None
    stable: float | None
    threshold: str
    samples: float | None
    phase: str  # Successful | Failed | Inconclusive
    message: str = ""

    def to_status(self) -> dict[str, Any]:
        data: dict[str, Any] = {"at": self.at, "threshold": self.threshold, "phase": self.phase}
        for name in ("value", "stable", "samples"):
            value = getattr(self, name)
            if value is not None and math.isfinite(value):  # JSON has no NaN or infinity
                data[name] = round(value, 6)
        if self.message:
            data["message"] = self.message
        return data


@dataclass(frozen=True)
class Context:
    """What a provider needs to measure the candidate."""

    api: KubeApi
    prometheus_url: str | None
    prompt_body: Mapping[str, Any]  # the Prompt as read (owner of a Job)
    key: str  # the client's ``prompt`` label
    candidate_text: str  # the candidate's text or call document
    now: datetime


def measurement_phase(
    threshold: Threshold,
    value: float | None,
    stable: float | None,
    samples: float | None,
    min_samples: int,
) -> tuple[str, str]:
    """A measurement's phase and why: Inconclusive without enough data."""
    if value is None or math.isnan(value):
        return INCONCLUSIVE, "no data for the candidate yet"
    if samples is None or samples < min_samples:
        return INCONCLUSIVE, f"{samples or 0:g} uses of the candidate, fewer than {min_samples}"
    if threshold.minimum is not None:
        floor = threshold.minimum
    elif stable is None or math.isnan(stable):
        return INCONCLUSIVE, "no data for the stable revision to compare with"
    else:
        floor = stable - (threshold.max_drop_from_stable or 0.0)
    if value >= floor:
        return SUCCESSFUL, f"{value:g} >= {floor:g}"
    return FAILED, f"{value:g} < {floor:g}"


def judge(
    spec: PrometheusAnalysis, measurements: Sequence[Mapping[str, Any]], failures: int
) -> str:
    """A Prometheus run's phase: Failed once failures exceed the limit, Successful
    once ``count`` measurements passed, else Running (Inconclusive while the
    latest measurement had no data)."""
    if failures > spec.failure_limit:
        return FAILED
    passed = sum(1 for m in measurements if m.get("phase") == SUCCESSFUL)
    if passed >= spec.count:
        return SUCCESSFUL
    if measurements and measurements[-1].get("phase") == INCONCLUSIVE:
        return INCONCLUSIVE
    return RUNNING


def current_run(state: RolloutState, step: RolloutStep) -> dict[str, Any]:
    """The run of the state's step (one started since the step began), or a new one."""
    started = time_text(state.step_started_at) if state.step_started_at else ""
    for run in reversed(state.analysis_runs):
        if run.get("step") == state.step and str(run.get("startedAt") or "") >= started:
            return dict(run)
    return {
        "step": state.step,
        "provider": "prometheus" if step.prometheus is not None else "job",
        "phase": RUNNING,
        "startedAt": started,
        "measurements": [],
        "failures": 0,
        "message": "",
    }


def _due(run: Mapping[str, Any], interval: int, now: datetime) -> float:
    """Seconds until the next Prometheus measurement (0: now)."""
    measurements = run.get("measurements") or []
    last = parse_time(measurements[-1].get("at")) if measurements else None
    if last is None:
        return 0.0
    return max(0.0, interval - (now - last).total_seconds())


async def advance(state: RolloutState, step: RolloutStep, context: Context) -> Analysis:
    """The state's analysis step one measurement further (when one is due), judged."""
    run = current_run(state, step)
    if run["phase"] in (SUCCESSFUL, FAILED):
        return _report(state, run, 0.0)
    if step.prometheus is not None:
        wait = _due(run, step.prometheus.interval_seconds, context.now)
        if wait > 0:
            return _report(state, run, wait)
        measured = await measure_prometheus(run, step.prometheus, state, context)
        run = record(run, measured, step.prometheus, context.now)
        return _report(state, run, float(step.prometheus.interval_seconds))
    assert step.job is not None
    run = await measure_job(run, step.job, state, context)
    return _report(state, run, JOB_POLL_SECONDS)


def record(
    run: Mapping[str, Any], measured: Measurement, spec: PrometheusAnalysis, now: datetime
) -> dict[str, Any]:
    """``run`` with one more measurement, judged (the newest MAX_MEASUREMENTS kept;
    the judging counts those and the failures total)."""
    measurements = [*(run.get("measurements") or []), measured.to_status()][-MAX_MEASUREMENTS:]
    failures = int(run.get("failures") or 0) + (measured.phase == FAILED)
    phase = judge(spec, measurements, failures)
    updated = {**run, "measurements": measurements, "failures": failures, "phase": phase}
    updated["message"] = f"{measured.phase.lower()}: {measured.message}"
    if phase in (SUCCESSFUL, FAILED):
        updated["finishedAt"] = time_text(now)
    return updated


def _report(state: RolloutState, run: dict[str, Any], retry_after: float) -> Analysis:
    runs = [
        r
        for r in state.analysis_runs
        if not (r.get("step") == run["step"] and r.get("startedAt") == run["startedAt"])
    ]
    message = str(run.get("message") or f"{run['phase'].lower()}")
    return Analysis(str(run["phase"]), (*runs, run), retry_after, message)


def _provider(name: str) -> Any:
    """``prometheus`` or ``jobs``, imported when a step uses it (the Prometheus client
    and the Job calls stay out of the rest of the operator's imports)."""
    return importlib.import_module(f"{__package__}.{name}")


def _placeholders(query: str, revisions: Sequence[str], variant: str) -> str:
    regex = "|".join(revisions)
    return query.replace("$REVISIONS", regex).replace("$VARIANT", variant)


async def _scalar(url: str, promql: str) -> tuple[float | None, str]:
    prometheus = _provider("prometheus")
    try:
        value: float | None = await prometheus.query_scalar(url, promql)
        return value, ""
    except prometheus.PrometheusUnavailable as exc:
        return None, f"Prometheus unavailable: {exc}"


async def _value_of(
    spec: PrometheusAnalysis, state: RolloutState, context: Context, variant: str
) -> tuple[float | None, float | None, str]:
    """(value, samples, why none) of ``variant`` over the rollout's revisions."""
    assert context.prometheus_url is not None
    revisions = list(state.revisions) or [state.candidate]
    if spec.query:
        value, why = await _scalar(
            context.prometheus_url, _placeholders(spec.query, revisions, variant)
        )
        return value, value if value is not None else None, why
    prometheus = _provider("prometheus")
    share, samples = prometheus.outcome_share_queries(
        context.key, revisions, variant, spec.good_outcomes, spec.interval_seconds
    )
    value, why = await _scalar(context.prometheus_url, share)
    if why:
        return None, None, why
    count, why = await _scalar(context.prometheus_url, samples)
    return value, count, why


async def measure_prometheus(
    run: Mapping[str, Any], spec: PrometheusAnalysis, state: RolloutState, context: Context
) -> Measurement:
    """One measurement of the canary (and of the stable, for a relative threshold).
    A custom query has no sample count: its value stands for itself."""
    at = time_text(context.now)
    threshold = spec.threshold.describe()
    if not context.prometheus_url:
        why = "no Prometheus address: set the chart's rollouts.prometheus.url"
        return Measurement(at, None, None, threshold, None, INCONCLUSIVE, why)
    value, samples, why = await _value_of(spec, state, context, CANARY)
    stable = None
    if not why and spec.threshold.minimum is None:
        stable, _, why = await _value_of(spec, state, context, STABLE)
    if why:
        return Measurement(at, value, stable, threshold, samples, INCONCLUSIVE, why)
    min_samples = spec.min_samples if not spec.query else 0
    phase, message = measurement_phase(spec.threshold, value, stable, samples, min_samples)
    return Measurement(at, value, stable, threshold, samples, phase, message)


def _earlier(job: Mapping[str, Any], started: datetime | None) -> bool:
    """Whether ``job`` was made before the run began (by an earlier attempt)."""
    meta = job.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return started is not None and created is not None and created < started


async def _delete_job(api: KubeApi, namespace: str, name: str) -> None:
    path = object_path("batch/v1", "jobs", namespace, name)
    with contextlib.suppress(NotFound):  # gone already
        await api.request("DELETE", path, params={"propagationPolicy": "Background"})


async def measure_job(
    run: Mapping[str, Any], spec: JobAnalysis, state: RolloutState, context: Context
) -> dict[str, Any]:
    """The step's Job created (or found: its name is fixed) and its outcome read:
    Succeeded passes, Failed fails, longer than the timeout fails."""
    jobs = _provider("jobs")
    text = context.candidate_text
    manifest = jobs.job_manifest(
        context.prompt_body,
        spec.template,
        step=state.step,
        candidate_revision=state.candidate,
        candidate_text=text if len(text.encode("utf-8")) < MAX_TEXT_ENV else None,
    )
    job = await jobs.ensure_job(context.api, manifest)
    name = str(manifest["metadata"]["name"])
    namespace = str(manifest["metadata"]["namespace"])
    updated = {**run, "job": name, "log": f"kubectl logs -n {namespace} job/{name}"}
    started = parse_time(run.get("startedAt"))
    if _earlier(job, started):  # a retried rollout's step: its name is the same
        await _delete_job(context.api, namespace, name)
        updated.update(phase=RUNNING, message=f"Job {name} of an earlier attempt is removed")
        return updated
    outcome = jobs.job_outcome(job)
    late = started is not None and (context.now - started).total_seconds() > spec.timeout_seconds
    if outcome == "Succeeded":
        updated.update(phase=SUCCESSFUL, message=f"Job {name} succeeded")
    elif outcome == "Failed" or late:
        why = "failed" if outcome == "Failed" else f"ran longer than {spec.timeout_seconds}s"
        updated.update(phase=FAILED, message=f"Job {name} {why}")
    else:
        updated.update(phase=RUNNING, message=f"Job {name} is running")
    if updated["phase"] in (SUCCESSFUL, FAILED):
        updated["finishedAt"] = time_text(context.now)
    return updated
