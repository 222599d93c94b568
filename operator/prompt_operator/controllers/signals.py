"""Signals to sidecars: "Prompt X is at revision R", and what they answer.

Signals are batched per pod (everything pending goes in the next request):
a pod with pairs to send is a key in this controller's work queue, and the
runtime's workers (``--signal-concurrency`` of them) send, time out fast and
retry a few times with the runtime's backoff; a sidecar that misses one heals
on its own resync. Only the leader signals: on a standby, pairs wait
(coalesced per pod) until it leads. The sidecar answers
with the revisions it serves, which ``delivery`` turns into status.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping

from prompt_contract import hops, signals

from .. import metrics
from ..config import OperatorConfig
from ..logs import about
from ..runtime.controller import DONE, RETRY, Result
from ..runtime.signal_transport import SignalTransport, TransportError
from ..runtime.workqueue import WorkQueue
from .carry import SignedRevisions
from .subscribers import PodKey, Subscriber, Subscribers

logger = logging.getLogger(__name__)

MAX_SIGNAL_ATTEMPTS = 4
# A failed signal is sent again after the runtime's backoff: up to 0.2, 0.4, 0.8 s.
RETRY_BASE = 0.2
RETRY_CAP = 2.0
Waiter = asyncio.Future[None]
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


class _Failed(enum.Enum):
    """Why a signal got no served revisions back."""

    NO_ANSWER = "no answer"  # refused connection, timeout: maybe nobody is there
    ANSWERED = "answered"  # 503 during its first sync, or refused: alive


class Signals:
    def __init__(
        self,
        subscribers: Subscribers,
        config: OperatorConfig,
        revisions: SignedRevisions | None = None,
    ) -> None:
        self._subscribers = subscribers
        self._config = config
        # Each revision's entry, signed once (a hint when it cannot be signed).
        self.revisions = revisions or SignedRevisions(None)
        self._served: dict[PodKey, dict[str, str | None]] = {}
        # Per pod: the pairs for its next batch, and the callers waiting for them.
        self._pending: dict[PodKey, dict[str, str]] = {}
        self._waiters: dict[PodKey, list[tuple[str, str, asyncio.Future[None]]]] = {}
        # Pods with something to send; a failed send comes back after its backoff.
        self.queue: WorkQueue[PodKey] = WorkQueue(base_delay=RETRY_BASE, max_delay=RETRY_CAP)
        self._unreachable: dict[PodKey, float] = {}  # pod -> monotonic end of its pause
        self._first_seen: dict[PodKey, float] = {}  # pod -> monotonic time it (re)appeared
        self._limit = asyncio.Semaphore(config.signal_concurrency)
        self._http = SignalTransport(
            timeout=config.signal_timeout, connect_timeout=1.0, max_answer=signals.MAX_ANSWER_BYTES
        )
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
            self._pending.pop(key, None)
            _release(self._waiters.pop(key, []))
            self._first_seen.pop(key, None)
            self.queue.cancel(key)
            self.queue.forget(key)
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
        self._waiters.setdefault(pod, []).append((prompt, revision, future))
        return future

    def notify(self, pod: PodKey, prompt: str, revision: str) -> None:
        """Queue a pair without waiting for it (restarts, new pods): no future per
        pair, so ten thousand Prompts times many pods cost only the pending maps."""
        if self._paused(pod):
            return
        self._pending.setdefault(pod, {})[prompt] = revision
        if self.queue.due(pod) is None:  # else it goes with the retry after its backoff
            self.queue.add(pod)

    async def deliver(self, key: PodKey) -> Result:
        """Send ``key`` everything pending for it in one batch (this controller's
        reconcile; a standby does not run it, its pairs wait coalesced per pod)."""
        batch = self._pending.pop(key, {})
        waiters = self._waiters.pop(key, [])
        pod = self._subscribers.get(key)
        if not batch or pod is None:
            _release(waiters)
            return DONE
        served = await self._signal(pod, batch)
        if not isinstance(served, _Failed):
            self.record(key, served)
            _release(waiters)
            return DONE
        if self.queue.failures(key) + 1 < MAX_SIGNAL_ATTEMPTS:
            self._put_back(key, batch, waiters)
            return RETRY
        _release(waiters + self._waiters.pop(key, []))
        if self._starting(key):
            # Keep the pairs (newer ones replace them) and try again: the callers
            # were released, the pod's first answer still counts.
            self._put_back(key, batch, [])
            return RETRY
        self._pending.pop(key, None)
        if served is _Failed.NO_ANSWER:
            # (An answering pod, starting or refusing, reads everything on its
            # first full sync or its resync; later edits still signal it.)
            self._unreachable[key] = time.monotonic() + UNREACHABLE_PAUSE
            logger.info(
                "Pod %s/%s did not answer %d signals; it heals on its resync "
                "(catch-up signals to it pause for %.0f s)",
                *key,
                MAX_SIGNAL_ATTEMPTS,
                UNREACHABLE_PAUSE,
                extra=about(pod=key),
            )
        return DONE

    def _put_back(
        self, key: PodKey, batch: Mapping[str, str], waiters: list[tuple[str, str, Waiter]]
    ) -> None:
        """What no newer pair replaced goes again with the pod's next batch."""
        pending = self._pending.setdefault(key, {})
        for name, rev in batch.items():
            pending.setdefault(name, rev)
        self._waiters[key] = waiters + self._waiters.get(key, [])

    async def _signal(
        self, pod: Subscriber, batch: Mapping[str, str]
    ) -> dict[str, str | None] | _Failed:
        started = time.monotonic()
        served: dict[str, str | None] = {}
        # A sidecar takes at most MAX_SIGNAL_PAIRS pairs a signal: more go as several.
        # It writes a signed revision only of a Prompt it already serves (anything
        # else it reads), so only those carry the text: a new pod's first signal
        # names every Prompt it uses, and carrying them all would cost the
        # operator megabytes and the pod a verification each, for nothing.
        serves = self._served.get((pod.namespace, pod.name), {})
        entries = (
            (
                name,
                self.revisions.entry(pod.namespace, name, revision)
                if serves.get(name)
                else signals.encode_entry(name, revision),
            )
            for name, revision in batch.items()
        )
        for names, body in signals.signal_bodies(entries):
            answer = await self._signal_once(pod, {name: batch[name] for name in names}, body)
            if isinstance(answer, _Failed):
                return answer
            served.update(answer)
        metrics.SIGNALS.labels("ok").inc()
        metrics.SIGNAL_SECONDS.observe(time.monotonic() - started)
        return served

    async def _signal_once(
        self, pod: Subscriber, batch: Mapping[str, str], body: bytes
    ) -> dict[str, str | None] | _Failed:
        where = about(pod=(pod.namespace, pod.name))
        async with self._limit:
            if hops.enabled() and len(batch) <= hops.MAX_NAMES_STAMPED:
                for name, revision in batch.items():
                    hops.mark(hops.SIGNALLED, f"{pod.namespace}/{name}", revision, pod.name)
            try:
                # The transport never follows a redirect: a pod's answer must not make
                # the operator connect anywhere else. A 3xx is a refused signal like any non-200.
                status, answer = await self._http.post(pod.address, signals.SIGNAL_PATH, body)
                if status == 503:
                    metrics.SIGNALS.labels("not_ready").inc()
                    return _Failed.ANSWERED  # still on its first full sync; try again shortly
                if status != 200:
                    metrics.SIGNALS.labels("rejected").inc()
                    # The status only: a pod's answer body is never logged.
                    logger.warning(
                        "Pod %s/%s refused a signal: HTTP %s",
                        pod.namespace,
                        pod.name,
                        status,
                        extra=where,
                    )
                    return _Failed.ANSWERED
                served = signals.parse_signal_response(answer, batch)
            except signals.SignalError as exc:
                metrics.SIGNALS.labels("rejected").inc()
                logger.warning(
                    "Pod %s/%s: unusable answer to a signal: %s",
                    pod.namespace,
                    pod.name,
                    exc,
                    extra=where,
                )
                return _Failed.ANSWERED
            except TransportError as exc:
                metrics.SIGNALS.labels("failed").inc()
                logger.debug(
                    "signal to %s/%s failed: %s", pod.namespace, pod.name, exc, extra=where
                )
                return _Failed.NO_ANSWER
        return served

    async def close(self) -> None:
        await self._http.close()


def _release(waiters: list[tuple[str, str, Waiter]]) -> None:
    for _, _, future in waiters:
        if not future.done():
            future.set_result(None)
