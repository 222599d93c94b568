"""The syncer's machinery, which knows nothing about Prompts.

A token bucket bounds the reads signals cost; ``Pending`` holds the names
signalled and the tickets of the signals waiting for them; ``Pacer`` says
when the next read may start (work, a free token, the resync timer, the
retry backoff). Time is passed in, so tests need no clock. None of it is
thread-safe on its own: the syncer uses it under its condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prompt_contract.timing import backoff_delay

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


@dataclass
class Pending:
    """Names signalled and not yet read, and the tickets of the signals waiting.

    A signal takes a ticket; a cycle takes the names and, once they are read,
    marks every ticket up to the one it started with as done.
    """

    names: dict[str, Entry] = field(default_factory=dict)
    requested: int = 0  # signal tickets handed out
    done: int = 0  # every ticket up to this one has been read

    def add(self, name: str, revision: str, arrived: float) -> None:
        first = self.names.get(name, (arrived, ""))[0]
        self.names[name] = (first, revision)

    def ticket(self) -> int:
        self.requested += 1
        return self.requested

    def take(self, later: tuple[str, ...]) -> tuple[dict[str, Entry], int]:
        """The names to read now (all but ``later``) and the ticket they answer.

        Signals are answered once all they named is read; names left for later
        keep their tickets waiting (within the signal's own bound)."""
        taken = {n: e for n, e in self.names.items() if n not in later}
        self.names = {n: self.names[n] for n in later}
        return taken, (self.requested if not later else self.done)

    def put_back(self, taken: dict[str, Entry]) -> None:
        """After a failed read: the names wait again (newer signals keep theirs)."""
        for name, entry in taken.items():
            self.names.setdefault(name, entry)

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

    def next_at(self, now: float, has_work: bool) -> float:
        """When the next read may start: work is there, a token is free, backoff is over.

        A signal that arrived after the last failure ends the backoff: the operator
        has just written to the API server, so it answers again, and waiting out a
        backoff that an outage grew to many seconds would add them to the edit.
        The bucket still bounds what signals cost, forged ones included."""
        retry_at = 0.0 if self._signalled_since_failure else self._retry_at
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
