"""The rollout step of a reconcile: what to serve for a Prompt with spec.rollout.

``Rollouts.step`` reads what the pure plan needs (the stable revision's text
from its ConfigMap, the current analysis run measured), asks ``plan`` and
returns the ``Desired`` to serve (the spec's render, the stable revision's, or
the composite of both), the state for ``status.rollout`` and when to look
again; the reconcile writes it as any revision. ``finish`` posts the events,
sets the metrics and removes a manual action's annotation, once the status
holds the new state. Nothing here keeps a timer or a state of its own: a
restarted operator or a new leader reads everything back from the status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prompt_contract import objects

from .. import metrics
from ..events import post_event
from ..logs import about
from ..model import Prompt, PromptRef
from ..policies import Problem
from ..render import Rendered
from ..rollouts import analysis
from ..rollouts.compose import compose, mismatch, rendered_from_configmap, step_source
from ..rollouts.plan import (
    COMPOSITE,
    PHASES,
    STABLE,
    Analysis,
    Decision,
    RolloutEvent,
    RolloutState,
    plan,
    stable_revision,
)
from ..runtime.client import FIELD_MANAGER, KubeApi, object_path
from ..runtime.errors import ApiError
from .desired import Desired
from .readiness import prompt_path, resource_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """What a reconcile serves for a Prompt, and what its rollout step decided."""

    desired: Desired  # the spec's, or with the stable or composite revision rendered
    state: RolloutState | None  # status.rollout (None: removed)
    requeue_after: float | None
    events: tuple[RolloutEvent, ...] = ()
    action: str | None = None  # the manual action consumed (its annotation is removed)
    before: RolloutState | None = None  # status.rollout as the reconcile found it

    @property
    def protected(self) -> tuple[str, ...]:
        """Revisions whose ConfigMaps pruning must keep: the stable one while a
        rollout runs or is aborted (it is served again on an abort)."""
        state = self.state
        return (state.stable,) if state is not None and state.phase != "Promoted" else ()


def action_of(body: Mapping[str, Any]) -> str | None:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(objects.ROLLOUT_ACTION_ANNOTATION)
    return None if value is None else str(value)


class Rollouts:
    def __init__(
        self, api: KubeApi, clock: Callable[[], datetime], prometheus_url: str | None = None
    ) -> None:
        self._api = api
        self._clock = clock
        self._prometheus_url = prometheus_url
        self._stable: dict[PromptRef, Rendered] = {}  # immutable: cached by its hash
        self._consumed: dict[PromptRef, int] = {}  # resourceVersion of an action's removal

    def forget(self, ref: PromptRef) -> None:
        """``ref`` is gone: its cached stable text and its metric series too."""
        self._stable.pop(ref, None)
        self._consumed.pop(ref, None)
        _drop_series(ref)

    async def step(
        self, desired: Desired, status: Mapping[str, Any], body: Mapping[str, Any]
    ) -> Serving | Problem:
        """What to serve now for ``desired`` (its Prompt's spec.rollout), or why the
        change cannot be rolled out."""
        prompt, candidate = desired.prompt, desired.rendered
        action = self._action(prompt.ref, body)
        before = RolloutState.from_status(status.get("rollout"))
        if prompt.rollout is None:
            ignored: tuple[RolloutEvent, ...] = ()
            if action is not None:
                why = f"{action!r} ignored: this Prompt has no spec.rollout"
                ignored = (RolloutEvent("RolloutActionIgnored", why, warning=True),)
            return Serving(desired, None, None, ignored, action, before)
        stable_hash = stable_revision(before, status.get("revision"))
        stable: Rendered | None = None
        if stable_hash is not None and stable_hash != candidate.revision:
            stable = await self._read_stable(prompt, stable_hash)
            if stable is None:
                why = (
                    f"the stable revision {stable_hash}'s ConfigMap is gone: "
                    f"{candidate.revision} is served at once, without a rollout"
                )
                event = RolloutEvent("RolloutSkipped", why, warning=True)
                return Serving(desired, None, None, (event,), action, before)
            problem = mismatch(stable, candidate)
            if problem is not None:
                return problem
        now = self._clock()
        measured = await self._measure(desired, before, action, body, now)
        decision = plan(
            prompt.rollout, before, candidate.revision, stable_hash, now, measured, action
        )
        return self._serving(desired, stable, decision, action, before)

    def _serving(
        self,
        desired: Desired,
        stable: Rendered | None,
        decision: Decision,
        action: str | None,
        before: RolloutState | None,
    ) -> Serving:
        state = decision.state
        served = desired
        if state is not None and stable is not None and decision.serves == STABLE:
            why = "aborted" if state.phase == "Aborted" else "canary 0%"
            source = f"rollout {state.candidate[:8]} {why}: stable"
            served = dataclasses.replace(
                desired, rendered=dataclasses.replace(stable, source=source)
            )
        elif state is not None and stable is not None and decision.serves == COMPOSITE:
            source = step_source(state.candidate, state.step, state.steps, state.weight)
            rendered = compose(stable, desired.rendered, state.weight, source)
            if rendered.revision not in state.revisions:
                state = dataclasses.replace(state, revisions=(*state.revisions, rendered.revision))
            served = dataclasses.replace(desired, rendered=rendered)
        return Serving(served, state, decision.requeue_after, decision.events, action, before)

    async def _measure(
        self,
        desired: Desired,
        state: RolloutState | None,
        action: str | None,
        body: Mapping[str, Any],
        now: datetime,
    ) -> Analysis | None:
        """The current analysis step measured, when the rollout stands at one (not
        paused by hand, no manual action to apply first)."""
        spec = desired.prompt.rollout
        if (
            spec is None
            or state is None
            or action is not None
            or state.candidate != desired.rendered.revision
            or not state.running
            or state.paused_by_user
            or state.step >= len(spec.steps)
            or not spec.steps[state.step].is_analysis
        ):
            return None
        context = analysis.Context(
            self._api,
            self._prometheus_url,
            body,
            desired.rendered.key,
            desired.rendered.text,
            now,
        )
        return await analysis.advance(state, spec.steps[state.step], context)

    async def _read_stable(self, prompt: Prompt, revision: str) -> Rendered | None:
        """The stable revision as its ConfigMap holds it (None: gone or not ours)."""
        cached = self._stable.get(prompt.ref)
        if cached is not None and cached.revision == revision:
            return cached
        name = objects.configmap_name(prompt.ref.name, revision)
        cm = await self._api.get(object_path("v1", "configmaps", prompt.ref.namespace, name))
        if cm is None:
            return None
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        key = str(annotations.get(objects.KEY_ANNOTATION) or prompt.key)
        rendered = rendered_from_configmap(cm.get("data") or {}, key)
        if rendered is None or rendered.revision != revision:
            return None
        self._stable[prompt.ref] = rendered
        return rendered

    def _action(self, ref: PromptRef, body: Mapping[str, Any]) -> str | None:
        """The manual action ``body`` asks for, unless it is one already acted on: a
        watch event older than the annotation's removal still carries it."""
        action = action_of(body)
        if action is None or resource_version(body) <= self._consumed.get(ref, 0):
            return None
        return action

    async def _consume(self, ref: PromptRef, action: str) -> None:
        """Remove the action's annotation (metadata only: GitOps tools ignore an
        annotation their manifest lacks) and remember when, so it is acted on once."""
        try:
            result = await self._api.request(
                "PATCH",
                prompt_path(ref),
                params={"fieldManager": FIELD_MANAGER},
                body=_removal(action),
                content_type="application/json-patch+json",
            )
        except ApiError as exc:
            if exc.status != 422:  # 422: the test failed, the annotation changed since
                raise
            logger.info("Prompt %s: rollout action changed before its removal", ref)
            return
        metrics.WRITES.labels("prompt").inc()
        self._consumed[ref] = resource_version(result or {})
        logger.info("Prompt %s: rollout action %r done", ref, action, extra=about(ref))

    async def finish(self, prompt: Prompt, serving: Serving) -> None:
        """After the status holds ``serving.state``: events, metrics, and the manual
        action's annotation removed."""
        ref = prompt.ref
        for event in serving.events:
            await post_event(
                self._api,
                ref,
                prompt.uid,
                warning=event.warning,
                reason=event.reason,
                message=event.message,
            )
        if serving.action is not None:
            await self._consume(ref, serving.action)
        if serving.state is not None or serving.before is not None:
            _count_runs(serving.before, serving.state)
            _gauges(ref, serving.state)


ACTION_POINTER = "/metadata/annotations/" + objects.ROLLOUT_ACTION_ANNOTATION.replace("/", "~1")


def _removal(action: str) -> list[dict[str, Any]]:
    """A JSON patch removing the action annotation only while it still says ``action``
    (a person may have set another since; that one is acted on next)."""
    return [
        {"op": "test", "path": ACTION_POINTER, "value": action},
        {"op": "remove", "path": ACTION_POINTER},
    ]


def _count_runs(before: RolloutState | None, after: RolloutState | None) -> None:
    """Count each analysis run once, when it finishes."""
    if after is None:
        return
    done_before = {
        (r.get("step"), r.get("startedAt"))
        for r in (before.analysis_runs if before is not None else ())
        if r.get("finishedAt")
    }
    for run in after.analysis_runs:
        if run.get("finishedAt") and (run.get("step"), run.get("startedAt")) not in done_before:
            metrics.ANALYSIS_RUNS.labels(str(run.get("provider")), str(run.get("phase"))).inc()


def _gauges(ref: PromptRef, state: RolloutState | None) -> None:
    """The phase and weight series of a Prompt with a rollout (none without one)."""
    if state is None:
        _drop_series(ref)
        return
    for phase in PHASES:
        value = 1 if state.phase == phase else 0
        metrics.ROLLOUT_PHASE.labels(ref.namespace, ref.name, phase).set(value)
    metrics.ROLLOUT_WEIGHT.labels(ref.namespace, ref.name).set(state.weight)


def _drop_series(ref: PromptRef) -> None:
    for gauge, labels in [
        *((metrics.ROLLOUT_PHASE, (ref.namespace, ref.name, phase)) for phase in PHASES),
        (metrics.ROLLOUT_WEIGHT, (ref.namespace, ref.name)),
    ]:
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(*labels)
