"""Delivery: signal the subscribed pods, count how many serve a Prompt's revision.

An edit's count is taken when its revision is written (folded into that
edit's one status write). After that, a pod coming, going or answering marks
the Prompts it selects, and this controller's own queue rewrites their
``status.delivery`` at most once per ``--delivery-refresh`` each (a delayed
add in the runtime's work queue; nothing polls), so pods starting and
stopping never cost a status write per Prompt per pod. Only the leader writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prompt_contract import hops

from .. import metrics
from ..config import OperatorConfig
from ..model import Prompt, PromptRef
from ..runtime.controller import DONE, Result
from ..runtime.workqueue import WorkQueue
from ..status import DeliveryCount, variants_field
from .desired import Desired, known_delivery
from .signals import Signals
from .subscribers import PodKey, Subscriber, Subscribers

logger = logging.getLogger(__name__)


class DeliveryStatus(Protocol):
    """Where a changed count is written (the readiness controller)."""

    async def refresh_delivery(
        self,
        ref: PromptRef,
        revision: str,
        count: DeliveryCount,
        variants: list[dict[str, Any]] | None,
    ) -> None: ...


@dataclass(frozen=True)
class Target:
    """What each selecting pod should serve of one Prompt."""

    revision: str
    labels: Mapping[str, str]
    variants: tuple[tuple[str, int, str], ...]


def target_of(desired: Desired) -> Target:
    rendered = desired.rendered
    return Target(rendered.revision, dict(desired.prompt.labels), rendered.variants)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Done callback of a delivery nobody awaited (its reconcile failed after the
    ConfigMap was written): say what went wrong instead of a warning at exit."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("signalling pods failed: %s", task.exception())


class Delivery:
    def __init__(
        self,
        subscribers: Subscribers,
        signals: Signals,
        status: DeliveryStatus,
        config: OperatorConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._subscribers = subscribers
        self._signals = signals
        self._status = status
        self._config = config
        self._clock = clock
        self._current: dict[PromptRef, Target] = {}
        self._pending: set[PromptRef] = set()  # for the pending-delivery gauge
        self._last_written: dict[PromptRef, tuple[float, tuple[int, int]]] = {}
        # Prompts whose count may have moved, each due at its next allowed write.
        self.queue: WorkQueue[PromptRef] = WorkQueue(clock=clock)
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

    def pods(self, prompt: Prompt) -> list[str]:
        """Names of the subscribed pods that select ``prompt`` (for status.variants)."""
        return self._subscribers.matching_pods(prompt)

    # -- an edit -------------------------------------------------------------------

    def start(self, desired: Desired) -> asyncio.Task[DeliveryCount]:
        """The revision's ConfigMap exists: signal the pods now, count when they answer."""
        hops.mark(hops.APPLIED, str(desired.prompt.ref), desired.rendered.revision)
        task = asyncio.get_running_loop().create_task(self.delivered(desired))
        task.add_done_callback(_retrieve)
        return task

    async def settle(
        self,
        desired: Desired,
        wrote: bool,
        status: Mapping[str, Any],
        signalling: asyncio.Task[DeliveryCount] | None,
    ) -> DeliveryCount | None:
        """The count for this reconcile's status; None when nothing was delivered
        (the status keeps its count, and whoever lacks the revision is caught up)."""
        known = known_delivery(status)
        same = status.get("revision") == desired.rendered.revision
        if not wrote and same and known is not None:
            # Waiting for every pod here would make a restart with thousands of
            # Prompts slow and could write counts nobody changed.
            self.track(desired, known)
            return None
        if wrote and signalling is None:  # relabelled (a rollback), not created
            hops.mark(hops.APPLIED, str(desired.prompt.ref), desired.rendered.revision)
        return await (signalling or self.delivered(desired))

    async def delivered(self, desired: Desired) -> DeliveryCount:
        """Signal every matching pod that lacks the revision, wait (bounded) for the
        answers, and count who serves it."""
        ref, target = desired.prompt.ref, target_of(desired)
        previous = self._current.get(ref)
        self._current[ref] = target
        await self._subscribers.synced.wait()
        pods = self._subscribers.matching(ref, target.labels)
        lagging = [p for p in pods if self._signals.serves(p, ref.name) != target.revision]
        waits = [self._signals.send(p, ref.name, target.revision) for p in lagging]
        if previous is not None and previous.labels != target.labels:
            # Pods that selected the old labels but not the new ones must drop the
            # file: an empty revision tells them "you should not serve this".
            dropped = set(self._subscribers.matching(ref, previous.labels)) - set(pods)
            waits += [self._signals.send(p, ref.name, "") for p in dropped]
        await self._wait(waits)
        count = self.count(ref, target.revision, target.labels)
        self._last_written[ref] = (self._clock(), (count.updated, count.subscribed))
        self.queue.cancel(ref)  # this count goes into the edit's own status write
        self.queue.discard(ref)
        return count

    def track(self, desired: Desired, known: tuple[int, int]) -> None:
        """Nothing changed (an operator restart, a re-applied manifest): trust the
        delivery count in the status, signal whoever lacks the revision without
        waiting, and let the bounded refresh write only if the count really moved."""
        ref, target = desired.prompt.ref, target_of(desired)
        self._current[ref] = target
        self._last_written.setdefault(ref, (self._clock(), known))
        for pod in self._subscribers.matching(ref, target.labels):
            if self._signals.serves(pod, ref.name) != target.revision:
                self._signals.notify(pod, ref.name, target.revision)

    async def withdraw(self, ref: PromptRef) -> None:
        """The Prompt is gone: tell the pods that served it to drop its file."""
        current = self._current.get(ref)
        self.forget(ref)
        if current is None:
            return
        pods = self._subscribers.matching(ref, current.labels)
        await self._wait([self._signals.send(p, ref.name, "") for p in pods])

    def revision_written(self, configmap: Mapping[str, Any]) -> None:
        """A revision ConfigMap as the API server returned it: what signals carry."""
        self._signals.revisions.written(configmap)

    def revision_held(self, namespace: str, prompt: str, revision: str) -> dict[str, Any] | None:
        """A revision ConfigMap still held for signals (the last two of a Prompt)."""
        return self._signals.revisions.configmap(namespace, prompt, revision)

    def forget(self, ref: PromptRef) -> None:
        self._signals.revisions.forget(ref.namespace, ref.name)
        self._pending.discard(ref)
        self._current.pop(ref, None)
        self._last_written.pop(ref, None)
        self.queue.cancel(ref)

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
        for ref, target in list(self._current.items()):
            if ref.namespace == key[0] and after.selector.matches(target.labels):
                self._signals.notify(key, ref.name, target.revision)

    def _mark_prompts(self, namespace: str, sub: Subscriber | None) -> None:
        if sub is None:
            return
        for ref, target in self._current.items():
            if ref.namespace == namespace and sub.selector.matches(target.labels):
                self._mark(ref)

    def _served_changed(self, pod: PodKey, prompts: list[str]) -> None:
        for name in prompts:
            self._mark(PromptRef(pod[0], name))

    def _mark(self, ref: PromptRef) -> None:
        """``ref``'s count may have moved: refresh it once its last write is old enough."""
        if ref not in self._current:
            return
        self.queue.add_after(ref, self._wait_before_write(ref))

    def _wait_before_write(self, ref: PromptRef) -> float:
        last = self._last_written.get(ref)
        if last is None:
            return 0.0
        return max(0.0, last[0] + self._config.delivery_refresh - self._clock())

    # -- the bounded refresh: this controller's reconcile ---------------------------

    async def refresh(self, ref: PromptRef) -> Result:
        """Rewrite ``ref``'s status.delivery if its count moved since the last write."""
        target = self._current.get(ref)
        if target is None:
            return DONE
        wait = self._wait_before_write(ref)
        if wait > 0:
            return Result(requeue_after=wait)  # an edit wrote a count meanwhile
        count = self.count(ref, target.revision, target.labels)
        last = self._last_written.get(ref)
        pair = (count.updated, count.subscribed)
        if last is not None and last[1] == pair:
            return DONE
        pods = [name for _, name in self._subscribers.matching(ref, target.labels)]
        variants = variants_field(ref.name, target.variants, pods)
        await self._status.refresh_delivery(ref, target.revision, count, variants)
        self._last_written[ref] = (self._clock(), pair)
        return DONE
