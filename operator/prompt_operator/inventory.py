"""What revision ConfigMaps exist, known from metadata alone.

An informer (label-selected, metadata-only) keeps, per ConfigMap, its Prompt,
revision hash, revision number and labels, indexed by Prompt. The operator
compares what it wants with this before writing, which is how an operator
restart or a re-applied manifest costs no writes, and how a ConfigMap deleted
by hand is noticed and written again. No text is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

from .model import PromptRef
from .runtime.client import KubeApi
from .runtime.informer import Informer, Key, collection_paths

SELECTOR = f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class Entry:
    name: str  # the ConfigMap's
    prompt: str  # the owning Prompt's name
    revision: str  # content hash
    number: int
    labels: dict[str, str]

    @property
    def uid(self) -> str:
        return self.labels.get(objects.PROMPT_UID_LABEL, "")


def entry_from(meta: Mapping[str, Any]) -> Entry:
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    number = labels.get(objects.REVISION_NUMBER_LABEL, "")
    return Entry(
        name=str(meta.get("name", "")),
        prompt=str(annotations.get(objects.PROMPT_ANNOTATION, "")),
        revision=str(annotations.get(objects.REVISION_ANNOTATION, "")),
        number=int(number) if isinstance(number, str) and number.isdigit() else 0,
        labels={str(k): str(v) for k, v in labels.items()},
    )


def _entry_of(obj: Mapping[str, Any]) -> Entry:
    return entry_from(obj.get("metadata") or {})


def _by_prompt(key: Key, entry: Entry) -> tuple[str, str]:
    return (key[0], entry.prompt)


class Inventory:
    def __init__(self, api: KubeApi, namespaces: Sequence[str] | None) -> None:
        self._deleted: list[Callable[[PromptRef], None]] = []
        self._informer: Informer[Entry] = Informer(
            api,
            collection_paths("v1", "configmaps", namespaces or ()),
            _entry_of,
            what="ConfigMap",
            label_selector=SELECTOR,
            metadata_only=True,
            on_change=self._changed,
            index=_by_prompt,
        )

    def add_deleted_handler(self, on_deleted: Callable[[PromptRef], None]) -> None:
        """Call ``on_deleted(prompt)`` when someone else deleted one of its ConfigMaps."""
        self._deleted.append(on_deleted)

    def add_recovered_handler(self, on_recovered: Callable[[], None]) -> None:
        """Call ``on_recovered()`` when the API server answers again after failures."""
        self._informer.add_recovered_handler(on_recovered)

    @property
    def synced(self) -> asyncio.Event:
        return self._informer.synced

    def get(self, namespace: str, name: str) -> Entry | None:
        return self._informer.get((namespace, name))

    def revisions(self, ref: PromptRef) -> list[Entry]:
        """The Prompt's revision ConfigMaps, by number."""
        entries = self._informer.indexed((ref.namespace, ref.name))
        return sorted(entries, key=lambda e: e.number)

    def record(self, namespace: str, entry: Entry) -> None:
        self._informer.store((namespace, entry.name), entry)

    def forget(self, namespace: str, name: str) -> Entry | None:
        return self._informer.store((namespace, name), None)

    def __len__(self) -> int:
        return len(self._informer)

    async def run(self) -> None:
        await self._informer.run()

    def _changed(self, key: Key, old: Entry | None, new: Entry | None) -> None:
        if new is None and old is not None and old.prompt:
            # Someone else deleted it (we forget ours before deleting): the
            # Prompt, if it still exists, may need it written again.
            for handler in self._deleted:
                handler(PromptRef(key[0], old.prompt))
