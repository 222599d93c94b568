"""Revisions: a pure plan of what to create, relabel and prune, then its application.

Every change of the rendered text is a new immutable ConfigMap; the current
one carries the highest revision number; the history limit decides what is
pruned. Planning needs only the inventory's metadata and the status; applying
is the only part that talks to the API server.

Pruning is batched. The history users see (``status.revisions``, and so the
CLI and the console) holds exactly ``limit`` records; the ConfigMaps behind it
may outgrow it by a margin, and once they do, one ``deletecollection`` removes
every ConfigMap beyond the limit. An edit then costs its two writes plus one
delete per ``margin + 1`` edits, instead of one delete every time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

from .. import history, metrics
from ..configmap import build_configmap, label_patch, revision_labels
from ..events import now_rfc3339
from ..inventory import Entry, Inventory, entry_from
from ..logs import about
from ..model import Prompt, PromptRef
from ..render import Rendered
from ..runtime.client import FIELD_MANAGER, KubeApi, object_path
from ..runtime.errors import ApiError, Conflict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevisionPlan:
    """Step one: the ConfigMap of the rendered text."""

    foreign: tuple[Entry, ...]  # left by an earlier Prompt of this name: delete
    number: int  # the rendered text's revision number
    create: dict[str, Any] | None  # its ConfigMap, when it does not exist yet
    new_head: bool  # the history gets a new head record


# How far a Prompt's ConfigMaps may outgrow its history before a batch prune: as
# many again as the limit (so the default history of 10 costs one delete per 11
# edits: 2.09 writes an edit), at least MIN_MARGIN (a history of 1 would
# otherwise prune every other edit) and at most MAX_MARGIN (a history of 100
# must not keep 200 ConfigMaps of up to 1 MiB each in etcd).
MIN_MARGIN = 5
MAX_MARGIN = 20


def prune_margin(limit: int) -> int:
    """How many ConfigMaps beyond ``limit`` a Prompt may keep before they are pruned."""
    return min(max(limit, MIN_MARGIN), MAX_MARGIN)


@dataclass(frozen=True)
class Cleanup:
    """Step two, once the history is known: prune and relabel."""

    prune: tuple[Entry, ...]  # in one request, by ``selector``
    selector: str | None  # selects exactly ``prune`` among the Prompt's ConfigMaps
    singles: tuple[Entry, ...]  # pruned one by one: their number label is not unique
    relabel: tuple[tuple[Entry, dict[str, str | None]], ...]

    @property
    def pruned(self) -> tuple[Entry, ...]:
        return self.prune + self.singles


@dataclass(frozen=True)
class Outcome:
    """Where a reconcile left the Prompt's revisions."""

    wrote: bool  # a ConfigMap was created or relabelled
    number: int
    records: list[history.Record]
    new: history.Record | None  # the record this reconcile added


def plan_revision(
    prompt: Prompt,
    rendered: Rendered,
    records: Sequence[history.Record],
    entries: Iterable[Entry],
) -> RevisionPlan:
    """What makes ``rendered`` the current revision, given the status history and
    the revision ConfigMaps that exist."""
    foreign: list[Entry] = []
    mine: dict[str, Entry] = {}
    for entry in entries:
        if entry.uid == prompt.uid:
            mine[entry.revision] = entry
        else:
            foreign.append(entry)
    head = records[-1] if records else None
    existing = mine.get(rendered.revision)
    recorded = max((r.number for r in records), default=0)
    if head is not None and head.revision == rendered.revision:
        number = head.number
    elif existing is not None and existing.number > recorded:
        number = existing.number  # written before a crash; its status write was lost
    else:
        number = history.next_number(records, (e.number for e in mine.values()))
    return RevisionPlan(
        foreign=tuple(foreign),
        number=number,
        create=build_configmap(prompt, rendered, number) if existing is None else None,
        new_head=head is None or head.revision != rendered.revision or head.number != number,
    )


