"""The reconcile loop: level-triggered, coalescing, compare-then-write.

Every watch event for a Prompt only records the latest body and queues its
name; a worker then makes the cluster match that body. Ten quick edits of one
Prompt are one reconcile of the last. Nothing is written unless it differs:
the revision ConfigMaps are compared with the inventory, the status with the
status last seen, so an edit costs two writes (the new revision's ConfigMap,
one status patch), plus one delete once the history is full; a restart or a
re-applied manifest costs none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import aiohttp

from prompt_sidecar import wire

from . import history, metrics
from .configmap import build_configmap, label_patch, revision_labels
from .delivery import DeliveryCount, delivered_condition, delivery_field, variants_field
from .events import now_rfc3339, post_event
from .inventory import Entry, entry_from
from .kubeapi import ApiError, KubeApi, backoff_sleep, object_path
from .model import Prompt, PromptRef, SpecError, parse_prompt
from .policies import Problem, evaluate
from .render import Rendered, render
from .schedule import Scheduler, next_activation, utc_text
from .status import Condition, build_status, condition, status_patch

logger = logging.getLogger(__name__)

GROUP_VERSION = "prompts.dev/v1alpha1"
PLURAL = "prompts"
MAX_ATTEMPTS_LOGGED = 5


class Delivery(Protocol):
    """What the reconciler needs from the delivery side (signals to sidecars)."""

    status_writer: Any

    async def delivered(self, prompt: Prompt, revision: str) -> DeliveryCount: ...

    def track(self, prompt: Prompt, revision: str, known: tuple[int, int]) -> None: ...

    async def withdraw(self, ref: PromptRef) -> None: ...

    def matching_pods(self, prompt: Prompt) -> list[str]: ...


@dataclass(frozen=True)
class _Revision:
    """Where a reconcile left the Prompt's revisions."""

    wrote: bool  # a ConfigMap was created or relabelled
    number: int
    records: list[history.Record]
    new: history.Record | None  # the record this reconcile added


