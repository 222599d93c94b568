"""Workers, retries and requeues for one controller, as controller-runtime's.

A controller is a name, a work queue of keys and a reconcile function that
makes the world match one key and RETURNS what it wants next: nothing, or
``Result(requeue_after=seconds)`` (the next schedule entry, a refresh). An
exception means "try again": the key comes back after its backoff. The
runtime keeps every timer, counts every outcome, and runs workers only while
this replica leads (a standby's queue fills while its caches stay warm).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from . import metrics
from .errors import ApiError
from .workqueue import WorkQueue

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
# Failures of one key logged as warnings; later ones (an outage) at debug level.
MAX_ATTEMPTS_LOGGED = 5


@dataclass(frozen=True)
class Result:
    """What a reconcile wants next: nothing, ``requeue_after`` seconds, or ``retry``:
    again after the key's backoff (as an error would, but expected and not logged:
    controller-runtime's ``Requeue: true``)."""

    requeue_after: float | None = None
    retry: bool = False


DONE = Result()
RETRY = Result(retry=True)


class Controller(Generic[K]):
    def __init__(
        self,
        name: str,
        reconcile: Callable[[K], Awaitable[Result]],
        queue: WorkQueue[K],
        *,
        workers: int = 1,
        gates: Sequence[asyncio.Event] = (),
        log_fields: Callable[[K], Mapping[str, str]] = lambda key: {},
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.queue = queue
        self._reconcile = reconcile
        self._workers = workers
        self._gates = gates  # e.g. caches synced, this replica leads
        self._log_fields = log_fields
        self._clock = clock

    async def run(self) -> None:
        for gate in self._gates:
            await gate.wait()
        await asyncio.gather(*(self._work() for _ in range(self._workers)))

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: K) -> str:
        """Reconcile ``key`` once and act on its result; returns the result's label
        (success, requeue, retry or error)."""
        started = self._clock()
        try:
            result = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = "error"
            self._failed(key, exc)
        else:
            outcome = "success"
            if result.retry:
                outcome = "retry"
                metrics.RETRIES.labels(self.name).inc()
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            if result.requeue_after is not None:
                outcome = "requeue"
                self.queue.add_after(key, result.requeue_after)
        metrics.RECONCILES.labels(self.name, outcome).inc()
        metrics.RECONCILE_SECONDS.labels(self.name, outcome).observe(self._clock() - started)
        metrics.DEPTH.labels(self.name).set(len(self.queue))
        metrics.DELAYED.labels(self.name).set(self.queue.delayed)
        return outcome

    def _failed(self, key: K, exc: Exception) -> None:
        fields = dict(self._log_fields(key))
        if isinstance(exc, ApiError):
            quiet = self.queue.failures(key) >= MAX_ATTEMPTS_LOGGED
            logger.log(
                logging.DEBUG if quiet else logging.WARNING,
                "%s %s: reconcile failed, will retry: %s",
                self.name,
                key,
                exc,
                extra=fields,
            )
        else:
            logger.exception("%s %s: unexpected error, will retry", self.name, key, extra=fields)
        metrics.RETRIES.labels(self.name).inc()
        self.queue.add_rate_limited(key)