def plan_cleanup(
    prompt: Prompt,
    kept: Sequence[history.Record],
    entries: Iterable[Entry],
    protected: Collection[str] = (),
) -> Cleanup:
    """Prune what the history no longer keeps, in one batch once there is more of it
    than the margin allows. Labels: the current revision carries its number; every
    retained one carries the Prompt's labels (a pod selector must never pick an old
    revision).

    Never pruned: a revision ``kept`` names (the current one is its last; variants
    live inside one revision's ConfigMap, and a schedule entry becomes a revision
    only when it takes effect, so nothing else points at an older one), nor a
    ``protected`` revision (a rollout's stable one, served again on an abort), nor
    another Prompt's ConfigMap (selected by this Prompt's uid)."""
    numbers = {r.revision: r.number for r in kept}
    mine = [e for e in entries if e.uid == prompt.uid]
    beyond: list[Entry] = []
    relabel: list[tuple[Entry, dict[str, str | None]]] = []
    for entry in mine:
        if entry.revision in protected and entry.revision not in numbers:
            continue  # kept as it is, its number below the head's
        if entry.revision not in numbers:
            beyond.append(entry)
            continue
        patch = label_patch(entry.labels, revision_labels(prompt, numbers[entry.revision]))
        if patch:
            relabel.append((entry, patch))
    stale = any(
        label_patch(e.labels, revision_labels(prompt, e.number)) for e in beyond
    )  # the Prompt's labels changed: one delete beats relabelling history nobody sees
    if len(mine) <= prompt.history_limit + prune_margin(prompt.history_limit) and not stale:
        beyond = []
    prune, selector, singles = batch_of(prompt.uid, beyond, mine)
    return Cleanup(prune, selector, singles, tuple(relabel))


def batch_of(
    uid: str, prune: Sequence[Entry], mine: Sequence[Entry]
) -> tuple[tuple[Entry, ...], str | None, tuple[Entry, ...]]:
    """``prune`` split into what one label selector selects exactly (and that
    selector) and what must be deleted by name: entries whose number label is
    missing or also carried by one of ``mine`` that stays (after a crash between
    creating and relabelling, say). The selector names the managed-by label, the
    Prompt's uid (36 characters: a label value holds 63, a Prompt name up to 253)
    and the revision numbers, so it cannot reach another Prompt's ConfigMaps, even
    one whose name starts with this one's."""
    staying = [e for e in mine if e not in prune]
    taken = {e.labels.get(objects.REVISION_NUMBER_LABEL) for e in staying}
    batch: list[Entry] = []
    singles: list[Entry] = []
    for entry in prune:
        value = entry.labels.get(objects.REVISION_NUMBER_LABEL, "")
        shared = sum(1 for e in prune if e.labels.get(objects.REVISION_NUMBER_LABEL) == value)
        if value.isdigit() and value not in taken and shared == 1 and uid:
            batch.append(entry)
        else:
            singles.append(entry)
    if not batch:
        return (), None, tuple(singles)
    values = ",".join(sorted((e.labels[objects.REVISION_NUMBER_LABEL] for e in batch), key=int))
    selector = (
        f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE},{objects.PROMPT_UID_LABEL}={uid},"
        f"{objects.REVISION_NUMBER_LABEL} in ({values})"
    )
    return tuple(batch), selector, tuple(singles)


class ConfigMapTaken(Exception):
    """A ConfigMap with a revision's name exists and is not the one the operator
    made. The operator never adopts it: a ConfigMap made in advance without the
    managed-by label escapes the admission policy, so merging into it would serve
    whatever its author left beside our fields."""

    def __init__(self, namespace: str, name: str, why: str) -> None:
        super().__init__(
            f"ConfigMap {namespace}/{name} has this revision's name but was not made "
            f"by prompt-operator for this Prompt ({why}); it is never adopted. Delete "
            f"it (kubectl -n {namespace} delete configmap {name}) and the revision is "
            "written on the next try, within 10 s"
        )
        self.name = name


