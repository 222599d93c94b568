"""Signals to sidecars: "Prompt X is at revision R", and what they answer.

Signals are batched per pod (everything pending goes in the next request),
bounded in concurrency, time out fast and are retried a few times; a sidecar
that misses one heals on its own resync. Only the leader signals: on a
standby, pairs wait (coalesced per pod) until it leads. The sidecar answers
with the revisions it serves, which ``delivery`` turns into status.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from prompt_client import hops, wire

from .. import metrics
from ..config import OperatorConfig
from ..logs import about
from ..runtime.backoff import backoff_sleep
from ..runtime.leader import Leadership
from .subscribers import PodKey, Subscriber, Subscribers

logger = logging.getLogger(__name__)

MAX_SIGNAL_ATTEMPTS = 4
# A pod that did not answer that many signals in a row gets no catch-up signals
# (an operator restart's, for every Prompt) for this long: its sidecar heals on
# its own resync (or lists everything when it starts again), and signalling a
# dead address ten thousand times only costs the loop. An edit still tries it,
# and a change of the pod object (restarted, new address) ends the pause.
UNREACHABLE_PAUSE = 10.0
# A pod that has never answered is most likely still starting: its address is in
# the Pod object before its sidecar listens, and the sidecar answers 503 until
# its first full sync is written. Signals to it keep being retried (one request
# per pod every couple of seconds, pairs coalesced) for this long, as long as the
# sidecar's own startup probe allows, so its delivery is counted once it is up
# instead of waiting for the next edit.
STARTING_GRACE = 120.0


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a body: enough to tell that it is too big,
    without ever holding more of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class _Failed(enum.Enum):
    """Why a signal got no served revisions back."""

    NO_ANSWER = "no answer"  # refused connection, timeout: maybe nobody is there
    ANSWERED = "answered"  # 503 during its first sync, or refused: alive


@dataclass
class _PodChannel:
    """Pending pairs for one pod and the callers waiting for them."""

    pending: dict[str, str] = field(default_factory=dict)
    waiters: list[tuple[str, str, asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Signals:
    def __init__(
        self, subscribers: Subscribers, config: OperatorConfig, leadership: Leadership
    ) -> None:
        self._subscribers = subscribers
        self._config = config
        self._leadership = leadership
        self._served: dict[PodKey, dict[str, str | None]] = {}
        self._channels: dict[PodKey, _PodChannel] = {}
        self._unreachable: dict[PodKey, float] = {}  # pod -> monotonic end of its pause
        self._first_seen: dict[PodKey, float] = {}  # pod -> monotonic time it (re)appeared
        self._limit = asyncio.Semaphore(config.signal_concurrency)
        self._http: aiohttp.ClientSession | None = None
        self._on_served: list[Callable[[PodKey, list[str]], None]] = []
        subscribers.add_handler(self._pod_changed)

    def add_served_handler(self, on_served: Callable[[PodKey, list[str]], None]) -> None:
        """Call ``on_served(pod, prompt names)`` when a pod's answer changed what it serves."""
        self._on_served.append(on_served)

    def serves(self, pod: PodKey, prompt: str) -> str | None:
        """The revision of ``prompt`` that ``pod`` last said it serves."""
        return self._served.get(pod, {}).get(prompt)

    def record(self, pod: PodKey, served: Mapping[str, str | None]) -> None:
        """What ``pod`` answered it serves."""
        known = self._served.setdefault(pod, {})
        changed = [name for name, rev in served.items() if known.get(name) != rev]
        known.update(served)
        if changed:
            for handler in self._on_served:
                handler(pod, changed)

    def _pod_changed(
        self, key: PodKey, before: Subscriber | None, after: Subscriber | None
    ) -> None:
        self._unreachable.pop(key, None)  # gone, restarted or moved: try it again
        if after is None:
            self._served.pop(key, None)
            self._channels.pop(key, None)
            self._first_seen.pop(key, None)
        elif before is None or before.uid != after.uid:
            self._served.pop(key, None)
            self._first_seen[key] = time.monotonic()

    def _starting(self, pod: PodKey) -> bool:
        """Never answered, and seen recently enough that its sidecar may still be starting."""
        seen = self._first_seen.get(pod)
        return (
            pod not in self._served
            and seen is not None
            and time.monotonic() - seen < STARTING_GRACE
        )

    # -- sending -------------------------------------------------------------------

    def _paused(self, pod: PodKey) -> bool:
        until = self._unreachable.get(pod)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._unreachable[pod]
        return False

    def send(self, pod: PodKey, prompt: str, revision: str) -> asyncio.Future[None]:
        """Queue a pair for the pod's next batch; the future resolves on its answer."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unreachable.pop(pod, None)  # an edit always tries the pod again
        self.notify(pod, prompt, revision)
        self._channels[pod].waiters.append((prompt, revision, future))
        return future

    def notify(self, pod: PodKey, prompt: str, revision: str) -> None:
        """Queue a pair without waiting for it (restarts, new pods): no future per
        pair, so ten thousand Prompts times many pods cost only the pending maps."""
        if self._paused(pod):
            return
        channel = self._channels.setdefault(pod, _PodChannel())
        channel.pending[prompt] = revision
        if channel.task is None or channel.task.done():
            channel.task = asyncio.get_running_loop().create_task(self._drain(pod, channel))

    async def _drain(self, pod_key: PodKey, channel: _PodChannel) -> None:
        await self._leadership.leading.wait()  # a standby only collects
        attempt = 0
        while channel.pending:
            pod = self._subscribers.get(pod_key)
            batch, channel.pending = channel.pending, {}
            waiters, channel.waiters = channel.waiters, []
            if pod is None:
                _release(waiters)
                continue
            served = await self._signal(pod, batch)
            if isinstance(served, _Failed):
                attempt += 1
                if attempt < MAX_SIGNAL_ATTEMPTS:
                    # Put back what no newer signal replaced, and try again later.
                    for name, rev in batch.items():
                        channel.pending.setdefault(name, rev)
                    channel.waiters = waiters + channel.waiters
                    await backoff_sleep(attempt, base=0.1, cap=2)
                    continue
                _release(waiters + channel.waiters)
                channel.waiters = []
                if self._starting(pod_key):
                    # Keep the pairs (newer ones replace them) and try again: the
                    # callers were released, the pod's first answer still counts.
                    for name, rev in batch.items():
                        channel.pending.setdefault(name, rev)
                    await backoff_sleep(attempt, base=0.1, cap=2)
                    continue
                channel.pending = {}
                if served is _Failed.ANSWERED:
                    # Alive (starting, or refusing): its first full sync or its
                    # resync reads everything; later edits still signal it.
                    return
                self._unreachable[pod_key] = time.monotonic() + UNREACHABLE_PAUSE
                logger.info(
                    "Pod %s/%s did not answer %d signals; it heals on its resync "
                    "(catch-up signals to it pause for %.0f s)",
                    *pod_key,
                    MAX_SIGNAL_ATTEMPTS,
                    UNREACHABLE_PAUSE,
                    extra=about(pod=pod_key),
                )
                return
            attempt = 0
            self.record(pod_key, served)
            _release(waiters)

    async def _signal(
        self, pod: Subscriber, batch: Mapping[str, str]
    ) -> dict[str, str | None] | _Failed:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.signal_timeout, sock_connect=1),
                connector=aiohttp.TCPConnector(limit=self._config.signal_concurrency),
            )
        started = time.monotonic()
        served: dict[str, str | None] = {}
        # A sidecar takes at most MAX_SIGNAL_PAIRS pairs a signal: more go as several.
        for chunk in wire.signal_chunks(batch.items()):
            answer = await self._signal_once(pod, dict(chunk))
            if isinstance(answer, _Failed):
                return answer
            served.update(answer)
        metrics.SIGNALS.labels("ok").inc()
        metrics.SIGNAL_SECONDS.observe(time.monotonic() - started)
        return served

    async def _signal_once(
        self, pod: Subscriber, batch: Mapping[str, str]
    ) -> dict[str, str | None] | _Failed:
        assert self._http is not None
        where = about(pod=(pod.namespace, pod.name))
        async with self._limit:
            if hops.enabled() and len(batch) <= hops.MAX_NAMES_STAMPED:
                for name, revision in batch.items():
                    hops.mark(hops.SIGNALLED, f"{pod.namespace}/{name}", revision, pod.name)
            try:
                # Never follow a redirect: a pod's answer must not make the operator
                # connect anywhere else. A 3xx is a refused signal like any non-200.
                async with self._http.post(
                    f"http://{pod.address}{wire.SIGNAL_PATH}",
                    data=wire.encode_signal(batch.items()),
                    headers={"Content-Type": "application/json"},
                    allow_redirects=False,
                ) as resp:
                    if resp.status == 503:
                        metrics.SIGNALS.labels("not_ready").inc()
                        return _Failed.ANSWERED  # still on its first full sync; try again shortly
                    if resp.status != 200:
                        metrics.SIGNALS.labels("rejected").inc()
                        # The status only: a pod's answer body is never logged.
                        logger.warning(
                            "Pod %s/%s refused a signal: HTTP %s",
                            pod.namespace,
                            pod.name,
                            resp.status,
                            extra=where,
                        )
                        return _Failed.ANSWERED
                    body = await read_bounded(resp.content, wire.MAX_ANSWER_BYTES)
                    served = wire.parse_signal_response(body, batch)
            except wire.SignalError as exc:
                metrics.SIGNALS.labels("rejected").inc()
                logger.warning(
                    "Pod %s/%s: unusable answer to a signal: %s",
                    pod.namespace,
                    pod.name,
                    exc,
                    extra=where,
                )
                return _Failed.ANSWERED
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                metrics.SIGNALS.labels("failed").inc()
                logger.debug(
                    "signal to %s/%s failed: %s", pod.namespace, pod.name, exc, extra=where
                )
                return _Failed.NO_ANSWER
        return served

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _release(waiters: list[tuple[str, str, asyncio.Future[None]]]) -> None:
    for _, _, future in waiters:
        if not future.done():
            future.set_result(None)
