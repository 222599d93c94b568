"""Delivery accounting: how many subscribed pods serve a Prompt's revision.

Taken when a revision changes (folded into that edit's one status write) and
refreshed at a bounded rate after that, so pods starting and stopping never
cost a status write per Prompt per pod. Only the leader writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from .. import metrics
from ..config import OperatorConfig
from ..logs import about
from ..model import Prompt, PromptRef
from ..runtime.errors import ApiError
from ..runtime.leader import Leadership
from ..status import DeliveryCount
from .signals import Signals
from .subscribers import PodKey, Subscriber, Subscribers

logger = logging.getLogger(__name__)


class DeliveryStatus(Protocol):
    """Where a changed count is written (the status writer)."""

    async def refresh_delivery(
        self, ref: PromptRef, revision: str, count: DeliveryCount
    ) -> None: ...


class DeliveryAccounting:
    def __init__(
        self,
        subscribers: Subscribers,
        signals: Signals,
        status: DeliveryStatus,
        config: OperatorConfig,
        leadership: Leadership,
    ) -> None:
        self._subscribers = subscribers
        self._signals = signals
        self._status = status
        self._config = config
        self._leadership = leadership
        # Prompt -> (current revision, its labels): what each pod should serve.
        self._current: dict[PromptRef, tuple[str, Mapping[str, str]]] = {}
        self._pending: set[PromptRef] = set()  # for the pending-delivery gauge
        self._stale: set[PromptRef] = set()  # delivery counts changed since the last write
        self._last_written: dict[PromptRef, tuple[float, tuple[int, int]]] = {}
        subscribers.add_handler(self._pod_changed)
        signals.add_served_handler(self._served_changed)

    # -- counting ------------------------------------------------------------------

    def count(self, ref: PromptRef, revision: str, labels: Mapping[str, str]) -> DeliveryCount:
        """Who serves ``revision``; also keeps the pending-delivery gauge current."""
        pods = self._subscribers.matching(ref, labels)
        missing = tuple(
            sorted(
                name for ns, name in pods if self._signals.serves((ns, name), ref.name) != revision
            )
        )
        result = DeliveryCount(len(pods) - len(missing), len(pods), missing)
        if result.updated < result.subscribed:
            self._pending.add(ref)
        else:
            self._pending.discard(ref)
        metrics.PENDING_DELIVERY.set(len(self._pending))
        return result

    async def delivered(self, prompt: Prompt, revision: str) -> DeliveryCount:
        """Signal every matching pod that lacks ``revision``, wait (bounded) for the
        answers, and count who serves it."""
        ref = prompt.ref
        previous = self._current.get(ref)
        self._current[ref] = (revision, dict(prompt.labels))
        await self._subscribers.synced.wait()
        pods = self._subscribers.matching(ref, prompt.labels)
        lagging = [p for p in pods if self._signals.serves(p, ref.name) != revision]
        waits = [self._signals.send(p, ref.name, revision) for p in lagging]
        if previous is not None and previous[1] != prompt.labels:
            # Pods that selected the old labels but not the new ones must drop the
            # file: an empty revision tells them "you should not serve this".
            dropped = set(self._subscribers.matching(ref, previous[1])) - set(pods)
            waits += [self._signals.send(p, ref.name, "") for p in dropped]
        await self._wait(waits)
        count = self.count(ref, revision, prompt.labels)
        self._last_written[ref] = (time.monotonic(), (count.updated, count.subscribed))
        self._stale.discard(ref)
        return count

    def track(self, prompt: Prompt, revision: str, known: tuple[int, int]) -> None:
        """Nothing changed (an operator restart, a re-applied manifest): trust the
        delivery count in the status, signal whoever lacks the revision without
        waiting, and let the bounded refresh write only if the count really moved."""
        ref = prompt.ref
        self._current[ref] = (revision, dict(prompt.labels))
        self._last_written.setdefault(ref, (time.monotonic(), known))
        for pod in self._subscribers.matching(ref, prompt.labels):
            if self._signals.serves(pod, ref.name) != revision:
                self._signals.notify(pod, ref.name, revision)

    async def withdraw(self, ref: PromptRef) -> None:
        """The Prompt is gone: tell the pods that served it to drop its file."""
        current = self._current.get(ref)
        self.forget(ref)
        if current is None:
            return
        await self._wait(
            [
                self._signals.send(p, ref.name, "")
                for p in self._subscribers.matching(ref, current[1])
            ]
        )

    def forget(self, ref: PromptRef) -> None:
        self._pending.discard(ref)
        self._current.pop(ref, None)
        self._stale.discard(ref)
        self._last_written.pop(ref, None)

    async def _wait(self, waits: list[asyncio.Future[None]]) -> None:
        if waits:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*waits, return_exceptions=True), self._config.delivery_wait
                )

    # -- what changes a count ------------------------------------------------------

    def _pod_changed(
        self, key: PodKey, before: Subscriber | None, after: Subscriber | None
    ) -> None:
        self._mark_prompts(key[0], before)
        if after is None:
            return
        self._mark_prompts(key[0], after)
        # Learn what the new (or moved) sidecar serves: one batched signal with
        # every matching Prompt's revision. Pairs it already serves cost nothing.
        for ref, (revision, labels) in list(self._current.items()):
            if ref.namespace == key[0] and after.selector.matches(labels):
                self._signals.notify(key, ref.name, revision)

    def _mark_prompts(self, namespace: str, sub: Subscriber | None) -> None:
        if sub is None:
            return
        for ref, (_, labels) in self._current.items():
            if ref.namespace == namespace and sub.selector.matches(labels):
                self._stale.add(ref)

    def _served_changed(self, pod: PodKey, prompts: list[str]) -> None:
        for name in prompts:
            self._stale.add(PromptRef(pod[0], name))

    # -- the bounded refresh -------------------------------------------------------

    async def run(self) -> None:
        """Rewrite status.delivery of Prompts whose counts changed, at a bounded rate."""
        interval = self._config.delivery_refresh
        while True:
            await asyncio.sleep(min(1.0, interval))
            if not self._stale or not self._leadership.valid():
                continue
            now = time.monotonic()
            for ref in list(self._stale):
                current = self._current.get(ref)
                if current is None:
                    self._stale.discard(ref)
                    continue
                last = self._last_written.get(ref)
                if last is not None and now - last[0] < interval:
                    continue
                revision, labels = current
                count = self.count(ref, revision, labels)
                self._stale.discard(ref)
                if last is not None and last[1] == (count.updated, count.subscribed):
                    continue
                self._last_written[ref] = (now, (count.updated, count.subscribed))
                try:
                    await self._status.refresh_delivery(ref, revision, count)
                except ApiError as exc:
                    logger.warning(
                        "Prompt %s: could not refresh delivery status: %s",
                        ref,
                        exc,
                        extra=about(ref),
                    )
                    self._stale.add(ref)
