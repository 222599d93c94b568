"""A work queue with client-go's guarantees, for asyncio.

- Coalescing: a key waits in the queue at most once; ten adds before a worker
  takes it are one item.
- One worker per key: a key added while a worker has it is queued again when
  that worker calls ``done``, never handed to a second worker at once.
- Per-key backoff: ``add_rate_limited`` delays a key that failed, exponentially
  in its failures (with full jitter) until ``forget``; an overall token bucket
  bounds how fast failed keys come back in total (client-go's default
  controller rate limiter is the larger of the two, as here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .backoff import backoff_delay

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; ``reserve`` says how long
    the caller must wait for its token (0 when one is there)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
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
    ) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # waiting to be taken
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._base = base_delay
        self._cap = max_delay
        self._bucket = TokenBucket(retry_rate, retry_burst)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds (an earlier pending add wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        pending = self._delayed.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()
        self._delayed[key] = loop.call_later(delay, self._due, key)

    def _due(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

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

    def retry_now(self) -> int:
        """Add every key waiting out a delay now (their failure counts are kept).
        For when the reason they failed has gone, e.g. the API server is back."""
        delayed, self._delayed = self._delayed, {}
        for key, handle in delayed.items():
            handle.cancel()
            self.add(key)
        return len(delayed)

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
