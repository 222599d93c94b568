"""What ConfigMaps the operator has written, known from metadata alone.

One label-selected, metadata-only list and watch per scope (the whole cluster,
or each watched namespace) keeps a map of ConfigMap -> digest. The operator
compares a Prompt's desired digest with it before writing, which is how an
operator restart or a re-applied manifest costs no writes, and how a
ConfigMap deleted by hand is noticed and written again. No text is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_sidecar import wire

from .configmap import DIGEST_ANNOTATION
from .kubeapi import METADATA_ONLY, METADATA_ONLY_WATCH, KubeApi, list_then_watch
from .model import PromptRef

logger = logging.getLogger(__name__)

SELECTOR = f"{wire.MANAGED_BY_LABEL}={wire.MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class Entry:
    digest: str
    prompt: str  # the owning Prompt's name


class Inventory:
    def __init__(
        self,
        api: KubeApi,
        namespaces: Sequence[str] | None,
        on_deleted: Callable[[PromptRef], None],
    ) -> None:
        self._api = api
        self._paths = (
            ["/api/v1/configmaps"]
            if not namespaces
            else [f"/api/v1/namespaces/{ns}/configmaps" for ns in namespaces]
        )
        self._on_deleted = on_deleted
        self._entries: dict[tuple[str, str], Entry] = {}
        self._listed: set[str] = set()
        self.synced = asyncio.Event()

    def digest(self, namespace: str, name: str) -> str | None:
        entry = self._entries.get((namespace, name))
        return entry.digest if entry else None

    def record(self, namespace: str, name: str, digest: str, prompt: str) -> None:
        self._entries[(namespace, name)] = Entry(digest, prompt)

    def forget(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)

    def __len__(self) -> int:
        return len(self._entries)

    async def run(self) -> None:
        await asyncio.gather(*(self._follow(path) for path in self._paths))

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        assert isinstance(meta, dict)
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        annotations = meta.get("annotations") or {}
        assert isinstance(annotations, dict)
        prompt = str(annotations.get(wire.PROMPT_ANNOTATION, ""))
        if event_type == "DELETED":
            if self._entries.pop((namespace, name), None) is not None and prompt:
                # Someone else deleted it (we forget ours before deleting):
                # the Prompt, if it still exists, must write it again.
                self._on_deleted(PromptRef(namespace, prompt))
            return
        self._entries[(namespace, name)] = Entry(
            str(annotations.get(DIGEST_ANNOTATION, "")), prompt
        )

    async def _follow(self, path: str) -> None:
        def listed(items: list[dict[str, Any]]) -> None:
            fresh = {}
            for item in items:
                meta = item.get("metadata") or {}
                annotations = meta.get("annotations") or {}
                fresh[(meta.get("namespace", ""), meta.get("name", ""))] = Entry(
                    str(annotations.get(DIGEST_ANNOTATION, "")),
                    str(annotations.get(wire.PROMPT_ANNOTATION, "")),
                )
            if len(self._paths) == 1:
                self._entries = fresh
            else:
                namespace = path.split("/")[4]
                for key in [k for k in self._entries if k[0] == namespace]:
                    del self._entries[key]
                self._entries.update(fresh)
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
        )
