"""The syncer's machinery: it knows names and revisions, nothing of Prompts.

A token bucket bounds the reads signals cost; ``Pending`` holds the names
signalled and the tickets of the signals waiting for them; ``Pacer`` says
when the next read may start (work, a free token, the resync timer, the
retry backoff); time is passed in, so tests need no clock. ``WorkLoop``
puts them under one condition: server threads submit signalled names and
wait (bounded) for their read, the syncer thread takes one read's worth of
work at a time and reports how it went.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from prompt_contract.timing import backoff_delay

from .planning import EARLY_RESYNC_SECONDS, plan_reads

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

# The retry backoff after a failed sync: full jitter, from 0.4 s up to 30 s.
RETRY_BASE_SECONDS = 0.2
RETRY_CAP_SECONDS = 30.0


class TokenBucket:
    """At most ``rate`` re-reads per second on average and ``burst`` at once."""

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now

    def available(self, now: float) -> float:
        """Tokens there now (negative after an overdraft)."""
        self._refill(now)
        return self._tokens

    def delay(self, now: float) -> float:
        """Seconds until one token is available (0 when it is now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float, cost: int = 1) -> None:
        """Spend ``cost`` tokens (the balance may go negative: later reads wait longer)."""
        self._refill(now)
        self._tokens -= cost


@dataclass
class Health:
    ready: bool = False
    degraded: bool = False
    last_sync: str | None = None
    last_error: str | None = None


# A signalled name's entry: when its first signal arrived, the latest revision signalled.
Entry = tuple[float, str]
# A signed entry's: when it arrived, its revision, and the ConfigMap it vouches for.
CarriedEntry = tuple[float, str, "dict[str, Any]"]


@dataclass
class Pending:
    """Names signalled and not yet read, and the tickets of the signals waiting.

    A signal takes a ticket; a cycle takes the names and, once they are read,
    marks every ticket up to the one it started with as done.
    """

    names: dict[str, Entry] = field(default_factory=dict)
    # Names whose ConfigMap came in a signed signal: written without a read.
    carried: dict[str, CarriedEntry] = field(default_factory=dict)
    requested: int = 0  # signal tickets handed out
    done: int = 0  # every ticket up to this one has been read

    def add(self, name: str, revision: str, arrived: float) -> None:
        first = self.names.get(name, (arrived, ""))[0]
        self.names[name] = (first, revision)

    def carry(self, name: str, revision: str, configmap: dict[str, Any], arrived: float) -> None:
        """A signed revision to write; a hint for the same revision needs no read now."""
        self.carried[name] = (arrived, revision, configmap)
        if self.names.get(name, (0.0, None))[1] == revision:
            del self.names[name]

    def busy(self, names: Iterable[str]) -> bool:
        """Whether any of ``names`` waits for a cycle already."""
        return any(n in self.names or n in self.carried for n in names)

    def ticket(self) -> int:
        self.requested += 1
        return self.requested

    def take(self, later: tuple[str, ...]) -> tuple[dict[str, Entry], dict[str, CarriedEntry], int]:
        """The names to read now (all but ``later``), every signed revision, and
        the ticket they answer.

        Signals are answered once all they named is read; names left for later
        keep their tickets waiting (within the signal's own bound)."""
        taken = {n: e for n, e in self.names.items() if n not in later}
        self.names = {n: self.names[n] for n in later}
        carried, self.carried = self.carried, {}
        return taken, carried, (self.requested if not later else self.done)

    def put_back(self, taken: dict[str, Entry], carried: dict[str, CarriedEntry]) -> None:
        """After a failed cycle: the names wait again (newer signals keep theirs)."""
        for name, entry in taken.items():
            self.names.setdefault(name, entry)
        for name, signed in carried.items():
            self.carried.setdefault(name, signed)

    def finish(self, ticket: int) -> None:
        self.done = max(self.done, ticket)


