"""Every cluster operation the console's pages make, in one object.

A handler parses its request, calls one method of ``PromptService`` and renders
what it returns. The calls carry the user's own credentials (``PromptApi`` over
the one client, ``KubeApi``), so the API server's RBAC decides; comparisons run
in worker threads, a few at a time; usage comes from the ``--prometheus`` the
user named, with no credentials sent there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import aiohttp

from prompt_contract import objects

from .. import history
from ..prompt_api import ApiError, PromptApi
from ..rollback import rollback_patch
from ..runtime.client import Credentials, KubeApi
from . import usage
from .compare import Compared, compare_texts, part_pairs, summarize
from .watch import MAX_STREAMS, WatchHub

T = TypeVar("T")
# Comparisons computed at once (each in a worker thread, each within worddiff's budget).
MAX_DIFFS = 2


@dataclass(frozen=True)
class Overview:
    """What a Prompt's overview page shows besides the Prompt itself."""

    obj: dict[str, Any]
    events: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    usage: usage.Usage | None
    usage_error: str | None


@dataclass(frozen=True)
class Comparison:
    old: history.Record
    new: history.Record
    summary: str
    texts: list[Compared]


@dataclass(frozen=True)
class Revisions:
    obj: dict[str, Any]
    records: list[history.Record]
    compare: Comparison | None
    problem: str | None  # why the asked-for comparison cannot be shown


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback to ``target`` as the confirmation page shows it. ``target`` None: no
    such revision is kept; ``data`` None: its ConfigMap is gone."""

    obj: dict[str, Any]
    records: list[history.Record]
    target: history.Record | None
    current: history.Record | None = None
    data: dict[str, str] | None = None
    summary: str = ""
    texts: list[Compared] | None = None


class PromptService:
    def __init__(self, api: KubeApi, max_streams: int = MAX_STREAMS, prometheus: str | None = None):
        self._kube = api
        self.api = PromptApi(api)
        self.streams = WatchHub(api, max_streams)
        self._prometheus = prometheus
        self._diffs = asyncio.Semaphore(MAX_DIFFS)

    @classmethod
    def connect(
        cls, credentials: Credentials, max_streams: int = MAX_STREAMS, prometheus: str | None = None
    ) -> PromptService:
        return cls(KubeApi(credentials, timeout=15.0), max_streams, prometheus)

    async def close(self) -> None:
        await self.streams.close()
        await self._kube.close()

    async def in_thread(self, work: Callable[[], T]) -> T:
        """CPU-bound page work (a comparison, a page of diffs) off the event loop."""
        async with self._diffs:
            return await asyncio.to_thread(work)

    # -- reads -------------------------------------------------------------------

    async def prompts(self, ns: str, label: str) -> tuple[list[dict[str, Any]], bool]:
        return await self.api.prompts(ns, label)

    async def prompt(self, ns: str, name: str) -> dict[str, Any]:
        return await self.api.prompt(ns, name)

    async def overview(self, ns: str, name: str, key: Callable[[dict[str, Any]], str]) -> Overview:
        """The Prompt, its Events, the namespace's subscribed pods and its usage
        (``key``: the Prompt's key, which the usage counter is labelled with)."""
        obj, events, pods = await asyncio.gather(
            self.api.prompt(ns, name), self.api.events(ns, name), self.api.subscribed_pods(ns)
        )
        used, error = await self.usage(key(obj))
        return Overview(obj, events, pods, used, error)

    async def usage(self, key: str) -> tuple[usage.Usage | None, str | None]:
        """Uses by revision, variant and outcome from --prometheus, or why not."""
        url = self._prometheus
        if not url:
            return None, None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(url + "/api/v1/query", params={"query": usage.usage_query(key)}) as r,
            ):
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return None, f"cannot query Prometheus at {url}: {exc or type(exc).__name__}"
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else "not a Prometheus answer"
            return None, f"Prometheus at {url} answered: {error}"
        return usage.usage((body.get("data") or {}).get("result") or []), None

    async def can_patch(self, ns: str, name: str) -> bool:
        """Whether the user may change the Prompt; True when the API server will not say
        (the write itself then tells)."""
        try:
            return await self.api.can("patch", ns, name)
        except ApiError:
            return True

    # -- revisions ---------------------------------------------------------------

    async def snapshot(self, ns: str, name: str, record: history.Record) -> dict[str, str] | None:
        """The data of a revision's ConfigMap; None when it is gone."""
        cm = await self.api.configmap(ns, objects.configmap_name(name, record.revision))
        return None if cm is None else dict(cm.get("data") or {})

    async def compare(
        self, name: str, old: Mapping[str, str], new: Mapping[str, str]
    ) -> tuple[str, list[Compared]]:
        """Two revisions' ConfigMap data compared: a summary line and each part's rows."""
        old_s = history.snapshot_from_configmap(old, name)
        new_s = history.snapshot_from_configmap(new, name)
        pairs = part_pairs(old, new)
        texts = await self.in_thread(lambda: compare_texts(pairs))
        return summarize(old_s, new_s, pairs, texts), texts

    async def compare_texts(self, pairs: list[tuple[str, str, str]]) -> list[Compared]:
        return await self.in_thread(lambda: compare_texts(pairs))

    async def revisions(
        self, ns: str, name: str, old_n: int | None, new_n: int | None
    ) -> Revisions:
        """The kept revisions and a comparison of two (default: the last two)."""
        obj = await self.api.prompt(ns, name)
        status = obj.get("status") or {}
        records = history.records_from(status)
        if records and new_n is None:
            new_n = records[-1].number
        if records and old_n is None:
            old_n = records[-2].number if len(records) > 1 else records[-1].number
        old_r = _record(records, old_n)
        new_r = _record(records, new_n)
        if old_r is None or new_r is None:
            problem = f"no revision {old_n if old_r is None else new_n} is kept"
            return Revisions(obj, records, None, problem if records else None)
        old_d, new_d = await asyncio.gather(
            self.snapshot(ns, name, old_r), self.snapshot(ns, name, new_r)
        )
        if old_d is None or new_d is None:
            problem = "a revision's ConfigMap is gone; it was pruned or deleted"
            return Revisions(obj, records, None, problem)
        summary, texts = await self.compare(name, old_d, new_d)
        return Revisions(obj, records, Comparison(old_r, new_r, summary, texts), None)

    async def rollback_plan(self, ns: str, name: str, number: int | None) -> RollbackPlan:
        """What a rollback to revision ``number`` would change, compared with the current."""
        obj = await self.api.prompt(ns, name)
        records = history.records_from(obj.get("status") or {})
        target = _record(records, number)
        if target is None:
            return RollbackPlan(obj, records, None)
        current = records[-1] if records else None
        data = await self.snapshot(ns, name, target)
        current_d = await self.snapshot(ns, name, current) if current else None
        if data is None:
            return RollbackPlan(obj, records, target, current)
        summary, texts = await self.compare(name, current_d, data) if current_d else ("", [])
        return RollbackPlan(obj, records, target, current, data, summary, texts)

    async def rollback(self, plan: RollbackPlan, resource_version: str) -> None:
        """Write the plan's revision back (``RollbackError``: it cannot be; ``ApiError``:
        refused). ``resource_version`` is the one the user confirmed on: a change
        since then is a conflict, not overwritten."""
        assert plan.data is not None, "a plan without its revision's data is not written"
        patch = rollback_patch(plan.obj, plan.data, datetime.now(timezone.utc))
        patch["metadata"] = {"resourceVersion": resource_version}
        meta = plan.obj["metadata"]
        await self.api.merge_patch(meta["namespace"], meta["name"], patch, dry_run=False)

    # -- rollout -----------------------------------------------------------------

    async def ask_rollout(self, ns: str, name: str, action: str) -> None:
        """Ask the operator for a rollout action: the annotation it acts on once and
        removes (metadata only, so no GitOps drift; ``ApiError``: refused)."""
        patch = {"metadata": {"annotations": {objects.ROLLOUT_ACTION_ANNOTATION: action}}}
        await self.api.merge_patch(ns, name, patch, dry_run=False)

    # -- edit --------------------------------------------------------------------

    async def save(
        self, obj: Mapping[str, Any], spec: dict[str, Any], resource_version: str, *, dry_run: bool
    ) -> dict[str, Any]:
        """Write ``spec`` as the Prompt's whole spec (or only dry-run it), failing with a
        409 when the Prompt changed after ``resource_version``.

        Server-side apply first (dry run), under the console's field manager. Apply
        merges lists by key and keeps entries another manager owns: a variable
        kubectl added and the user removed here would survive, so the dry run's spec
        differs from ``spec``. Then the spec is written whole instead, by a merge
        patch with fields the form dropped set to null: same field manager, same
        resourceVersion precondition, dry-run first so a refusal writes nothing."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": "Prompt",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": resource_version},
            "spec": spec,
        }
        result = await self.api.apply(body, dry_run=True)
        if (result.get("spec") or {}) == spec:
            return result if dry_run else await self.api.apply(body, dry_run=False)
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": _whole(obj, spec)}
        result = await self.api.merge_patch(ns, name, patch, dry_run=True)
        if dry_run:
            return result
        return await self.api.merge_patch(ns, name, patch, dry_run=False)


def _record(records: list[history.Record], number: int | None) -> history.Record | None:
    return next((r for r in records if r.number == number), None)


def _whole(obj: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch's spec: ``spec``, with fields it dropped set to null."""
    out: dict[str, Any] = dict(spec)
    for key in obj.get("spec") or {}:
        out.setdefault(key, None)
    return out
