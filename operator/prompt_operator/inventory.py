"""What revision ConfigMaps exist, known from metadata alone.

One label-selected, metadata-only list and watch per scope (the whole cluster,
or each watched namespace) keeps, per ConfigMap, its Prompt, revision hash,
revision number and labels, indexed by Prompt. The operator compares what it
wants with this before writing, which is how an operator restart or a
re-applied manifest costs no writes, and how a ConfigMap deleted by hand is
noticed and written again. No text is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_sidecar import wire

from .kubeapi import METADATA_ONLY, METADATA_ONLY_WATCH, KubeApi, list_then_watch
from .model import PromptRef

logger = logging.getLogger(__name__)

SELECTOR = f"{wire.MANAGED_BY_LABEL}={wire.MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class Entry:
    name: str  # the ConfigMap's
    prompt: str  # the owning Prompt's name
    revision: str  # content hash
    number: int
    labels: dict[str, str]

    @property
    def uid(self) -> str:
        return self.labels.get(wire.PROMPT_UID_LABEL, "")


def entry_from(meta: dict[str, Any]) -> Entry:
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    number = labels.get(wire.REVISION_NUMBER_LABEL, "")
    return Entry(
        name=str(meta.get("name", "")),
        prompt=str(annotations.get(wire.PROMPT_ANNOTATION, "")),
        revision=str(annotations.get(wire.REVISION_ANNOTATION, "")),
        number=int(number) if isinstance(number, str) and number.isdigit() else 0,
        labels={str(k): str(v) for k, v in labels.items()},
    )


class Inventory:
    def __init__(
        self,
        api: KubeApi,
        namespaces: Sequence[str] | None,
        on_deleted: Callable[[PromptRef], None],
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self._api = api
        self._paths = (
            ["/api/v1/configmaps"]
            if not namespaces
            else [f"/api/v1/namespaces/{ns}/configmaps" for ns in namespaces]
        )
        self._on_deleted = on_deleted
        self._on_recovered = on_recovered  # the API server answers again after failures
        self._entries: dict[tuple[str, str], Entry] = {}
        # (namespace, Prompt name) -> names of its ConfigMaps
        self._by_prompt: dict[tuple[str, str], set[str]] = {}
        self._listed: set[str] = set()
        self.synced = asyncio.Event()

    def get(self, namespace: str, name: str) -> Entry | None:
        return self._entries.get((namespace, name))

    def revisions(self, ref: PromptRef) -> list[Entry]:
        """The Prompt's revision ConfigMaps, by number."""
        names = self._by_prompt.get((ref.namespace, ref.name), ())
        entries = [self._entries[(ref.namespace, n)] for n in names]
        return sorted(entries, key=lambda e: e.number)

    def record(self, namespace: str, entry: Entry) -> None:
        self.forget(namespace, entry.name)
        self._entries[(namespace, entry.name)] = entry
        self._by_prompt.setdefault((namespace, entry.prompt), set()).add(entry.name)

    def forget(self, namespace: str, name: str) -> Entry | None:
        entry = self._entries.pop((namespace, name), None)
        if entry is not None:
            names = self._by_prompt.get((namespace, entry.prompt))
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_prompt[(namespace, entry.prompt)]
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    async def run(self) -> None:
        await asyncio.gather(*(self._follow(path) for path in self._paths))

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        assert isinstance(meta, dict)
        namespace = str(meta.get("namespace", ""))
        entry = entry_from(meta)
        if event_type == "DELETED":
            if self.forget(namespace, entry.name) is not None and entry.prompt:
                # Someone else deleted it (we forget ours before deleting):
                # the Prompt, if it still exists, may need it written again.
                self._on_deleted(PromptRef(namespace, entry.prompt))
            return
        self.record(namespace, entry)

    async def _follow(self, path: str) -> None:
        def listed(items: list[dict[str, Any]]) -> None:
            namespace = None if len(self._paths) == 1 else path.split("/")[4]
            for key in [k for k in self._entries if namespace in (None, k[0])]:
                self.forget(*key)
            for item in items:
                meta = item.get("metadata") or {}
                self.record(str(meta.get("namespace", "")), entry_from(meta))
            self._listed.add(path)
            if len(self._listed) == len(self._paths):
                self.synced.set()

        await list_then_watch(
            self._api,
            path,
            {"labelSelector": SELECTOR},
            on_list=listed,
            on_event=self._apply,
            what="ConfigMap",
            list_accept=METADATA_ONLY,
            watch_accept=METADATA_ONLY_WATCH,
            on_recovered=self._on_recovered,
        )
