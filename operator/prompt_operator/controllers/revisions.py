"""Revisions: a pure plan of what to create, relabel and prune, then its application.

Every change of the rendered text is a new immutable ConfigMap; the current
one carries the highest revision number; the history limit decides what is
pruned. Planning needs only the inventory's metadata and the status; applying
is the only part that talks to the API server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_client import wire

from .. import history, metrics
from ..configmap import build_configmap, label_patch, revision_labels
from ..events import now_rfc3339
from ..inventory import Entry, Inventory, entry_from
from ..logs import about
from ..model import Prompt, PromptRef
from ..render import Rendered
from ..runtime.client import KubeApi, object_path
from ..runtime.errors import ApiError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevisionPlan:
    """Step one: the ConfigMap of the rendered text."""

    foreign: tuple[Entry, ...]  # left by an earlier Prompt of this name: delete
    number: int  # the rendered text's revision number
    create: dict[str, Any] | None  # its ConfigMap, when it does not exist yet
    new_head: bool  # the history gets a new head record


@dataclass(frozen=True)
class Cleanup:
    """Step two, once the history is known: prune and relabel."""

    prune: tuple[Entry, ...]
    relabel: tuple[tuple[Entry, dict[str, str | None]], ...]


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
    prompt: Prompt, kept: Sequence[history.Record], entries: Iterable[Entry]
) -> Cleanup:
    """Prune what the history no longer keeps. Labels: the current revision carries
    its number; every retained one carries the Prompt's labels (a pod selector
    must never pick an old revision)."""
    numbers = {r.revision: r.number for r in kept}
    prune: list[Entry] = []
    relabel: list[tuple[Entry, dict[str, str | None]]] = []
    for entry in entries:
        if entry.uid != prompt.uid:
            continue
        if entry.revision not in numbers:
            prune.append(entry)
            continue
        patch = label_patch(entry.labels, revision_labels(prompt, numbers[entry.revision]))
        if patch:
            relabel.append((entry, patch))
    return Cleanup(tuple(prune), tuple(relabel))


def head_record(
    plan: RevisionPlan,
    rendered: Rendered,
    records: Sequence[history.Record],
    previous: history.Snapshot | None,
    now: str,
) -> history.Record:
    """The history record of the new head, summarised against what apps read before."""
    new = history.Record(
        number=plan.number,
        revision=rendered.revision,
        time=now,
        source=rendered.source,
        summary=history.summarize(previous, history.snapshot_of(rendered)),
    )
    earlier = [r.number for r in records if r.revision == rendered.revision]
    if earlier:
        new = dataclasses.replace(new, summary=f"same as revision {earlier[-1]}; {new.summary}")
    return new


class Revisions:
    def __init__(self, api: KubeApi, inventory: Inventory) -> None:
        self._api = api
        self._inventory = inventory

    async def apply(self, prompt: Prompt, rendered: Rendered, status: Mapping[str, Any]) -> Outcome:
        """Make ``rendered`` the current revision: create its ConfigMap, or raise the
        number of the one still in history (a rollback), then prune what the
        history limit no longer keeps."""
        ref = prompt.ref
        records = history.records_from(status)
        plan = plan_revision(prompt, rendered, records, self._inventory.revisions(ref))
        for entry in plan.foreign:  # not yet garbage-collected
            await self._delete(ref, entry)
        wrote = False
        if plan.create is not None:
            body = plan.create
            result = await self._api.apply(
                object_path("v1", "configmaps", ref.namespace, body["metadata"]["name"]), body
            )
            metrics.WRITES.labels("configmap").inc()
            self._inventory.record(ref.namespace, entry_from((result or body)["metadata"]))
            wrote = True
            logger.info(
                "Prompt %s: revision %d (%s) created",
                ref,
                plan.number,
                rendered.revision,
                extra=about(ref, revision=rendered.revision),
            )
        new: history.Record | None = None
        if plan.new_head:
            head = records[-1] if records else None
            previous = await self._snapshot(ref, head) if head is not None else None
            new = head_record(plan, rendered, records, previous, now_rfc3339())
        kept = history.retained(records, new, prompt.history_limit)
        cleanup = plan_cleanup(prompt, kept, self._inventory.revisions(ref))
        for entry in cleanup.prune:
            await self._delete(ref, entry)
            logger.info(
                "Prompt %s: pruned revision %s",
                ref,
                entry.revision,
                extra=about(ref, revision=entry.revision),
            )
        for entry, patch in cleanup.relabel:
            result = await self._api.merge_patch(
                object_path("v1", "configmaps", ref.namespace, entry.name),
                {"metadata": {"labels": patch}},
            )
            metrics.WRITES.labels("configmap").inc()
            self._inventory.record(ref.namespace, entry_from(result["metadata"]))
            wrote = wrote or entry.revision == rendered.revision
        return Outcome(wrote, plan.number, kept, new)

    async def drop(self, ref: PromptRef) -> None:
        """Delete every revision ConfigMap of ``ref`` (one request per Prompt uid)."""
        path = object_path("v1", "configmaps", ref.namespace)
        for uid in sorted({entry.uid for entry in self._inventory.revisions(ref)}):
            for entry in self._inventory.revisions(ref):
                if entry.uid == uid:
                    self._inventory.forget(ref.namespace, entry.name)
            if uid:
                await self._api.delete_collection(path, f"{wire.PROMPT_UID_LABEL}={uid}")
            metrics.WRITES.labels("configmap").inc()
            logger.info("Prompt %s: removed its revision ConfigMaps", ref, extra=about(ref))

    async def _delete(self, ref: PromptRef, entry: Entry) -> None:
        # Forgotten first: the watch's DELETED event is then ours, not a surprise.
        self._inventory.forget(ref.namespace, entry.name)
        await self._api.delete(object_path("v1", "configmaps", ref.namespace, entry.name))
        metrics.WRITES.labels("configmap").inc()

    async def _snapshot(self, ref: PromptRef, record: history.Record) -> history.Snapshot | None:
        """What apps read at ``record`` (one GET of its ConfigMap), for the summary."""
        name = wire.configmap_name(ref.name, record.revision)
        try:
            cm = await self._api.get(object_path("v1", "configmaps", ref.namespace, name))
        except ApiError:
            return None
        if cm is None:
            return None
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        return history.snapshot_from_configmap(
            cm.get("data") or {}, str(annotations.get(wire.KEY_ANNOTATION, ""))
        )
