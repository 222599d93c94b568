"""Leader election on a ``coordination.k8s.io`` Lease, as client-go does it.

Every replica tries, every ``retry_period``, to acquire or renew one Lease.
A replica may take a Lease whose holder has not renewed it for
``lease_duration`` as observed on its own clock (never comparing clocks
across machines), and the Lease's resourceVersion makes each take or renew a
compare-and-swap, so two replicas cannot both succeed.

The leader keeps its claim by renewing it; when it cannot renew within
``renew_deadline`` (shorter than ``lease_duration``, so it gives up before
anyone else may take over), it stops leading for good and ``on_lost`` is
called (controller-runtime exits the process there; so does the operator).
``valid()`` is the fence for writes: true only while the last successful
renew is younger than ``renew_deadline``, on the monotonic clock, which keeps
running while a process is paused (SIGSTOP), so a leader resumed after a
partition refuses to write before it has even noticed that it lost.

The fence alone is not enough: a write let through at the last moment of
``renew_deadline`` could wait for its answer for the client's whole request
timeout (10 s), past ``lease_duration`` (5 s later), when a standby may hold the
Lease and write too. So every write of the leader carries a deadline,
``write_budget()``: the time left until ``lease_duration`` after the last good
renew (counted from before that renew was sent; the others' clocks start no
earlier), less ``WRITE_MARGIN``. The client waits no longer than that and hands
the same deadline to the API server (``?timeout=``), which abandons the request
then. The bound: no write of ours is sent, or awaited, later than
``lease_duration - WRITE_MARGIN`` after our last successful renew began; the one
residual is an etcd transaction the API server had already sent at that
instant (docs/high-availability.md). A renew attempt itself is cut off at
``renew_deadline``, and on a failed renewal the replica stops leading at once:
``on_lost`` stops the process, which cancels its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from .client import KubeApi, object_path
from .errors import ApiError, Conflict

logger = logging.getLogger(__name__)

# Kept between the end of a leader's write deadline and the earliest moment a
# standby may take the Lease: the API server's own handling after its deadline,
# and clocks that run at slightly different rates on two machines.
WRITE_MARGIN = 1.0


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    # client-go's and controller-runtime's defaults are 15/10/2 s.
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


def micro_time(when: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    config: LeaseConfig, current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The spec that makes ``config.identity`` the holder, renewed at ``now``."""
    spec = dict(current or {})
    if spec.get("holderIdentity") != config.identity:
        spec["acquireTime"] = micro_time(now)
        transitions = spec.get("leaseTransitions")
        had_holder = bool(spec.get("holderIdentity"))
        spec["leaseTransitions"] = (transitions if isinstance(transitions, int) else 0) + (
            1 if had_holder else 0
        )
    spec["holderIdentity"] = config.identity
    spec["leaseDurationSeconds"] = max(1, round(config.lease_duration))
    spec["renewTime"] = micro_time(now)
    return spec


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        config: LeaseConfig,
        *,
        on_lost: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api  # unfenced: it has to write to become the leader
        self._config = config
        self._on_lost = on_lost
        self._clock = clock
        self._path = object_path("coordination.k8s.io/v1", "leases", config.namespace, config.name)
        self._renewed_at: float | None = None  # monotonic time of the last good renew
        self._observed: tuple[str, float] | None = None  # (lease record, when first seen)
        self._taken = False  # another replica holds the Lease we held
        self.leading = asyncio.Event()
        self.lost = False

    @property
    def identity(self) -> str:
        return self._config.identity

    def valid(self) -> bool:
        """True while this replica may write as the leader."""
        return (
            self.leading.is_set()
            and not self.lost
            and self._renewed_at is not None
            and self._clock() - self._renewed_at < self._config.renew_deadline
        )

    def write_budget(self) -> float | None:
        """Seconds a write may still take before the Lease could pass to another
        replica (0 when none is left); see the module's docstring."""
        if self._renewed_at is None or not self.valid():
            return 0.0
        expires = self._renewed_at + self._config.lease_duration - WRITE_MARGIN
        return max(0.0, expires - self._clock())

    async def _attempt(self) -> bool:
        """``_try``, given up once the renew deadline has passed (a hung request
        must not keep a replica that can no longer renew from stepping down)."""
        budget = self._config.renew_deadline
        if self.leading.is_set() and self._renewed_at is not None:
            budget = self._renewed_at + self._config.renew_deadline - self._clock()
        try:
            return await asyncio.wait_for(self._try(), timeout=max(0.1, budget))
        except asyncio.TimeoutError:
            logger.warning("lease %s: no answer within the renew deadline", self._path)
            return False

    async def run(self) -> None:
        config = self._config
        while not self.leading.is_set():
            if await self._attempt():
                self.leading.set()
                logger.info("became the leader (lease %s/%s)", config.namespace, config.name)
                break
            await asyncio.sleep(config.retry_period)
        while True:
            await asyncio.sleep(config.retry_period)
            if await self._attempt():
                continue
            assert self._renewed_at is not None
            if self._taken or self._clock() - self._renewed_at >= config.renew_deadline:
                self.lost = True
                self.leading.clear()
                logger.error(
                    "lost the lease %s/%s (%s); stopping",
                    config.namespace,
                    config.name,
                    "another replica holds it"
                    if self._taken
                    else f"not renewed for {config.renew_deadline:.0f} s",
                )
                self._on_lost()
                return

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when we hold the Lease now."""
        started = self._clock()
        now = datetime.now(timezone.utc)
        try:
            lease = await self._api.get(self._path)
            if lease is None:
                await self._api.request(
                    "POST",
                    object_path("coordination.k8s.io/v1", "leases", self._config.namespace),
                    body={
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": self._config.name,
                            "namespace": self._config.namespace,
                        },
                        "spec": lease_spec(self._config, None, now),
                    },
                )
            else:
                spec = lease.get("spec") or {}
                holder = spec.get("holderIdentity") or ""
                self._taken = self.leading.is_set() and holder not in ("", self.identity)
                if not self._may_take(spec):
                    return False
                await self._api.request(
                    "PUT",
                    self._path,
                    body={**lease, "spec": lease_spec(self._config, spec, now)},
                )
        except Conflict:
            return False  # someone else wrote it first; look again next period
        except ApiError as exc:
            logger.warning("lease %s: %s", self._path, exc)
            return False
        # Counted from before the request: the others' clocks started no earlier.
        self._renewed_at = started
        return True

    def _may_take(self, spec: Mapping[str, Any]) -> bool:
        holder = spec.get("holderIdentity") or ""
        if holder == self._config.identity or not holder:
            return True
        record = f"{holder}|{spec.get('renewTime')}|{spec.get('leaseDurationSeconds')}"
        now = self._clock()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)  # the holder renewed: start its clock again
            return False
        duration = spec.get("leaseDurationSeconds")
        lease_for = float(duration) if isinstance(duration, int) else self._config.lease_duration
        return now - self._observed[1] >= lease_for

    async def release(self) -> None:
        """Give the Lease up at shutdown, so a standby takes over at once."""
        if not self.valid():
            return
        self.leading.clear()
        with contextlib.suppress(ApiError):
            lease = await self._api.get(self._path)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease.get("spec") or {})
            spec.update(holderIdentity="", leaseDurationSeconds=1)
            spec["renewTime"] = micro_time(datetime.now(timezone.utc))
            await self._api.request("PUT", self._path, body={**lease, "spec": spec})
            logger.info("released the lease %s/%s", self._config.namespace, self._config.name)


class Leadership(Protocol):
    """What the controllers ask of leader election."""

    leading: asyncio.Event

    def valid(self) -> bool: ...

    def write_budget(self) -> float | None: ...

    async def run(self) -> None: ...

    async def release(self) -> None: ...


class AlwaysLeader:
    """Leader election switched off: one replica, always leading."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()
        self.leading.set()
        self.lost = False

    def valid(self) -> bool:
        return True

    def write_budget(self) -> float | None:
        return None  # no Lease: no deadline beyond the client's own timeout

    async def run(self) -> None:
        return None

    async def release(self) -> None:
        return None
