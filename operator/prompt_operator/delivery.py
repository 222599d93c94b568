"""Signals to sidecars and what they report back.

Pods opt in with the ``prompts.dev/subscribe=true`` label; the operator follows
them with a label-selected watch of its own (kopf's watches carry no label
selector) and keeps a small record per pod. After a Prompt's ConfigMap
changes, every matching sidecar is told "Prompt X is at revision R". Signals
are batched per pod (everything pending goes in the next request), bounded in
concurrency, time out fast and are retried a few times; a sidecar that misses
one heals on its own resync.

The sidecar answers with the revisions it serves, which becomes
``status.delivery``: taken when a revision changes (folded into that edit's one
status write) and refreshed at a bounded rate after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from prompt_client.contract import choose_variant
from prompt_sidecar import wire
from prompt_sidecar.selector import Selector, SelectorError, parse_selector

from . import metrics
from .config import OperatorConfig
from .kubeapi import ApiError, KubeApi, backoff_sleep, list_then_watch
from .model import Prompt, PromptRef
from .status import Condition

logger = logging.getLogger(__name__)

POD_SELECTOR = f"{wire.SUBSCRIBE_LABEL}=true"
MAX_SIGNAL_ATTEMPTS = 4
# A pod that did not answer that many signals in a row gets no catch-up signals
# (an operator restart's, for every Prompt) for this long: its sidecar heals on
# its own resync (or lists everything when it starts again), and signalling a
# dead address ten thousand times only costs the loop. An edit still tries it,
# and a change of the pod object (restarted, new address) ends the pause.
UNREACHABLE_PAUSE = 10.0
PodKey = tuple[str, str]  # (namespace, pod name)


@dataclass(frozen=True)
class Subscriber:
    namespace: str
    name: str
    uid: str
    address: str  # "ip:port"
    selector: Selector


def subscriber_from_pod(pod: Mapping[str, Any]) -> Subscriber | None:
    """The subscription a Pod declares, or None when it cannot be signalled."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork"):
        return None  # never signal pods on the host network
    ip = status.get("podIP")
    if not ip or status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
        return None
    annotations = meta.get("annotations") or {}
    try:
        port = int(annotations.get(wire.PORT_ANNOTATION) or wire.DEFAULT_PORT)
        selector = parse_selector(annotations.get(wire.SELECTOR_ANNOTATION))
    except (ValueError, SelectorError) as exc:
        logger.warning(
            "Pod %s/%s: bad subscription annotations: %s",
            meta.get("namespace"),
            meta.get("name"),
            exc,
        )
        return None
    if not 0 < port < 65536:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return Subscriber(
        str(meta.get("namespace")),
        str(meta.get("name")),
        str(meta.get("uid")),
        f"{host}:{port}",
        selector,
    )


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


@dataclass(frozen=True)
class DeliveryCount:
    updated: int
    subscribed: int
    missing: tuple[str, ...]


def delivered_condition(count: DeliveryCount, revision: str) -> Condition:
    """The ``Delivered`` condition, separate from ``Ready``: do the pods have it?"""
    if count.subscribed == 0:
        return Condition(
            "Delivered", True, "NoSubscribers", "no subscribed pod selects this Prompt"
        )
    if count.updated == count.subscribed:
        return Condition(
            "Delivered",
            True,
            "AllPodsUpdated",
            f"{count.updated}/{count.subscribed} subscribed pods serve revision {revision}",
        )
    waiting = ", ".join(count.missing[:5]) + (" ..." if len(count.missing) > 5 else "")
    return Condition(
        "Delivered",
        False,
        "PodsPending",
        f"{count.updated}/{count.subscribed} subscribed pods serve revision {revision}; "
        f"waiting for {waiting}",
    )


def delivery_field(count: DeliveryCount) -> dict[str, Any]:
    """``status.delivery``; ``summary`` feeds the printer column (e.g. ``3/3``)."""
    return {
        "updated": count.updated,
        "subscribed": count.subscribed,
        "summary": f"{count.updated}/{count.subscribed}",
    }


def variants_field(
    prompt: str, variants: tuple[tuple[str, int, str], ...], pods: list[str]
) -> list[dict[str, Any]] | None:
    """``status.variants``: how many of ``pods`` each variant goes to (None: no variants).

    The same function the sidecars use (``choose_variant`` on the pod's name), so
    the count is what the pods serve once they have the revision.
    """
    if not variants:
        return None
    weights = [(name, weight) for name, weight, _ in variants]
    counts = dict.fromkeys((name for name, _ in weights), 0)
    for pod in pods:
        chosen = choose_variant(pod, prompt, weights)
        if chosen is not None:
            counts[chosen] += 1
    return [{"name": n, "weight": w, "pods": counts[n]} for n, w in weights]


