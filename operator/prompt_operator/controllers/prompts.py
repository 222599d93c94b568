"""The Prompt controller: what happens to one edit, level-triggered and coalesced.

Every watch event for a Prompt only records the latest body and queues its
name; a worker (the runtime's) then makes the cluster match that body. Ten
quick edits of one Prompt are one reconcile of the last. Nothing is written
unless it differs: an edit costs two writes (the new revision's ConfigMap,
one status patch), plus, once the history is full, one delete per batch of
pruned revisions; a restart or a re-applied manifest costs none.

``reconcile`` reads as the design's flow: read, parse and render once
(``Desired``), judge, write the revisions, deliver, status. It returns when
to look again (the next schedule entry, or a taken ConfigMap name), and the
runtime keeps that timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prompt_contract import objects

from ..includes import MAX_SNIPPETS, Expansion, expand, included_names
from ..inventory import Inventory
from ..logs import about
from ..model import Prompt, PromptRef, SpecError, parse_prompt
from ..policies import Problem
from ..runtime.client import KubeApi
from ..runtime.controller import DONE, Result
from ..runtime.errors import ApiError
from ..runtime.leader import Leadership
from ..runtime.workqueue import WorkQueue
from ..status import DeliveryCount
from .delivery import Delivery
from .desired import Desired, desired_at, include_cause, known_delivery, settled
from .keyclaims import KeyClaims
from .readiness import Readiness, prompt_path
from .revisions import ConfigMapTaken, Outcome, Revisions
from .rollout import Rollouts, Serving, action_of

logger = logging.getLogger(__name__)

# A revision's name taken by a ConfigMap the operator did not make: seconds
# between looks (one GET and one refused POST each) until its owner deletes it.
TAKEN_RETRY_SECONDS = 10.0
Clock = Callable[[], datetime]


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
    kept = {k: meta[k] for k in keep if k in meta}
    action = (meta.get("annotations") or {}).get(objects.ROLLOUT_ACTION_ANNOTATION)
    if action is not None:  # the one annotation a reconcile acts on
        kept["annotations"] = {objects.ROLLOUT_ACTION_ANNOTATION: action}
    return {"metadata": kept, "spec": body.get("spec"), "status": body.get("status")}


def ref_of(body: Mapping[str, Any]) -> PromptRef:
    meta = body.get("metadata") or {}
    return PromptRef(str(meta.get("namespace")), str(meta.get("name")))


def terminating(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def requeue(desired: Desired | None, *, also: float | None = None) -> Result:
    """Look again at the next schedule entry, or after ``also`` seconds if sooner."""
    entry = desired.seconds_to_next_entry() if desired is not None else None
    times = [t for t in (entry, also) if t is not None]
    return Result(requeue_after=min(times)) if times else DONE


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    signalling: asyncio.Task[DeliveryCount] | None  # pods signalled as the ConfigMap appeared


class PromptController:
    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        delivery: Delivery,
        readiness: Readiness,
        leadership: Leadership,
        *,
        clock: Clock | None = None,
        prometheus_url: str | None = None,
    ) -> None:
        self._api = api
        self._inventory = inventory
        self._delivery = delivery
        self._readiness = readiness
        self._leadership = leadership
        self._clock: Clock = clock or (lambda: datetime.now(timezone.utc))
        self._claims = KeyClaims()
        self._revisions = Revisions(
            api, inventory, written=delivery.revision_written, held=delivery.revision_held
        )
        self._rollouts = Rollouts(api, self._clock, prometheus_url)
        self.queue: WorkQueue[PromptRef] = WorkQueue(base_delay=0.5, max_delay=60)
        self._bodies: dict[PromptRef, Mapping[str, Any] | None] = {}  # None: deleted
        # Includes, by name only (no text): who includes each Prompt, what each
        # includer names, the generation last seen of included Prompts, and which
        # included Prompts changed since an includer's last reconcile (its cause).
        self._includers: dict[PromptRef, set[PromptRef]] = {}
        self._includes: dict[PromptRef, tuple[str, ...]] = {}
        self._generations: dict[PromptRef, int | None] = {}  # None: deleted
        self._changed: dict[PromptRef, set[str]] = {}
        inventory.add_deleted_handler(self.queue.add)  # a ConfigMap vanished: write it again
        inventory.add_recovered_handler(self.retry_now)

    # -- intake (called from kopf handlers; never blocks) ------------------------

    def submit(self, body: Mapping[str, Any]) -> None:
        ref = ref_of(body)
        spec = body.get("spec") or {}
        key = spec.get("key") if isinstance(spec, Mapping) else None
        created = str((body.get("metadata") or {}).get("creationTimestamp") or "")
        self._claim(ref, str(key or ref.name), created)
        self._readiness.observe(ref, body)
        self._learn_includes(ref, spec)
        self._included_changed(ref, int((body.get("metadata") or {}).get("generation") or 0))
        # A standby re-checks queued Prompts too: the leader has usually settled
        # them by the next event, and a standby holds no text it will not need.
        # An includer is never settled here: its revision depends on other Prompts.
        standby = not self._leadership.leading.is_set()
        if (standby or not self.queue.busy(ref)) and ref not in self._includes:
            desired = self._settled(body)
            if desired is not None:
                self.queue.discard(ref)
                self._bodies.pop(ref, None)
                # Nothing to write and no text kept; only its schedule and its pods.
                next_look = requeue(desired).requeue_after
                if next_look is not None:
                    self.queue.add_after(ref, next_look)
                known = known_delivery(desired.prompt.status)
                if known is not None:
                    self._delivery.track(desired, known)
                return
        self._bodies[ref] = slim(body)
        self.queue.add(ref)

    def submit_deleted(self, body: Mapping[str, Any]) -> None:
        ref = ref_of(body)
        self._claim(ref, None, "")
        self._learn_includes(ref, None)
        self._included_changed(ref, None)
        self._bodies[ref] = None
        self.queue.add(ref)

    def retry_now(self) -> None:
        """The API server answers again: retry every failed Prompt now rather than
        after its backoff, which an outage of a few seconds grows to many more.
        A Prompt that fails again backs off further (its count is kept)."""
        retried = self.queue.retry_now()
        if retried:
            logger.info("API server reachable again: retrying %d Prompt(s) now", retried)

    def _claim(self, ref: PromptRef, key: str | None, created: str) -> None:
        for peer in self._claims.claim(ref, key, created):
            self.queue.add(peer)  # its ownership of a key may have changed

    def _learn_includes(self, ref: PromptRef, spec: Any) -> None:
        for name in self._includes.pop(ref, ()):
            snippet = PromptRef(ref.namespace, name)
            self._includers[snippet].discard(ref)
            if not self._includers[snippet]:
                del self._includers[snippet]
                self._generations.pop(snippet, None)
        names = included_names(spec)
        if names:
            self._includes[ref] = names
        for name in names:
            self._includers.setdefault(PromptRef(ref.namespace, name), set()).add(ref)

    def _included_changed(self, ref: PromptRef, generation: int | None) -> None:
        """Queue every Prompt that includes ``ref``, directly or not, when its spec
        changed (a new generation), it appeared, or it went away (``None``)."""
        if ref not in self._includers:
            return
        # Not seen yet counts as a change: an included Prompt seen before its
        # includer has no generation here, and its deletion must still be news.
        if ref in self._generations and self._generations[ref] == generation:
            return
        self._generations[ref] = generation
        todo, seen = deque([ref]), {ref}
        while todo:
            for includer in self._includers.get(todo.popleft(), ()):
                self._changed.setdefault(includer, set()).add(ref.name)
                self.queue.add(includer)
                if includer not in seen:
                    seen.add(includer)
                    todo.append(includer)

    def _settled(self, body: Mapping[str, Any]) -> Desired | None:
        """What ``body`` asks for, when the cluster already has it; else None."""
        if not self._inventory.synced.is_set() or terminating(body) or action_of(body):
            return None
        try:
            prompt = parse_prompt(body)
        except SpecError:
            return None
        desired = desired_at(prompt, self._clock())
        name = objects.configmap_name(prompt.ref.name, desired.rendered.revision)
        current = self._inventory.get(prompt.ref.namespace, name)
        return desired if settled(desired, prompt.status, current) else None

    # -- one reconcile -----------------------------------------------------------

    async def reconcile(self, ref: PromptRef) -> Result:
        body = await self._read(ref)
        if body is None:
            await self._deleted(ref)
            return DONE
        if terminating(body):
            return DONE  # going away (its namespace may be terminating): write nothing
        desired = await self._desired(ref, body)
        if isinstance(desired, Problem):
            await self._readiness.not_ready(ref, body, desired, None)
            return DONE  # a change of an included Prompt queues it again
        prompt = desired.prompt
        status = self._readiness.latest(ref, body)
        problem = desired.verdict.problem or self._key_conflict(prompt)
        # What to serve: the spec's render, or what its rollout serves now.
        serving = problem or await self._rollouts.step(desired, status, body)
        if isinstance(serving, Serving):
            applied = await self._apply(serving.desired, status, serving.protected)
            if applied is None:
                return DONE  # its namespace is terminating: nothing to write
            if isinstance(applied, Applied):
                await self._served(body, serving, applied, status)
                return requeue(desired, also=serving.requeue_after)
            serving = applied
        problem = serving
        if problem.reason == "KeyConflict":
            await self._drop(ref)  # the key is another Prompt's; serve nothing
        await self._readiness.not_ready(ref, body, problem, desired)
        taken = problem.reason == "ConfigMapTaken"  # no watch sees the squatter go
        return requeue(desired, also=TAKEN_RETRY_SECONDS if taken else None)

    async def _served(
        self, body: Mapping[str, Any], serving: Serving, applied: Applied, status: Mapping[str, Any]
    ) -> None:
        """Delivery counted, the status written (with status.rollout), events posted."""
        desired = serving.desired
        count = await self._delivery.settle(
            desired, applied.outcome.wrote, status, applied.signalling
        )
        pods = self._delivery.pods(desired.prompt)
        rollout = None if serving.state is None else serving.state.to_status()
        await self._readiness.ready(body, desired, applied.outcome, count, pods, rollout=rollout)
        await self._readiness.announce(desired, applied.outcome)
        await self._rollouts.finish(desired.prompt, serving)

    async def _desired(self, ref: PromptRef, body: Mapping[str, Any]) -> Desired | Problem:
        """The body parsed, its includes expanded, rendered: or why not."""
        try:
            prompt = parse_prompt(body)
        except SpecError as exc:
            return Problem("InvalidSpec", str(exc))
        expansion: Expansion | Problem = Expansion(prompt, ())
        if prompt.includes:
            snippets = await self._snippets(prompt)
            expansion = snippets if isinstance(snippets, Problem) else expand(prompt, snippets)
        if isinstance(expansion, Problem):
            return expansion
        return desired_at(
            expansion.prompt,
            self._clock(),
            include_warnings=expansion.warnings,
            cause=include_cause(expansion.resolved, self._changed.pop(ref, set())),
        )

    async def _snippets(self, prompt: Prompt) -> dict[str, Prompt | None] | Problem:
        """Every Prompt ``prompt`` includes, directly or not, read breadth-first (None:
        it does not exist or is being deleted); no more than MAX_SNIPPETS of them."""
        found: dict[str, Prompt | None] = {}
        todo = deque(include.prompt for include in prompt.includes)
        while todo:
            name = todo.popleft()
            if name in found or "/" in name or not name:
                continue
            if len(found) == MAX_SNIPPETS:
                return Problem(
                    "InvalidInclude",
                    f"spec.includes reach more than {MAX_SNIPPETS} Prompts; include fewer",
                )
            body = await self._api.get(prompt_path(PromptRef(prompt.ref.namespace, name)))
            snippet = None
            if body is not None and not terminating(body):
                try:
                    snippet = parse_prompt(body)
                except SpecError:
                    snippet = None  # its own status says why
            found[name] = snippet
            if snippet is not None:
                todo.extend(include.prompt for include in snippet.includes)
        return found

    async def _read(self, ref: PromptRef) -> Mapping[str, Any] | None:
        if ref in self._bodies:
            return self._bodies.pop(ref)
        return await self._api.get(prompt_path(ref))

    def _key_conflict(self, prompt: Prompt) -> Problem | None:
        owner = self._claims.owner(prompt.ref.namespace, prompt.key)
        if owner is None or owner == prompt.ref.name:
            return None
        return Problem(
            "KeyConflict",
            f"Prompt {owner} in this namespace already serves key {prompt.key!r}; "
            "give one of them a different spec.key",
        )

    async def _apply(
        self, desired: Desired, status: Mapping[str, Any], protected: tuple[str, ...] = ()
    ) -> Applied | Problem | None:
        """The revisions written (pods signalled as soon as the new ConfigMap exists);
        a Problem when the API server refused for good; None when the namespace is
        being terminated. A retryable refusal raises: the runtime retries."""
        prompt, rendered = desired.prompt, desired.rendered
        try:
            created = await self._revisions.create(prompt, rendered, status)
            signalling = self._delivery.start(desired) if created.wrote else None
            if signalling is not None:
                # The pods first, the history after: its summary (a GET of the
                # previous revision when the operator no longer holds it) and any
                # pruning would only compete with the signals (and the sidecars,
                # on a small node) for CPU, while the status that records them
                # waits for the pods' answers anyway.
                await asyncio.wait({signalling})
            outcome = await self._revisions.finish(
                prompt, rendered, created, desired.cause, protected
            )
        except ConfigMapTaken as exc:
            return Problem("ConfigMapTaken", str(exc))
        except ApiError as exc:
            if exc.retryable:
                raise
            if exc.status == 403 and "being terminated" in exc.message:
                return None
            return Problem("WriteFailed", f"the ConfigMap could not be written: {exc}")
        return Applied(outcome, signalling)

    async def _deleted(self, ref: PromptRef) -> None:
        self._readiness.forget(ref)
        self._rollouts.forget(ref)
        self._changed.pop(ref, None)
        self.queue.forget(ref)
        self.queue.cancel(ref)  # no schedule entry is due for it any more
        # Garbage collection would remove the ConfigMaps too, but later; deleting
        # them now lets sidecars drop the file at once.
        await self._drop(ref)

    async def _drop(self, ref: PromptRef) -> None:
        await self._revisions.drop(ref)
        await self._delivery.withdraw(ref)


def log_fields(ref: PromptRef) -> dict[str, str]:
    return about(ref)
