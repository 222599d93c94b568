"""A delaying, rate-limited work queue with client-go's guarantees, for asyncio.

- Coalescing: a key waits in the queue at most once; ten adds before a worker
  takes it are one item.
- One worker per key: a key added while a worker has it is queued again when
  that worker calls ``done``, never handed to a second worker at once.
- Delayed adds (``add_after``): one heap of due times and one timer for the
  whole queue, as client-go's delaying queue. The earlier of two pending adds
  of a key wins. Schedules, delivery refreshes and retries all come back
  through here; there is no other timer.
- Per-key backoff: ``add_rate_limited`` delays a key that failed, exponentially
  in its failures (with full jitter) until ``forget``; an overall token bucket
  bounds how fast failed keys come back in total (client-go's default
  controller rate limiter is the larger of the two, as here).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .backoff import backoff_delay

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; ``reserve`` says how long
    the caller must wait for its token (0 when one is there)."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def reserve(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        retry_rate: float = 100.0,
        retry_burst: int = 1000,
        clock: Clock = time.monotonic,
    ) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # waiting to be taken
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._due: dict[K, float] = {}  # delayed key -> when it is added
        self._heap: list[tuple[float, int, K]] = []  # (due, tie-breaker, key); stale ones skipped
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._base = base_delay
        self._cap = max_delay
        self._clock = clock
        self._bucket = TokenBucket(retry_rate, retry_burst, clock)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending add of it wins,
        a later one is replaced by this one."""
        if delay <= 0:
            self.add(key)
            return
        due = self._clock() + delay
        pending = self._due.get(key)
        if pending is not None and pending <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()
        self._arm()

    def _compact(self) -> None:
        """Drop heap entries replaced or cancelled since (a Prompt edited often,
        each reconcile asking for the same far schedule entry again)."""
        self._heap = [entry for entry in self._heap if self._due.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)

    def promote_due(self) -> int:
        """Add every delayed key whose time has come; how many were added."""
        now = self._clock()
        added = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:  # not replaced by an earlier add since
                del self._due[key]
                self.add(key)
                added += 1
        return added

    def _arm(self) -> None:
        """One loop timer, set for the earliest due key."""
        if not self._heap:
            return
        first = self._heap[0][0]
        if self._timer is not None and self._timer_at is not None and self._timer_at <= first:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = first
        delay = max(0.0, first - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        self.promote_due()
        self._arm()

    def add_rate_limited(self, key: K) -> None:
        """``key`` failed: try it again after its backoff (and the overall limit)."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = max(backoff_delay(failures, base=self._base, cap=self._cap), self._bucket.reserve())
        self.add_after(key, delay)

    def forget(self, key: K) -> None:
        """``key`` succeeded (or is gone): its next failure starts from the base delay."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def due(self, key: K) -> float | None:
        """When a delayed add of ``key`` is due (the queue's clock), if one is pending."""
        return self._due.get(key)

    def retry_now(self) -> int:
        """Add every failed key waiting out its backoff now (their failure counts
        are kept). For when the reason they failed has gone, e.g. the API server
        is back. Keys waiting for a requested time (a schedule) keep waiting."""
        retried = [key for key in self._due if key in self._failures]
        for key in retried:
            del self._due[key]  # its heap entry is skipped when it comes up
            self.add(key)
        return len(retried)

    def cancel(self, key: K) -> None:
        """Drop a pending delayed add of ``key`` (it is gone)."""
        self._due.pop(key, None)  # its heap entry is skipped when it comes up

    def discard(self, key: K) -> None:
        """Take ``key`` out of the queue if it waits there (not if a worker has it)."""
        self._dirty.discard(key)

    async def get(self) -> K:
        while True:
            key = await self._queue.get()
            # Skip a discarded key, and a stale copy of one a worker has (``done``
            # queues it again if it was added meanwhile).
            if key in self._dirty and key not in self._processing:
                break
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def busy(self, key: K) -> bool:
        """Queued or being worked on."""
        return key in self._dirty or key in self._processing

    def __len__(self) -> int:
        return len(self._dirty)

    @property
    def delayed(self) -> int:
        """Keys waiting for their time."""
        return len(self._due)