class Delivery:
    def __init__(self, api: KubeApi, config: OperatorConfig) -> None:
        self._api = api
        self._config = config
        self._pods: dict[PodKey, Subscriber] = {}
        self._served: dict[PodKey, dict[str, str | None]] = {}
        self._channels: dict[PodKey, _PodChannel] = {}
        self._unreachable: dict[PodKey, float] = {}  # pod -> monotonic end of its pause
        self._current: dict[PromptRef, tuple[str, Mapping[str, str]]] = {}
        self._limit = asyncio.Semaphore(config.signal_concurrency)
        self._http: aiohttp.ClientSession | None = None
        self._pending: set[PromptRef] = set()  # for the pending-delivery gauge
        self._stale: set[PromptRef] = set()  # delivery counts changed since the last write
        self._last_written: dict[PromptRef, tuple[float, tuple[int, int]]] = {}
        self.synced = asyncio.Event()
        # Set by the reconciler: async (ref, revision, count) -> None, writes the status.
        self.status_writer: Any = None

    # -- the reconciler's side -------------------------------------------------------

    def matching(self, ref: PromptRef, labels: Mapping[str, str]) -> list[PodKey]:
        return [
            key
            for key, pod in self._pods.items()
            if pod.namespace == ref.namespace and pod.selector.matches(labels)
        ]

    def matching_pods(self, prompt: Prompt) -> list[str]:
        """Names of the subscribed pods that select ``prompt``."""
        return [name for _, name in self.matching(prompt.ref, prompt.labels)]

    def _count(self, ref: PromptRef, revision: str, labels: Mapping[str, str]) -> DeliveryCount:
        pods = self.matching(ref, labels)
        missing = tuple(
            sorted(
                name
                for ns, name in pods
                if self._served.get((ns, name), {}).get(ref.name) != revision
            )
        )
        return DeliveryCount(len(pods) - len(missing), len(pods), missing)

    def count(self, ref: PromptRef, revision: str, labels: Mapping[str, str]) -> DeliveryCount:
        """Who serves ``revision``; also keeps the pending-delivery gauge current."""
        result = self._count(ref, revision, labels)
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
        await self.synced.wait()
        pods = self.matching(ref, prompt.labels)
        lagging = [p for p in pods if self._served.get(p, {}).get(ref.name) != revision]
        waits = [self._send(p, ref.name, revision) for p in lagging]
        if previous is not None and previous[1] != prompt.labels:
            # Pods that selected the old labels but not the new ones must drop the
            # file: an empty revision tells them "you should not serve this".
            dropped = set(self.matching(ref, previous[1])) - set(pods)
            waits += [self._send(p, ref.name, "") for p in dropped]
        if waits:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*waits, return_exceptions=True), self._config.delivery_wait
                )
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
        for pod in self.matching(ref, prompt.labels):
            if self._served.get(pod, {}).get(ref.name) != revision:
                self._notify(pod, ref.name, revision)

    async def withdraw(self, ref: PromptRef) -> None:
        """The Prompt is gone: tell the pods that served it to drop its file."""
        current = self._current.get(ref)
        self.forget(ref)
        if current is None:
            return
        waits = [self._send(p, ref.name, "") for p in self.matching(ref, current[1])]
        if waits:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*waits, return_exceptions=True), self._config.delivery_wait
                )

    def forget(self, ref: PromptRef) -> None:
        self._pending.discard(ref)
        self._current.pop(ref, None)
        self._stale.discard(ref)
        self._last_written.pop(ref, None)

    # -- signals -------------------------------------------------------------------

    def _paused(self, pod: PodKey) -> bool:
        until = self._unreachable.get(pod)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._unreachable[pod]
        return False

    def _send(self, pod: PodKey, prompt: str, revision: str) -> asyncio.Future[None]:
        """Queue a pair for the pod's next batch; the future resolves on its answer."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unreachable.pop(pod, None)  # an edit always tries the pod again
        self._notify(pod, prompt, revision)
        self._channels[pod].waiters.append((prompt, revision, future))
        return future

    def _notify(self, pod: PodKey, prompt: str, revision: str) -> None:
        """Queue a pair without waiting for it (restarts, new pods): no future per
        pair, so ten thousand Prompts times many pods cost only the pending maps."""
        if self._paused(pod):
            return
        channel = self._channels.setdefault(pod, _PodChannel())
        channel.pending[prompt] = revision
        if channel.task is None or channel.task.done():
            channel.task = asyncio.get_running_loop().create_task(self._drain(pod, channel))

    async def _drain(self, pod_key: PodKey, channel: _PodChannel) -> None:
        attempt = 0
        while channel.pending:
            pod = self._pods.get(pod_key)
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
                channel.pending, channel.waiters = {}, []
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
                )
                return
            attempt = 0
            self._record(pod_key, served)
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
        async with self._limit:
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
                        )
                        return _Failed.ANSWERED
                    body = await read_bounded(resp.content, wire.MAX_ANSWER_BYTES)
                    served = wire.parse_signal_response(body, batch)
            except wire.SignalError as exc:
                metrics.SIGNALS.labels("rejected").inc()
                logger.warning(
                    "Pod %s/%s: unusable answer to a signal: %s", pod.namespace, pod.name, exc
                )
                return _Failed.ANSWERED
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                metrics.SIGNALS.labels("failed").inc()
                logger.debug("signal to %s/%s failed: %s", pod.namespace, pod.name, exc)
                return _Failed.NO_ANSWER
        return served

    def _record(self, pod: PodKey, served: Mapping[str, str | None]) -> None:
        known = self._served.setdefault(pod, {})
        for name, rev in served.items():
            if known.get(name) != rev:
                known[name] = rev
                self._stale.add(PromptRef(pod[0], name))

    # -- subscribed pods -----------------------------------------------------------

    async def run(self) -> None:
        paths = (
            ["/api/v1/pods"]
            if not self._config.namespaces
            else [f"/api/v1/namespaces/{ns}/pods" for ns in self._config.namespaces]
        )
        listed: set[str] = set()
        await asyncio.gather(
            *(self._follow(p, listed, len(paths)) for p in paths), self._refresh_loop()
        )

    def _pod_changed(self, key: PodKey, sub: Subscriber | None) -> None:
        before = self._pods.get(key)
        if before != sub:
            self._unreachable.pop(key, None)  # gone, restarted or moved: try it again
        if sub is None:
            if self._pods.pop(key, None) is not None:
                self._served.pop(key, None)
                self._channels.pop(key, None)
                self._mark_prompts(key[0], before)
            return
        if before == sub:
            return
        self._pods[key] = sub
        if before is not None and before.uid != sub.uid:
            self._served.pop(key, None)
        self._mark_prompts(key[0], before)
        self._mark_prompts(key[0], sub)
        # Learn what the new (or moved) sidecar serves: one batched signal with
        # every matching Prompt's revision. Pairs it already serves cost nothing.
        for ref, (revision, labels) in list(self._current.items()):
            if ref.namespace == key[0] and sub.selector.matches(labels):
                self._notify(key, ref.name, revision)
        metrics.SUBSCRIBED_PODS.set(len(self._pods))

    def _mark_prompts(self, namespace: str, sub: Subscriber | None) -> None:
        if sub is None:
            return
        for ref, (_, labels) in self._current.items():
            if ref.namespace == namespace and sub.selector.matches(labels):
                self._stale.add(ref)

    async def _follow(self, path: str, listed: set[str], total: int) -> None:
        def on_list(items: list[dict[str, Any]]) -> None:
            seen = set()
            for pod in items:
                meta = pod.get("metadata") or {}
                key = (str(meta.get("namespace")), str(meta.get("name")))
                seen.add(key)
                self._pod_changed(key, subscriber_from_pod(pod))
            scope = None if path == "/api/v1/pods" else path.split("/")[4]
            for key in [k for k in self._pods if k not in seen and scope in (None, k[0])]:
                self._pod_changed(key, None)
            listed.add(path)
            if len(listed) == total:
                self.synced.set()

        def on_event(kind: str, pod: dict[str, Any]) -> None:
            meta = pod.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            self._pod_changed(key, None if kind == "DELETED" else subscriber_from_pod(pod))

        await list_then_watch(
            self._api,
            path,
            {"labelSelector": POD_SELECTOR},
            on_list=on_list,
            on_event=on_event,
            what="Pod",
        )

    async def _refresh_loop(self) -> None:
        """Rewrite status.delivery of Prompts whose counts changed, at a bounded rate."""
        interval = self._config.delivery_refresh
        while True:
            await asyncio.sleep(min(1.0, interval))
            if self.status_writer is None or not self._stale:
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
                    await self.status_writer(ref, revision, count)
                except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    logger.warning("Prompt %s: could not refresh delivery status: %s", ref, exc)
                    self._stale.add(ref)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _release(waiters: list[tuple[str, str, asyncio.Future[None]]]) -> None:
    for _, _, future in waiters:
        if not future.done():
            future.set_result(None)