def not_ours(found: Mapping[str, Any], body: Mapping[str, Any], uid: str) -> str | None:
    """Why ``found``, the ConfigMap at a new revision's name, is not the one the
    operator creates as ``body`` for the Prompt of ``uid``; None when it is (a
    create whose answer was lost, or one the inventory has not seen yet)."""
    meta = found.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(objects.MANAGED_BY_LABEL) != objects.MANAGED_BY_VALUE:
        return f"it lacks the label {objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}"
    owners = meta.get("ownerReferences") or []
    if not any(isinstance(o, Mapping) and o.get("uid") == uid for o in owners):
        return f"no owner reference to this Prompt (uid {uid})"
    want = body["metadata"]["annotations"][objects.REVISION_ANNOTATION]
    if (meta.get("annotations") or {}).get(objects.REVISION_ANNOTATION) != want:
        return f"its {objects.REVISION_ANNOTATION} annotation is not {want}"
    if (found.get("data") or {}) != body["data"] or found.get("binaryData"):
        return "its data differs from this revision's text"
    return None


def head_record(
    plan: RevisionPlan,
    rendered: Rendered,
    records: Sequence[history.Record],
    previous: history.Snapshot | None,
    now: str,
    cause: str | None = None,
) -> history.Record:
    """The history record of the new head, summarised against what apps read before
    (after ``cause``, why it changed when the Prompt's own spec did not say)."""
    summary = history.summarize(previous, history.snapshot_of(rendered))
    new = history.Record(
        number=plan.number,
        revision=rendered.revision,
        time=now,
        source=rendered.source,
        summary=f"{cause}; {summary}" if cause and previous is not None else summary,
    )
    earlier = [r.number for r in records if r.revision == rendered.revision]
    if earlier:
        new = dataclasses.replace(new, summary=f"same as revision {earlier[-1]}; {new.summary}")
    return new


@dataclass(frozen=True)
class Created:
    """Step one done: the rendered text's ConfigMap exists."""

    plan: RevisionPlan
    records: list[history.Record]  # the history as the status had it
    wrote: bool  # this reconcile created it


