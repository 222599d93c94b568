"""Writes a Prompt's status, only what changed, and remembers its own writes.

The status itself is built by the pure functions in ``..status``. A write's
answer can be newer than the watch event a reconcile holds, so the answer is
kept until the event of that write arrives, and compared against instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prompt_contract import objects

from .. import metrics
from ..events import now_rfc3339, post_event
from ..logs import about
from ..model import PromptRef, SpecError, parse_prompt
from ..render import render
from ..runtime.client import KubeApi, object_path
from ..status import (
    Condition,
    DeliveryCount,
    build_status,
    condition,
    delivered_condition,
    delivery_field,
    status_patch,
    variants_field,
)
from .subscribers import Subscribers

logger = logging.getLogger(__name__)

GROUP_VERSION = objects.API_VERSION
PLURAL = objects.PLURAL


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


class StatusWriter:
    def __init__(
        self, api: KubeApi, subscribers: Subscribers, clock: Callable[[], datetime]
    ) -> None:
        self._api = api
        self._subscribers = subscribers
        self._clock = clock
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

    async def write(
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
    ) -> None:
        """Write the status a reconcile arrived at (and an Event when it turned bad)."""
        current = self.latest(ref, body)
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        conditions = [ready] if delivered is None else [ready, delivered]
        if delivered is None and "delivery" not in (extra or {}) and current.get("delivery"):
            # Not ready: keep what pods serve (the last good revision) as it was.
            kept = condition(current, "Delivered")
            if kept is not None:
                conditions.append(Condition.from_status(kept))
        desired = build_status(
            current,
            generation=generation,
            conditions=conditions,
            revision=revision,
            key=key,
            now=now_rfc3339(),
            extra=extra,
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

    async def refresh_delivery(self, ref: PromptRef, revision: str, count: DeliveryCount) -> None:
        """Rewrite status.delivery after pods came or went (rate-limited by the caller)."""
        body = await self._api.get(object_path(GROUP_VERSION, PLURAL, ref.namespace, ref.name))
        if body is None:
            return
        current = self.latest(ref, body)
        if current.get("revision") != revision:
            return  # an edit is under way; its own status write carries delivery
        ready = condition(current, "Ready")
        if ready is None:
            return
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        desired = build_status(
            current,
            generation=int(ready.get("observedGeneration") or generation),
            conditions=[
                Condition.from_status(ready),
                delivered_condition(count, revision),
            ],
            revision=revision,
            key=None,
            now=now_rfc3339(),
            extra={"delivery": delivery_field(count), **self._variant_counts(body)},
        )
        desired["observedGeneration"] = current.get("observedGeneration", generation)
        await self._patch(ref, current, desired)

    def _variant_counts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"variants": ...}`` with today's pods, when the Prompt has variants."""
        try:
            prompt = parse_prompt(body)
        except SpecError:
            return {}
        rendered = render(prompt, self._clock())
        pods = self._subscribers.matching_pods(prompt)
        return {"variants": variants_field(prompt.ref.name, rendered.variants, pods)}

    async def _patch(
        self, ref: PromptRef, current: Mapping[str, Any], desired: dict[str, Any]
    ) -> bool:
        """Write what differs between ``current`` and ``desired``; False when nothing
        does. Remembers the result, which may be newer than the next event held."""
        patch = status_patch(current, desired)
        if not patch:
            return False
        result = await self._api.merge_patch_status(
            object_path(GROUP_VERSION, PLURAL, ref.namespace, ref.name), patch
        )
        metrics.WRITES.labels("status").inc()
        self._written[ref] = _Written(
            resource_version(result or {}), (result or {}).get("status") or desired
        )
        return True
