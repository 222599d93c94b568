"""The reconcile loop: level-triggered, coalescing, compare-then-write.

Every watch event for a Prompt only records the latest body and queues its
name; a worker then makes the cluster match that body. Ten quick edits of one
Prompt are one reconcile of the last. Nothing is written unless it differs:
the revision ConfigMaps are compared with the inventory, the status with the
status last seen, so an edit costs two writes (the new revision's ConfigMap,
one status patch), plus, once the history is full, one delete per batch of
pruned revisions (``controllers.revisions``); a restart or a re-applied
manifest costs none.

One reconcile reads as the design's flow: parse, evaluate, plan and apply the
revisions, status. Each step is a controller of its own (``controllers``).
Only the leader's workers run; a standby queues and keeps its caches warm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from prompt_client import hops, wire

from . import history
from .configmap import revision_labels
from .controllers.accounting import DeliveryAccounting
from .controllers.keyclaims import KeyClaims
from .controllers.revisions import ConfigMapTaken, Outcome, Revisions
from .controllers.status_writer import GROUP_VERSION, PLURAL, StatusWriter
from .controllers.subscribers import Subscribers
from .events import post_event
from .inventory import Inventory
from .logs import about
from .model import Prompt, PromptRef, SpecError, parse_prompt
from .policies import Problem, Verdict, evaluate
from .render import Rendered, render
from .runtime.client import KubeApi, object_path
from .runtime.errors import ApiError
from .runtime.leader import Leadership
from .runtime.workqueue import WorkQueue
from .schedule import Scheduler, next_activation, utc_text
from .status import (
    Condition,
    DeliveryCount,
    condition,
    delivered_condition,
    delivery_field,
    variants_field,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_LOGGED = 5
# A revision's name taken by a ConfigMap the operator did not make: seconds
# between looks (one GET and one refused POST each) until its owner deletes it.
TAKEN_RETRY_SECONDS = 10.0
Clock = Callable[[], datetime]


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Done callback of a delivery nobody awaited (its reconcile failed after the
    ConfigMap was written): say what went wrong instead of a warning at exit."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("signalling pods failed: %s", task.exception())


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


def ref_of(body: Mapping[str, Any]) -> PromptRef:
    meta = body.get("metadata") or {}
    return PromptRef(str(meta.get("namespace")), str(meta.get("name")))


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        subscribers: Subscribers,
        accounting: DeliveryAccounting,
        status: StatusWriter,
        leadership: Leadership,
        *,
        workers: int = 8,
        clock: Clock | None = None,
    ) -> None:
        self._api = api
        self._inventory = inventory
        self._subscribers = subscribers
        self._accounting = accounting
        self._status = status
        self._leadership = leadership
        self._clock: Clock = clock or (lambda: datetime.now(timezone.utc))
        self._claims = KeyClaims()
        self._revisions = Revisions(api, inventory)
        # One timer for every Prompt's next schedule entry (no per-object timers).
        self.scheduler = Scheduler(self.refresh, self._clock)
        self._queue: WorkQueue[PromptRef] = WorkQueue(base_delay=0.5, max_delay=60)
        self._bodies: dict[PromptRef, Mapping[str, Any] | None] = {}  # None: deleted
        self._workers = workers
        inventory.add_deleted_handler(self.refresh)  # a ConfigMap vanished: write it again
        inventory.add_recovered_handler(self.retry_now)

    # -- intake (called from kopf handlers; never blocks) ------------------------

    def submit(self, body: Mapping[str, Any]) -> None:
        ref = ref_of(body)
        spec = body.get("spec") or {}
        key = spec.get("key") if isinstance(spec, Mapping) else None
        created = str((body.get("metadata") or {}).get("creationTimestamp") or "")
        self._claim(ref, str(key or ref.name), created)
        self._status.observe(ref, body)
        # A standby re-checks queued Prompts too: the leader has usually settled
        # them by the next event, and a standby holds no text it will not need.
        standby = not self._leadership.leading.is_set()
        if (standby or not self._queue.busy(ref)) and self._settled(body):
            self._queue.discard(ref)
            self._bodies.pop(ref, None)
            return  # nothing to do, and nothing (no text) kept in memory
        self._bodies[ref] = slim(body)
        self._queue.add(ref)

    def submit_deleted(self, body: Mapping[str, Any]) -> None:
        ref = ref_of(body)
        self._claim(ref, None, "")
        self._bodies[ref] = None
        self._queue.add(ref)

    def refresh(self, ref: PromptRef) -> None:
        """Reconcile ``ref`` again from a fresh read (its ConfigMap vanished, a peer left)."""
        self._queue.add(ref)

    def retry_now(self) -> None:
        """The API server answers again: retry every failed Prompt now rather than
        after its backoff, which an outage of a few seconds grows to many more.
        A Prompt that fails again backs off further (its count is kept)."""
        retried = self._queue.retry_now()
        if retried:
            logger.info("API server reachable again: retrying %d Prompt(s) now", retried)

    def _claim(self, ref: PromptRef, key: str | None, created: str) -> None:
        for peer in self._claims.claim(ref, key, created):
            self.refresh(peer)

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
        self._accounting.track(
            prompt, rendered.revision, (delivery["updated"], delivery["subscribed"])
        )
        return True

    # -- workers -------------------------------------------------------------------

    async def run(self) -> None:
        await self._inventory.synced.wait()
        await self._leadership.leading.wait()  # a standby only keeps its caches
        await asyncio.gather(*(self._work() for _ in range(self._workers)))

    async def _work(self) -> None:
        while True:
            ref = await self._queue.get()
            try:
                await self.reconcile(ref)
                self._queue.forget(ref)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                level = (
                    logging.WARNING
                    if self._queue.failures(ref) < MAX_ATTEMPTS_LOGGED
                    else logging.DEBUG
                )
                logger.log(
                    level, "Prompt %s: reconcile failed, will retry: %s", ref, exc, extra=about(ref)
                )
                self._queue.add_rate_limited(ref)
            except Exception:
                logger.exception("Prompt %s: unexpected error, will retry", ref, extra=about(ref))
                self._queue.add_rate_limited(ref)
            finally:
                self._queue.done(ref)

    # -- one reconcile -----------------------------------------------------------

    async def _read(self, ref: PromptRef) -> Mapping[str, Any] | None:
        if ref in self._bodies:
            return self._bodies.pop(ref)
        return await self._api.get(object_path(GROUP_VERSION, PLURAL, ref.namespace, ref.name))

    async def reconcile(self, ref: PromptRef) -> None:
        body = await self._read(ref)
        if body is None:
            await self._deleted(ref)
            return
        try:
            prompt = parse_prompt(body)
        except SpecError as exc:
            uid = str((body.get("metadata") or {}).get("uid", ""))
            ready = Condition("Ready", False, "InvalidSpec", str(exc))
            await self._status.write(ref, body, uid, ready, revision=None, key=None)
            return
        now = self._clock()
        rendered = render(prompt, now)
        upcoming = next_activation(prompt, now)
        self.scheduler.set(ref, upcoming)
        verdict = evaluate(prompt, rendered)
        problem = verdict.problem or self._key_conflict(prompt)
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # going away (its namespace may be terminating): write nothing more
        schedule = {"nextActivation": utc_text(upcoming) if upcoming else None}
        current = self._status.latest(ref, body)
        if problem is None:
            delivery: asyncio.Task[DeliveryCount] | None = None

            def deliver_now() -> None:
                # The new revision's ConfigMap exists: signal the pods at once, while
                # the history summary (a GET of the previous revision) and pruning run.
                nonlocal delivery
                hops.mark(hops.APPLIED, str(ref), rendered.revision)
                delivery = asyncio.create_task(
                    self._accounting.delivered(prompt, rendered.revision)
                )
                delivery.add_done_callback(_retrieve)

            outcome = await self._apply_revisions(prompt, rendered, current, deliver_now)
            if isinstance(outcome, Problem):
                problem = outcome
            elif outcome is not None:
                if outcome.wrote and delivery is None:
                    hops.mark(hops.APPLIED, str(ref), rendered.revision)
                await self._ready(prompt, body, rendered, outcome, current, schedule, delivery)
                await self._announce(prompt, rendered, outcome, verdict)
                return
            else:
                return  # its namespace is terminating: nothing to write
        assert problem is not None
        if problem.reason == "KeyConflict":
            await self._drop(ref)  # the key is another Prompt's; serve nothing
        ready = Condition("Ready", False, problem.reason, problem.message)
        await self._status.write(
            ref, body, prompt.uid, ready, revision=None, key=None, extra=schedule
        )

    def _key_conflict(self, prompt: Prompt) -> Problem | None:
        owner = self._claims.owner(prompt.ref.namespace, prompt.key)
        if owner is None or owner == prompt.ref.name:
            return None
        return Problem(
            "KeyConflict",
            f"Prompt {owner} in this namespace already serves key {prompt.key!r}; "
            "give one of them a different spec.key",
        )

    async def _apply_revisions(
        self,
        prompt: Prompt,
        rendered: Rendered,
        current: Mapping[str, Any],
        on_created: Callable[[], None],
    ) -> Outcome | Problem | None:
        """The revisions applied; a Problem when the API server refused for good;
        None when the namespace is being terminated."""
        try:
            return await self._revisions.apply(prompt, rendered, current, on_created)
        except ConfigMapTaken as exc:
            # No watch sees the squatter go (it has no label): look again later.
            self._queue.add_after(prompt.ref, TAKEN_RETRY_SECONDS)
            return Problem("ConfigMapTaken", str(exc))
        except ApiError as exc:
            if exc.retryable:
                raise
            if exc.status == 403 and "being terminated" in exc.message:
                logger.debug(
                    "Prompt %s: namespace is terminating; nothing to write",
                    prompt.ref,
                    extra=about(prompt.ref),
                )
                return None
            return Problem("WriteFailed", f"the ConfigMap could not be written: {exc}")

    async def _ready(
        self,
        prompt: Prompt,
        body: Mapping[str, Any],
        rendered: Rendered,
        outcome: Outcome,
        current: Mapping[str, Any],
        schedule: Mapping[str, Any],
        delivery: asyncio.Task[DeliveryCount] | None = None,
    ) -> None:
        """Status of a Prompt whose revision is in place: Ready, history, delivery
        (``delivery``: its signals, already under way)."""
        extra: dict[str, Any] = {
            "revisions": [r.to_status() for r in outcome.records],
            **schedule,
            "activeSchedule": rendered.source.removeprefix("schedule ")
            if rendered.source != "spec"
            else None,
        }
        delivered: Condition | None = None
        known = current.get("delivery") or {}
        if (
            not outcome.wrote
            and current.get("revision") == rendered.revision
            and isinstance(known.get("updated"), int)
            and isinstance(known.get("subscribed"), int)
        ):
            # Nothing to deliver: waiting for every pod here would make a restart
            # with thousands of Prompts slow and could write counts nobody changed.
            self._accounting.track(
                prompt, rendered.revision, (known["updated"], known["subscribed"])
            )
        else:
            count = await (delivery or self._accounting.delivered(prompt, rendered.revision))
            extra["delivery"] = delivery_field(count)
            delivered = delivered_condition(count, rendered.revision)
        extra["variants"] = variants_field(
            prompt.ref.name, rendered.variants, self._subscribers.matching_pods(prompt)
        )
        cm_name = wire.configmap_name(prompt.ref.name, rendered.revision)
        ready = Condition(
            "Ready",
            True,
            "Rendered",
            f"revision {outcome.number} ({rendered.revision}) is in ConfigMap {cm_name}",
        )
        await self._status.write(
            prompt.ref,
            body,
            prompt.uid,
            ready,
            revision=rendered.revision,
            key=rendered.key,
            extra=extra,
            delivered=delivered,
        )

    async def _announce(
        self, prompt: Prompt, rendered: Rendered, outcome: Outcome, verdict: Verdict
    ) -> None:
        """Events for a new revision: a schedule entry took effect, policy warnings."""
        if outcome.new is None:
            return
        if outcome.new.source != "spec":
            await post_event(
                self._api,
                prompt.ref,
                prompt.uid,
                warning=False,
                reason="ScheduleActivated",
                message=f"the {outcome.new.source} entry took effect: "
                f"revision {outcome.number} ({rendered.revision})",
            )
        for warning in verdict.warnings:
            await post_event(
                self._api,
                prompt.ref,
                prompt.uid,
                warning=True,
                reason=warning.reason,
                message=warning.message,
            )

    async def _deleted(self, ref: PromptRef) -> None:
        self._status.forget(ref)
        self._queue.forget(ref)
        self.scheduler.set(ref, None)
        # Garbage collection would remove the ConfigMaps too, but later; deleting
        # them now lets sidecars drop the file at once.
        await self._drop(ref)

    async def _drop(self, ref: PromptRef) -> None:
        await self._revisions.drop(ref)
        await self._accounting.withdraw(ref)
