"""Readiness: the Prompt's status (conditions, printer fields) and its warning Events.

What the status says is built by the pure functions in ``..status`` from the
typed values a reconcile already holds; this controller only writes what
changed and remembers its own writes. A write's answer can be newer than the
watch event a reconcile holds, so the answer is kept until the event of that
write arrives, and compared against instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

from .. import metrics
from ..events import now_rfc3339, post_event
from ..logs import about
from ..model import PromptRef
from ..policies import Problem
from ..runtime.client import KubeApi, object_path
from ..status import (
    SPEC_SERVED,
    Condition,
    DeliveryCount,
    build_status,
    condition,
    delivered_condition,
    delivery_field,
    ready_condition,
    spec_served_condition,
    status_patch,
    variants_field,
)
from .desired import Desired
from .revisions import Outcome

logger = logging.getLogger(__name__)


@dataclass
class _Written:
    """Status we wrote last, with the resourceVersion the API server gave it."""

    resource_version: int
    status: Mapping[str, Any]


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def generation_of(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def prompt_path(ref: PromptRef) -> str:
    return object_path(objects.API_VERSION, objects.PLURAL, ref.namespace, ref.name)


class Readiness:
    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._written: dict[PromptRef, _Written] = {}

    def observe(self, ref: PromptRef, body: Mapping[str, Any]) -> None:
        """A watch event for ``ref``: once it is as new as our write, trust it again."""
        written = self._written.get(ref)
        if written is not None and resource_version(body) >= written.resource_version:
            del self._written[ref]

    def forget(self, ref: PromptRef) -> None:
        self._written.pop(ref, None)

    def latest(self, ref: PromptRef, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The newest status known: the body's, or our own write when that is newer."""
        current: Mapping[str, Any] = body.get("status") or {}
        written = self._written.get(ref)
        if written is not None and written.resource_version > resource_version(body):
            current = written.status
        return current

    # -- what a reconcile arrived at -----------------------------------------------

    async def ready(
        self,
        body: Mapping[str, Any],
        desired: Desired,
        outcome: Outcome,
        count: DeliveryCount | None,
        pods: list[str],
        *,
        rollout: Mapping[str, Any] | None = None,
    ) -> None:
        """Ready: the revision is in place. ``count``: who serves it (None: unchanged,
        the status keeps its count); ``pods``: the subscribed pods selecting it;
        ``rollout``: status.rollout (None: the Prompt has none, and no SpecServed)."""
        rendered = desired.rendered
        extra: dict[str, Any] = {
            "revisions": [r.to_status() for r in outcome.records],
            "nextActivation": desired.next_activation,
            "activeSchedule": desired.active_schedule,
            "variants": variants_field(desired.prompt.ref.name, rendered.variants, pods),
            "rollout": rollout,
        }
        counted: Condition | None = None
        if count is not None:
            extra["delivery"] = delivery_field(count)
            counted = delivered_condition(count, rendered.revision)
        ready = ready_condition(desired.prompt.ref.name, rendered.revision, outcome.number)
        await self._write(
            desired.prompt.ref,
            body,
            desired.prompt.uid,
            ready,
            revision=rendered.revision,
            key=rendered.key,
            extra=extra,
            delivered=counted,
            served=None if rollout is None else spec_served_condition(rollout),
        )

    async def not_ready(
        self, ref: PromptRef, body: Mapping[str, Any], problem: Problem, desired: Desired | None
    ) -> None:
        """Not ready (``desired`` None: the spec could not even be parsed)."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        extra = None if desired is None else {"nextActivation": desired.next_activation}
        ready = Condition("Ready", False, problem.reason, problem.message)
        await self._write(ref, body, uid, ready, revision=None, key=None, extra=extra)

    async def refresh_delivery(
        self,
        ref: PromptRef,
        revision: str,
        count: DeliveryCount,
        variants: list[dict[str, Any]] | None,
    ) -> None:
        """Rewrite status.delivery (and status.variants' pod counts) after pods came or
        went; rate-limited by the caller."""
        body = await self._api.get(prompt_path(ref))
        if body is None:
            return
        current = self.latest(ref, body)
        if current.get("revision") != revision:
            return  # an edit is under way; its own status write carries delivery
        ready = condition(current, "Ready")
        if ready is None:
            return
        generation = generation_of(body)
        desired = build_status(
            current,
            generation=int(ready.get("observedGeneration") or generation),
            conditions=[Condition.from_status(ready), delivered_condition(count, revision)],
            revision=revision,
            key=None,
            now=now_rfc3339(),
            extra={
                "delivery": delivery_field(count),
                "variants": variants,
            },
        )
        desired["observedGeneration"] = current.get("observedGeneration", generation)
        await self._patch(ref, current, desired)

    async def announce(self, desired: Desired, outcome: Outcome) -> None:
        """Events for a new revision: a schedule entry took effect, policy warnings.
        A plain edit posts none."""
        if outcome.new is None:
            return
        ref, uid = desired.prompt.ref, desired.prompt.uid
        if outcome.new.source.startswith("schedule "):
            await post_event(
                self._api,
                ref,
                uid,
                warning=False,
                reason="ScheduleActivated",
                message=f"the {outcome.new.source} entry took effect: "
                f"revision {outcome.number} ({desired.rendered.revision})",
            )
        for warning in desired.verdict.warnings:
            await post_event(
                self._api, ref, uid, warning=True, reason=warning.reason, message=warning.message
            )

    # -- writing -------------------------------------------------------------------

    async def _write(
        self,
        ref: PromptRef,
        body: Mapping[str, Any],
        uid: str,
        ready: Condition,
        *,
        revision: str | None,
        key: str | None,
        extra: Mapping[str, Any] | None = None,
        delivered: Condition | None = None,
        served: Condition | None = None,
    ) -> None:
        """Write the status a reconcile arrived at (and an Event when it turned bad).
        ``served``: the SpecServed condition of a rollout; absent from a Ready status
        without one."""
        current = self.latest(ref, body)
        conditions = [ready] if delivered is None else [ready, delivered]
        if served is not None:
            conditions.append(served)
        if delivered is None and "delivery" not in (extra or {}) and current.get("delivery"):
            # Not counted again: keep what pods serve (the last good revision) as it was.
            kept = condition(current, "Delivered")
            if kept is not None:
                conditions.append(Condition.from_status(kept))
        desired = build_status(
            current,
            generation=generation_of(body),
            conditions=conditions,
            revision=revision,
            key=key,
            now=now_rfc3339(),
            extra=extra,
            dropped=(SPEC_SERVED,) if ready.status and served is None else (),
        )
        if not await self._patch(ref, current, desired):
            return
        before = condition(current, "Ready")
        if not ready.status and (
            before is None
            or before.get("reason") != ready.reason
            or before.get("message") != ready.message
        ):
            logger.warning(
                "Prompt %s is not ready: %s: %s",
                ref,
                ready.reason,
                ready.message,
                extra=about(ref),
            )
            await post_event(
                self._api, ref, uid, warning=True, reason=ready.reason, message=ready.message
            )

    async def _patch(
        self, ref: PromptRef, current: Mapping[str, Any], desired: dict[str, Any]
    ) -> bool:
        """Write what differs between ``current`` and ``desired``; False when nothing
        does. Remembers the result, which may be newer than the next event held."""
        patch = status_patch(current, desired)
        if not patch:
            return False
        result = await self._api.merge_patch_status(prompt_path(ref), patch)
        metrics.WRITES.labels("status").inc()
        self._written[ref] = _Written(
            resource_version(result or {}), (result or {}).get("status") or desired
        )
        return True