class Revisions:
    """Writes the revision ConfigMaps a plan asks for, and prunes them.

    Two steps, so that pods are signalled the moment the new ConfigMap exists,
    while the history summary (from the previous revision) and pruning run:
    ``create`` then ``finish``."""

    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        written: Callable[[Mapping[str, Any]], None] | None = None,
        held: Callable[[str, str, str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._api = api
        self._inventory = inventory
        # Told of every revision ConfigMap written (its signed signal entry).
        self._written = written or (lambda configmap: None)
        # (namespace, Prompt, revision) -> that ConfigMap, when the operator still
        # holds it (the last two written of each Prompt, kept for signals): the
        # summary of an edit then costs no GET of the revision before it.
        self._held = held or (lambda namespace, prompt, revision: None)

    async def create(
        self, prompt: Prompt, rendered: Rendered, status: Mapping[str, Any]
    ) -> Created:
        """Make sure ``rendered`` has its ConfigMap (deleting any an earlier Prompt of
        this name left)."""
        ref = prompt.ref
        records = history.records_from(status)
        plan = plan_revision(prompt, rendered, records, self._inventory.revisions(ref))
        for entry in plan.foreign:  # not yet garbage-collected
            await self._delete(ref, entry)
        if plan.create is None:
            return Created(plan, records, wrote=False)
        result = await self._create(ref, plan.create, prompt.uid)
        self._inventory.record(ref.namespace, entry_from(result["metadata"]))
        self._written(result)
        logger.info(
            "Prompt %s: revision %d (%s) created",
            ref,
            plan.number,
            rendered.revision,
            extra=about(ref, revision=rendered.revision),
        )
        return Created(plan, records, wrote=True)

    async def finish(
        self,
        prompt: Prompt,
        rendered: Rendered,
        created: Created,
        cause: str | None = None,
        protected: Collection[str] = (),
    ) -> Outcome:
        """Record the new head in the history (or raise the number of the one still
        in it: a rollback), prune what the history limit no longer keeps, relabel."""
        ref, plan, records = prompt.ref, created.plan, created.records
        new: history.Record | None = None
        if plan.new_head:
            head = records[-1] if records else None
            previous = await self._snapshot(ref, head) if head is not None else None
            new = head_record(plan, rendered, records, previous, now_rfc3339(), cause)
        kept = history.retained(records, new, prompt.history_limit)
        cleanup = plan_cleanup(prompt, kept, self._inventory.revisions(ref), protected)
        await self._prune(ref, cleanup)
        wrote = created.wrote
        for entry, patch in cleanup.relabel:
            result = await self._api.merge_patch(
                object_path("v1", "configmaps", ref.namespace, entry.name),
                {"metadata": {"labels": patch}},
            )
            metrics.WRITES.labels("configmap").inc()
            self._inventory.record(ref.namespace, entry_from(result["metadata"]))
            self._written(result)
            wrote = wrote or entry.revision == rendered.revision
        return Outcome(wrote, plan.number, kept, new)

    async def _create(self, ref: PromptRef, body: dict[str, Any], uid: str) -> dict[str, Any]:
        """Create a revision's ConfigMap (a POST, never an apply over one that is
        there). One already there is accepted only if it is exactly ours."""
        try:
            created: dict[str, Any] = await self._api.request(
                "POST",
                object_path("v1", "configmaps", ref.namespace),
                params={"fieldManager": FIELD_MANAGER},
                body=body,
            )
        except Conflict:
            name = body["metadata"]["name"]
            found = await self._api.get(object_path("v1", "configmaps", ref.namespace, name))
            if found is None:
                raise  # deleted meanwhile: retried (409 is retryable)
            why = not_ours(found, body, uid)
            if why is not None:
                raise ConfigMapTaken(ref.namespace, name, why) from None
            return found
        metrics.WRITES.labels("configmap").inc()
        return created

    async def drop(self, ref: PromptRef) -> None:
        """Delete every revision ConfigMap of ``ref`` (one request per Prompt uid)."""
        path = object_path("v1", "configmaps", ref.namespace)
        for uid in sorted({entry.uid for entry in self._inventory.revisions(ref)}):
            for entry in self._inventory.revisions(ref):
                if entry.uid == uid:
                    self._inventory.forget(ref.namespace, entry.name)
            if uid:
                await self._api.delete_collection(path, f"{objects.PROMPT_UID_LABEL}={uid}")
            metrics.WRITES.labels("configmap").inc()
            logger.info("Prompt %s: removed its revision ConfigMaps", ref, extra=about(ref))

    async def _prune(self, ref: PromptRef, cleanup: Cleanup) -> None:
        if cleanup.selector is not None:
            for entry in cleanup.prune:  # forgotten first, as in _delete
                self._inventory.forget(ref.namespace, entry.name)
            await self._api.delete_collection(
                object_path("v1", "configmaps", ref.namespace), cleanup.selector
            )
            metrics.WRITES.labels("configmap").inc()
            logger.info(
                "Prompt %s: pruned revisions %s in one request",
                ref,
                ", ".join(str(e.number) for e in cleanup.prune),
                extra=about(ref),
            )
        for entry in cleanup.singles:
            await self._delete(ref, entry)
            logger.info(
                "Prompt %s: pruned revision %s",
                ref,
                entry.revision,
                extra=about(ref, revision=entry.revision),
            )

    async def _delete(self, ref: PromptRef, entry: Entry) -> None:
        # Forgotten first: the watch's DELETED event is then ours, not a surprise.
        self._inventory.forget(ref.namespace, entry.name)
        await self._api.delete(object_path("v1", "configmaps", ref.namespace, entry.name))
        metrics.WRITES.labels("configmap").inc()

    async def _snapshot(self, ref: PromptRef, record: history.Record) -> history.Snapshot | None:
        """What apps read at ``record``, for the summary: from the ConfigMap the
        operator holds, else one GET of it."""
        cm = self._held(ref.namespace, ref.name, record.revision)
        if cm is None:
            name = objects.configmap_name(ref.name, record.revision)
            try:
                cm = await self._api.get(object_path("v1", "configmaps", ref.namespace, name))
            except ApiError:
                return None
            if cm is None:
                return None
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        return history.snapshot_from_configmap(
            cm.get("data") or {}, str(annotations.get(objects.KEY_ANNOTATION, ""))
        )