class Pacer:
    """When the next read may start: the resync timer, the rate limit and the backoff."""

    def __init__(self, bucket: TokenBucket, resync_seconds: float, early_resync: float) -> None:
        self.bucket = bucket
        self._resync = resync_seconds
        self._early = early_resync
        self._full_due = 0.0
        self._last_full = -early_resync  # monotonic time of the last complete list
        self._retry_at = 0.0
        self._attempt = 0
        self._signalled_since_failure = False  # a signal came after the read began

    def next_at(self, now: float, has_work: bool, has_free_work: bool = False) -> float:
        """When the next read may start: work is there, a token is free, backoff is over.
        Signed revisions (``has_free_work``) need no read, so no token.

        A signal that arrived after the last failure ends the backoff: the operator
        has just written to the API server, so it answers again, and waiting out a
        backoff that an outage grew to many seconds would add them to the edit.
        The bucket still bounds what signals cost, forged ones included."""
        retry_at = 0.0 if self._signalled_since_failure else self._retry_at
        if has_free_work:
            return max(now, retry_at)
        at = max(now if has_work else self._full_due, retry_at)
        return max(at, now + self.bucket.delay(now)) if at <= now else at

    def resync_due(self, now: float) -> bool:
        return now >= self._full_due

    def early_resync_allowed(self, now: float) -> bool:
        """Whether the last list is old enough to bring the next one forward."""
        return now - self._last_full >= self._early

    def signalled(self) -> None:
        self._signalled_since_failure = True

    def started(self) -> None:
        """A read begins: only signals from now on end a backoff."""
        self._signalled_since_failure = False

    def listed(self, now: float) -> None:
        """A complete list succeeded: the next resync is one interval away."""
        self._last_full = now
        self._full_due = now + self._resync

    def retry_at(self) -> float:
        return self._retry_at

    def failed(self, now: float) -> None:
        self._attempt += 1
        delay = backoff_delay(self._attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
        self._retry_at = now + delay

    def succeeded(self) -> None:
        self._attempt = 0
        self._retry_at = 0.0


@dataclass(frozen=True)
class Work:
    """One read's worth: a full list or the names to get, and the ticket it answers."""

    full: bool
    names: dict[str, Entry]
    ticket: int
    carried: dict[str, CarriedEntry] = field(default_factory=dict)


class WorkLoop:
    """Signalled names, the resync timer, the rate limit and the backoff, under one
    condition built on ``lock`` (the disk's, so a signal sees what is served and
    what is pending at once)."""

    def __init__(
        self,
        lock: threading.RLock,
        *,
        resync_seconds: float,
        reads_per_second: float,
        burst: int,
    ) -> None:
        self.cond = threading.Condition(lock)
        bucket = TokenBucket(reads_per_second, burst, time.monotonic())
        self.pacer = Pacer(bucket, resync_seconds, EARLY_RESYNC_SECONDS)
        self.pending = Pending()
        self.stopped = False

    def submit(
        self,
        pairs: Iterable[tuple[str, str]],
        arrived: float,
        deadline: float,
        vouched: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Mark ``pairs`` for reading (those in ``vouched``, signed, for writing as
        they are) and wait until they are done or ``deadline`` (monotonic) passes.
        Call with ``cond`` held (the caller decided under it)."""
        vouched = vouched or {}
        with self.cond:
            for name, revision in pairs:
                if name in vouched:
                    self.pending.carry(name, revision, vouched[name], arrived)
                else:
                    self.pending.add(name, revision, arrived)
            self.pacer.signalled()
            ticket = self.pending.ticket()
            self.cond.notify_all()
            while self.pending.done < ticket and not self.stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)

    def take(self, known: Collection[str]) -> Work | None:
        """Wait for work, a token and the end of any backoff; then take what one read
        covers (``known``: the names served, see ``plan_reads``). None once stopped."""
        with self.cond:
            while not self.stopped:
                now = time.monotonic()
                at = self.pacer.next_at(now, bool(self.pending.names), bool(self.pending.carried))
                if at <= now:
                    break
                # Signals wake us early; the loop recomputes, so they never cut the
                # rate limit short, and pile up in the pending set.
                self.cond.wait(at - now)
            if self.stopped:
                return None
            now = time.monotonic()
            if self.pending.carried and self.pacer.bucket.available(now) < 1:
                # Signed revisions go now; the names to read wait for their token.
                names, carried, ticket = self.pending.take(tuple(self.pending.names))
                return Work(False, names, ticket, carried)
            reads = plan_reads(
                self.pending.names,
                known,
                self.pacer.resync_due(now),
                self.pacer.bucket.available(now),
                early_resync_allowed=self.pacer.early_resync_allowed(now),
            )
            names, carried, ticket = self.pending.take(reads.later)
            self.pacer.started()
            self.pacer.bucket.take(now, reads.cost)
            return Work(reads.full, names, ticket, carried)

    def charge(self) -> None:
        """One more read than planned (a get that turned into a list)."""
        with self.cond:
            self.pacer.bucket.take(time.monotonic(), 1)

    def done(self, work: Work) -> None:
        """``work`` was read: answer the signals that waited for it."""
        with self.cond:
            self.pending.finish(work.ticket)
            self.cond.notify_all()

    def failed(self, work: Work | None = None) -> float:
        """A read failed: back off, and its names wait again. Returns when to retry."""
        with self.cond:
            self.pacer.failed(time.monotonic())
            if work is not None:
                self.pending.put_back(work.names, work.carried)
            return self.pacer.retry_at()

    def succeeded(self, listed: bool = False) -> None:
        with self.cond:
            if listed:
                self.pacer.listed(time.monotonic())
            self.pacer.succeeded()

    def sleep_until(self, at: float) -> None:
        """Wait until ``at`` (monotonic) or ``stop()``."""
        with self.cond:
            seconds = at - time.monotonic()
            if not self.stopped and seconds > 0:
                self.cond.wait(seconds)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