@dataclass
class _Written:
    """Status we wrote last, with the resourceVersion the API server gave it."""

    resource_version: int
    status: Mapping[str, Any]


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a reconcile needs of a Prompt; managed fields and annotations (which
    may hold a whole copy of the object) are not kept while it waits in the queue."""
    meta = body.get("metadata") or {}
    keep = (
        "name",
        "namespace",
        "uid",
        "generation",
        "labels",
        "creationTimestamp",
        "resourceVersion",
        "deletionTimestamp",
    )
    return {
        "metadata": {k: meta[k] for k in keep if k in meta},
        "spec": body.get("spec"),
        "status": body.get("status"),
    }


def key_owner(claims: Iterable[tuple[str, str]]) -> str | None:
    """The Prompt that keeps a key: the oldest, then the first by name."""
    ordered = sorted(claims)
    return ordered[0][1] if ordered else None


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        inventory: Any,
        *,
        delivery: Delivery | None = None,
        workers: int = 8,
        clock: Any = None,
    ) -> None:
        self._api = api
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        # One timer for every Prompt's next schedule entry (no per-object timers).
        self.scheduler = Scheduler(self.refresh, self._clock)
        self._inventory = inventory
        # (namespace, key) -> {Prompt name: creationTimestamp}: who claims which key.
        # Kept from watch events here rather than in a kopf index, whose readiness
        # toggles wake every waiting worker on every new object (quadratic).
        self._claims: dict[tuple[str, str], dict[str, str]] = {}
        self._delivery = delivery
        self._workers = workers
        self._queue: asyncio.Queue[PromptRef] = asyncio.Queue()
        self._bodies: dict[PromptRef, Mapping[str, Any] | None] = {}  # None: deleted
        self._queued: set[PromptRef] = set()
        self._active: set[PromptRef] = set()
        self._dirty: set[PromptRef] = set()
        self._attempts: dict[PromptRef, int] = {}
        self._retries: dict[PromptRef, asyncio.Task[None]] = {}  # waiting out a backoff
        self._written: dict[PromptRef, _Written] = {}
        self._keys: dict[PromptRef, str] = {}
        if delivery is not None:
            delivery.status_writer = self.refresh_delivery

    # -- intake (called from kopf handlers; never blocks) ------------------------

    def submit(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        ref = PromptRef(str(meta.get("namespace")), str(meta.get("name")))
        spec = body.get("spec") or {}
        key = spec.get("key") if isinstance(spec, Mapping) else None
        self._claim(ref, str(key or ref.name), str(meta.get("creationTimestamp") or ""))
        written = self._written.get(ref)
        if written is not None and _rv(body) >= written.resource_version:
            del self._written[ref]  # the event of our own write has arrived
        if ref not in self._active and ref not in self._queued and self._settled(body):
            return  # nothing to do, and nothing (no text) kept in memory
        self._bodies[ref] = slim(body)
        self._schedule(ref)

    def _settled(self, body: Mapping[str, Any]) -> bool:
        """True when the cluster already matches ``body``: the ConfigMap of its current
        revision exists with the right labels, and its status describes this
        generation as Ready with that revision and the next activation. An operator
        restart with thousands of Prompts then queues none."""
        if not self._inventory.synced.is_set() or (body.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            return False
        try:
            prompt = parse_prompt(body)
        except SpecError:
            return False
        status = prompt.status
        ready = condition(status, "Ready")
        delivery = status.get("delivery") or {}
        if (
            ready is None
            or ready.get("status") != "True"
            or status.get("observedGeneration") != prompt.generation
            or not isinstance(delivery.get("updated"), int)
            or not isinstance(delivery.get("subscribed"), int)
        ):
            return False
        now = self._clock()
        rendered = render(prompt, now)
        if status.get("revision") != rendered.revision:
            return False
        upcoming = next_activation(prompt, now)
        if status.get("nextActivation") != (utc_text(upcoming) if upcoming else None):
            return False
        records = history.records_from(status)
        head = records[-1] if records else None
        if head is None or head.revision != rendered.revision:
            return False
        entry = self._inventory.get(
            prompt.ref.namespace, wire.configmap_name(prompt.ref.name, rendered.revision)
        )
        if entry is None or entry.labels != revision_labels(prompt, head.number):
            return False
        self.scheduler.set(prompt.ref, upcoming)
        if self._delivery is not None:
            self._delivery.track(
                prompt, rendered.revision, (delivery["updated"], delivery["subscribed"])
            )
        return True

    def submit_deleted(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        ref = PromptRef(str(meta.get("namespace")), str(meta.get("name")))
        self._claim(ref, None, "")
        self._bodies[ref] = None
        self._schedule(ref)

    def _key_owners(self, namespace: str, key: str) -> list[tuple[str, str]]:
        claims = self._claims.get((namespace, key)) or {}
        return [(created, name) for name, created in claims.items()]

    def _claim(self, ref: PromptRef, key: str | None, created: str) -> None:
        """Record that ``ref`` claims ``key`` (None: no key any more); Prompts whose
        ownership of a key may have changed are reconciled again."""
        old = self._keys.get(ref)
        if old == key:
            return
        if old is not None:
            peers = self._claims.get((ref.namespace, old), {})
            peers.pop(ref.name, None)
            if not peers:
                self._claims.pop((ref.namespace, old), None)
            for name in peers:
                self.refresh(PromptRef(ref.namespace, name))
        if key is None:
            self._keys.pop(ref, None)
            return
        self._keys[ref] = key
        peers = self._claims.setdefault((ref.namespace, key), {})
        for name in peers:
            self.refresh(PromptRef(ref.namespace, name))
        peers[ref.name] = created

    def refresh(self, ref: PromptRef) -> None:
        """Reconcile ``ref`` again from a fresh read (its ConfigMap vanished, a peer left)."""
        self._schedule(ref)

    def _schedule(self, ref: PromptRef) -> None:
        if ref in self._active:
            self._dirty.add(ref)
        elif ref not in self._queued:
            self._queued.add(ref)
            self._queue.put_nowait(ref)

    def _retry_later(self, ref: PromptRef) -> None:
        attempt = self._attempts.get(ref, 0)
        self._attempts[ref] = attempt + 1

        async def later() -> None:
            await backoff_sleep(attempt, base=0.5, cap=60)
            self._retries.pop(ref, None)
            self._schedule(ref)

        previous = self._retries.pop(ref, None)
        if previous is not None:
            previous.cancel()
        self._retries[ref] = asyncio.get_running_loop().create_task(later())

    def retry_now(self) -> None:
        """The API server answers again: retry every failed Prompt now rather than
        after its backoff, which an outage of a few seconds grows to many more.
        A Prompt that fails again backs off further (its count is kept)."""
        retries, self._retries = self._retries, {}
        for ref, task in retries.items():
            task.cancel()
            self._schedule(ref)
        if retries:
            logger.info("API server reachable again: retrying %d Prompt(s) now", len(retries))

    # -- workers -------------------------------------------------------------------

    async def run(self) -> None:
        await self._inventory.synced.wait()
        await asyncio.gather(*(self._work() for _ in range(self._workers)))

    async def _work(self) -> None:
        while True:
            ref = await self._queue.get()
            self._queued.discard(ref)
            self._active.add(ref)
            try:
                await self.reconcile(ref)
                self._attempts.pop(ref, None)
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                metrics.RECONCILE_ERRORS.inc()
                level = (
                    logging.WARNING
                    if self._attempts.get(ref, 0) < MAX_ATTEMPTS_LOGGED
                    else logging.DEBUG
                )
                logger.log(level, "Prompt %s: reconcile failed, will retry: %s", ref, exc)
                self._retry_later(ref)
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                logger.exception("Prompt %s: unexpected error, will retry", ref)
                self._retry_later(ref)
            finally:
                self._active.discard(ref)
                if ref in self._dirty:
                    self._dirty.discard(ref)
                    self._schedule(ref)

    # -- one reconcile -----------------------------------------------------------

    async def _read(self, ref: PromptRef) -> Mapping[str, Any] | None:
        if ref in self._bodies:
            return self._bodies.pop(ref)
        try:
            body: Mapping[str, Any] = await self._api.request(
                "GET", object_path(GROUP_VERSION, PLURAL, ref.namespace, ref.name)
            )
            return body
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def reconcile(self, ref: PromptRef) -> None:
        metrics.RECONCILES.inc()
        body = await self._read(ref)
        if body is None:
            await self._deleted(ref)
            return
        try:
            prompt = parse_prompt(body)
        except SpecError as exc:
            await self._write_status(
                ref,
                body,
                str((body.get("metadata") or {}).get("uid", "")),
                Condition("Ready", False, "InvalidSpec", str(exc)),
                revision=None,
                key=None,
            )
            return
        now = self._clock()
        rendered = render(prompt, now)
        upcoming = next_activation(prompt, now)
        self.scheduler.set(ref, upcoming)
        verdict = evaluate(prompt, rendered)
        problem = verdict.problem
        if problem is None:
            owner = key_owner(self._key_owners(ref.namespace, prompt.key))
            if owner is not None and owner != ref.name:
                problem = Problem(
                    "KeyConflict",
                    f"Prompt {owner} in this namespace already serves key {prompt.key!r}; "
                    "give one of them a different spec.key",
                )
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # going away (its namespace may be terminating): write nothing more
        current = self._latest_status(ref, body)
        revision: _Revision | None = None
        if problem is None:
            try:
                revision = await self._apply_revision(prompt, rendered, current)
            except ApiError as exc:
                if exc.retryable:
                    raise
                if exc.status == 403 and "being terminated" in exc.message:
                    logger.debug("Prompt %s: namespace is terminating; nothing to write", ref)
                    return
                problem = Problem("WriteFailed", f"the ConfigMap could not be written: {exc}")
        if problem is not None and problem.reason == "KeyConflict":
            await self._drop_configmaps(ref)  # the key is another Prompt's; serve nothing
        if problem is not None or revision is None:
            assert problem is not None
            await self._write_status(
                ref,
                body,
                prompt.uid,
                Condition("Ready", False, problem.reason, problem.message),
                revision=None,
                key=None,
                extra={"nextActivation": utc_text(upcoming) if upcoming else None},
            )
            return
        extra: dict[str, Any] = {
            "revisions": [r.to_status() for r in revision.records],
            "nextActivation": utc_text(upcoming) if upcoming else None,
            "activeSchedule": rendered.source.removeprefix("schedule ")
            if rendered.source != "spec"
            else None,
        }
        delivered: Condition | None = None
        known = current.get("delivery") or {}
        unchanged = (
            not revision.wrote
            and current.get("revision") == rendered.revision
            and isinstance(known.get("updated"), int)
            and isinstance(known.get("subscribed"), int)
        )
        if self._delivery is not None and unchanged:
            # Nothing to deliver: waiting for every pod here would make a restart
            # with thousands of Prompts slow and could write counts nobody changed.
            self._delivery.track(prompt, rendered.revision, (known["updated"], known["subscribed"]))
        elif self._delivery is not None:
            count = await self._delivery.delivered(prompt, rendered.revision)
            extra["delivery"] = delivery_field(count)
            delivered = delivered_condition(count, rendered.revision)
        if self._delivery is not None:
            extra["variants"] = variants_field(
                prompt.ref.name, rendered.variants, self._delivery.matching_pods(prompt)
            )
        cm_name = wire.configmap_name(ref.name, rendered.revision)
        await self._write_status(
            ref,
            body,
            prompt.uid,
            Condition(
                "Ready",
                True,
                "Rendered",
                f"revision {revision.number} ({rendered.revision}) is in ConfigMap {cm_name}",
            ),
            revision=rendered.revision,
            key=rendered.key,
            extra=extra,
            delivered=delivered,
        )
        if revision.new is not None and revision.new.source != "spec":
            await post_event(
                self._api,
                ref,
                prompt.uid,
                warning=False,
                reason="ScheduleActivated",
                message=f"the {revision.new.source} entry took effect: "
                f"revision {revision.number} ({rendered.revision})",
            )
        if revision.new is not None:
            for warning in verdict.warnings:
                await post_event(
                    self._api,
                    ref,
                    prompt.uid,
                    warning=True,
                    reason=warning.reason,
                    message=warning.message,
                )

    async def _apply_revision(
        self, prompt: Prompt, rendered: Rendered, status: Mapping[str, Any]
    ) -> _Revision:
        """Make ``rendered`` the current revision: create its ConfigMap, or raise the
        number of the one still in history (a rollback), then prune what the history
        limit no longer keeps. Returns the records for status."""
        ref = prompt.ref
        path = object_path("v1", "configmaps", ref.namespace)
        records = history.records_from(status)
        head = records[-1] if records else None
        mine: dict[str, Entry] = {}
        for entry in self._inventory.revisions(ref):
            if entry.uid == prompt.uid:
                mine[entry.revision] = entry
            else:  # left by an earlier Prompt of this name, not yet garbage-collected
                self._inventory.forget(ref.namespace, entry.name)
                await self._api.delete(f"{path}/{entry.name}")
                metrics.WRITES.labels("configmap").inc()
        existing = mine.get(rendered.revision)
        recorded = max((r.number for r in records), default=0)
        if head is not None and head.revision == rendered.revision:
            number = head.number
        elif existing is not None and existing.number > recorded:
            number = existing.number  # written before a crash; its status write was lost
        else:
            number = history.next_number(records, (e.number for e in mine.values()))
        wrote = False
        if existing is None:
            body = build_configmap(prompt, rendered, number)
            result = await self._api.apply(f"{path}/{body['metadata']['name']}", body)
            metrics.WRITES.labels("configmap").inc()
            self._inventory.record(ref.namespace, entry_from((result or body)["metadata"]))
            wrote = True
            logger.info("Prompt %s: revision %d (%s) created", ref, number, rendered.revision)
        new: history.Record | None = None
        if head is None or head.revision != rendered.revision or head.number != number:
            previous = await self._snapshot(ref, head) if head is not None else None
            new = history.Record(
                number=number,
                revision=rendered.revision,
                time=now_rfc3339(),
                source=rendered.source,
                summary=history.summarize(previous, history.snapshot_of(rendered)),
            )
            earlier = [r.number for r in records if r.revision == rendered.revision]
            if earlier:
                new = dataclasses.replace(
                    new, summary=f"same as revision {earlier[-1]}; {new.summary}"
                )
        kept = history.retained(records, new, prompt.history_limit)
        # Labels: the current revision carries its number; every retained one carries
        # the Prompt's labels (a pod selector must never pick an old revision).
        numbers = {r.revision: r.number for r in kept}
        for entry in list(self._inventory.revisions(ref)):
            if entry.uid != prompt.uid:
                continue
            if entry.revision not in numbers:
                self._inventory.forget(ref.namespace, entry.name)
                await self._api.delete(f"{path}/{entry.name}")
                metrics.WRITES.labels("configmap").inc()
                logger.info("Prompt %s: pruned revision %s", ref, entry.revision)
                continue
            patch = label_patch(entry.labels, revision_labels(prompt, numbers[entry.revision]))
            if patch:
                result = await self._api.merge_patch(
                    f"{path}/{entry.name}", {"metadata": {"labels": patch}}
                )
                metrics.WRITES.labels("configmap").inc()
                self._inventory.record(ref.namespace, entry_from(result["metadata"]))
                wrote = wrote or entry.revision == rendered.revision
        return _Revision(wrote, number, kept, new)

    async def _snapshot(self, ref: PromptRef, record: history.Record) -> history.Snapshot | None:
        """What apps read at ``record`` (one GET of its ConfigMap), for the summary."""
        name = wire.configmap_name(ref.name, record.revision)
        try:
            cm = await self._api.request(
                "GET", object_path("v1", "configmaps", ref.namespace, name)
            )
        except ApiError:
            return None
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        return history.snapshot_from_configmap(
            cm.get("data") or {}, str(annotations.get(wire.KEY_ANNOTATION, ""))
        )

    async def _write_status(
        self,
        ref: PromptRef,
        body: Mapping[str, Any],
        uid: str,
        ready: Condition,
        *,
        revision: str | None,
        key: str | None,
        extra: Mapping[str, Any] | None = None,
        delivered: Condition | None = None,
    ) -> None:
        current = self._latest_status(ref, body)
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        conditions = [ready] if delivered is None else [ready, delivered]
        if delivered is None and "delivery" not in (extra or {}) and current.get("delivery"):
            # Not ready: keep what pods serve (the last good revision) as it was.
            kept = condition(current, "Delivered")
            if kept is not None:
                conditions.append(Condition.from_status(kept))
        desired = build_status(
            current,
            generation=generation,
            conditions=conditions,
            revision=revision,
            key=key,
            now=now_rfc3339(),
            extra=extra,
        )
        if not await self._patch_status(ref, current, desired):
            return
        before = condition(current, "Ready")
        if not ready.status and (
            before is None
            or before.get("reason") != ready.reason
            or before.get("message") != ready.message
        ):
            logger.warning("Prompt %s is not ready: %s: %s", ref, ready.reason, ready.message)
            await post_event(
                self._api, ref, uid, warning=True, reason=ready.reason, message=ready.message
            )

    def _latest_status(self, ref: PromptRef, body: Mapping[str, Any]) -> Mapping[str, Any]:
        current: Mapping[str, Any] = body.get("status") or {}
        written = self._written.get(ref)
        if written is not None and written.resource_version > _rv(body):
            current = written.status  # our own write is newer than the event we hold
        return current

    async def refresh_delivery(self, ref: PromptRef, revision: str, count: DeliveryCount) -> None:
        """Rewrite status.delivery after pods came or went (rate-limited by the caller)."""
        body = await self._read(ref)
        if body is None:
            return
        current = self._latest_status(ref, body)
        if current.get("revision") != revision:
            return  # an edit is under way; its own status write carries delivery
        ready = condition(current, "Ready")
        if ready is None:
            return
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        desired = build_status(
            current,
            generation=int(ready.get("observedGeneration") or generation),
            conditions=[
                Condition.from_status(ready),
                delivered_condition(count, revision),
            ],
            revision=revision,
            key=None,
            now=now_rfc3339(),
            extra={"delivery": delivery_field(count), **self._variant_counts(body)},
        )
        desired["observedGeneration"] = current.get("observedGeneration", generation)
        await self._patch_status(ref, current, desired)

    def _variant_counts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"variants": ...}`` with today's pods, when the Prompt has variants."""
        if self._delivery is None:
            return {}
        try:
            prompt = parse_prompt(body)
        except SpecError:
            return {}
        rendered = render(prompt, self._clock())
        pods = self._delivery.matching_pods(prompt)
        return {"variants": variants_field(prompt.ref.name, rendered.variants, pods)}

    async def _patch_status(
        self, ref: PromptRef, current: Mapping[str, Any], desired: dict[str, Any]
    ) -> bool:
        """Write what differs between ``current`` and ``desired``; False when nothing
        does. Remembers the result, which may be newer than the next event held."""
        patch = status_patch(current, desired)
        if not patch:
            return False
        result = await self._api.merge_patch_status(
            object_path(GROUP_VERSION, PLURAL, ref.namespace, ref.name), patch
        )
        metrics.WRITES.labels("status").inc()
        self._written[ref] = _Written(_rv(result or {}), (result or {}).get("status") or desired)
        return True

    async def _deleted(self, ref: PromptRef) -> None:
        self._written.pop(ref, None)
        self._attempts.pop(ref, None)
        self.scheduler.set(ref, None)
        # Garbage collection would remove the ConfigMaps too, but later; deleting
        # them now lets sidecars drop the file at once.
        await self._drop_configmaps(ref)

    async def _drop_configmaps(self, ref: PromptRef) -> None:
        """Delete every revision ConfigMap of ``ref`` (one request per Prompt uid)."""
        path = object_path("v1", "configmaps", ref.namespace)
        for uid in sorted({entry.uid for entry in self._inventory.revisions(ref)}):
            for entry in self._inventory.revisions(ref):
                if entry.uid == uid:
                    self._inventory.forget(ref.namespace, entry.name)
            if uid:
                await self._api.delete_collection(path, f"{wire.PROMPT_UID_LABEL}={uid}")
            metrics.WRITES.labels("configmap").inc()
            logger.info("Prompt %s: removed its revision ConfigMaps", ref)
        if self._delivery is not None:
            await self._delivery.withdraw(ref)
