"""spec.rollout parsed once into typed values (the CRD's schema already holds).

Durations are Go-style (``90s``, ``2m``, ``1h30m``), as Argo Rollouts writes
them; ``parse_duration`` returns seconds or None when the text is not one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import SpecError

_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
MIN_PAUSE_SECONDS = 1
MAX_PAUSE_SECONDS = 24 * 3600
DEFAULT_INTERVAL_SECONDS = 30
DEFAULT_JOB_TIMEOUT_SECONDS = 600


def parse_duration(text: str) -> int | None:
    """Seconds in a Go-style duration of hours, minutes and seconds; None if not one."""
    found = _DURATION.fullmatch(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class Threshold:
    minimum: float | None = None  # the candidate's value must be at least this
    max_drop_from_stable: float | None = None  # ... or at least the stable's minus this

    def describe(self) -> str:
        if self.minimum is not None:
            return f">= {self.minimum:g}"
        return f">= stable - {self.max_drop_from_stable:g}"


@dataclass(frozen=True)
class PrometheusAnalysis:
    query: str  # "": the default share of good outcomes
    good_outcomes: tuple[str, ...]
    threshold: Threshold
    min_samples: int = 0
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    count: int = 1
    failure_limit: int = 0


@dataclass(frozen=True)
class JobAnalysis:
    template: Mapping[str, Any]  # a Job's pod template (spec.template of a batch/v1 Job)
    timeout_seconds: int = DEFAULT_JOB_TIMEOUT_SECONDS


@dataclass(frozen=True)
class RolloutStep:
    """Exactly one of: a canary weight, a pause (``pause_seconds`` None with
    ``pause`` True: until promoted), an analysis."""

    set_weight: int | None = None
    pause: bool = False
    pause_seconds: int | None = None
    pause_text: str = ""  # the duration as written, for messages
    prometheus: PrometheusAnalysis | None = None
    job: JobAnalysis | None = None

    @property
    def is_analysis(self) -> bool:
        return self.prometheus is not None or self.job is not None

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.pause:
            return f"pause {self.pause_text}" if self.pause_text else "pause until promoted"
        return "analysis (prometheus)" if self.prometheus is not None else "analysis (job)"


@dataclass(frozen=True)
class Rollout:
    steps: tuple[RolloutStep, ...] = field(default_factory=tuple)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be an object")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} must be a number")
    return float(value)


def _whole(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} must be an integer")
    return value


def _seconds(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, str):
        raise SpecError(f"{where} must be a duration such as 30s, 2m or 1h")
    seconds = parse_duration(value)
    if seconds is None:
        raise SpecError(f"{where} is {value!r}: use a duration such as 30s, 2m or 1h")
    return seconds


def _threshold(raw: Any, where: str) -> Threshold:
    raw = _mapping(raw or {}, where)
    minimum, drop = raw.get("minimum"), raw.get("maxDropFromStable")
    return Threshold(
        minimum=None if minimum is None else _number(minimum, f"{where}.minimum"),
        max_drop_from_stable=None if drop is None else _number(drop, f"{where}.maxDropFromStable"),
    )


def _prometheus(raw: Mapping[str, Any], where: str) -> PrometheusAnalysis:
    outcomes = raw.get("goodOutcomes") or []
    if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
        raise SpecError(f"{where}.goodOutcomes must be a list of strings")
    query = raw.get("query") or ""
    if not isinstance(query, str):
        raise SpecError(f"{where}.query must be a string")
    return PrometheusAnalysis(
        query=query,
        good_outcomes=tuple(outcomes),
        threshold=_threshold(raw.get("threshold"), f"{where}.threshold"),
        min_samples=_whole(raw.get("minSamples"), f"{where}.minSamples", 0),
        interval_seconds=_seconds(
            raw.get("interval"), f"{where}.interval", DEFAULT_INTERVAL_SECONDS
        ),
        count=max(1, _whole(raw.get("count"), f"{where}.count", 1)),
        failure_limit=_whole(raw.get("failureLimit"), f"{where}.failureLimit", 0),
    )


def _step(raw: Mapping[str, Any], where: str) -> RolloutStep:
    if raw.get("setWeight") is not None:
        return RolloutStep(set_weight=_whole(raw["setWeight"], f"{where}.setWeight", 0))
    if raw.get("pause") is not None:
        pause = _mapping(raw["pause"], f"{where}.pause")
        text = pause.get("duration")
        seconds = None if text is None else _seconds(text, f"{where}.pause.duration", 0)
        return RolloutStep(pause=True, pause_seconds=seconds, pause_text=str(text or ""))
    analysis = _mapping(raw.get("analysis"), f"{where}.analysis")
    if analysis.get("prometheus") is not None:
        where = f"{where}.analysis.prometheus"
        return RolloutStep(prometheus=_prometheus(_mapping(analysis["prometheus"], where), where))
    job = _mapping(analysis.get("job"), f"{where}.analysis.job")
    return RolloutStep(
        job=JobAnalysis(
            template=_mapping(job.get("template") or {}, f"{where}.analysis.job.template"),
            timeout_seconds=_seconds(
                job.get("timeout"), f"{where}.analysis.job.timeout", DEFAULT_JOB_TIMEOUT_SECONDS
            ),
        )
    )


def parse_rollout(raw: Any) -> Rollout | None:
    """spec.rollout as a ``Rollout`` (None when absent); a SpecError for a wrong shape."""
    if raw is None:
        return None
    raw = _mapping(raw, "spec.rollout")
    steps = raw.get("steps") or []
    if not isinstance(steps, list):
        raise SpecError("spec.rollout.steps must be a list")
    return Rollout(
        tuple(
            _step(_mapping(item, f"spec.rollout.steps[{i}]"), f"spec.rollout.steps[{i}]")
            for i, item in enumerate(steps)
        )
    )
