"""``KeysPublisher``: the operator's public keys in each namespace it signals.

One ConfigMap per namespace, ``signing.KEYS_CONFIGMAP``, labelled managed-by
(so the chart's admission policy lets only the operator write it) and
``signing.KEYS_LABEL`` (so it is never taken for a revision). It has no owner
reference: it belongs to the namespace, not to a Prompt.

The signal path asks ``ready(namespace)`` before it signs for a namespace;
while that is False it sends the signal unsigned (a hint) and schedules
``ensure(namespace)``, which reads the ConfigMap, creates it when missing and
replaces it when it differs (a squatter's included: its labels, data and
owner references are ours afterwards). When the key set changes (a rotation,
a prune) every namespace published so far is published again, and until then
``ready`` is False there. Only the leader writes (the client is fenced);
a new leader learns what is published one ``ensure`` per namespace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prompt_contract import objects, signing

from ..runtime.client import KubeApi, object_path
from ..runtime.errors import ApiError, Conflict, NotFound
from ..runtime.leader import Leadership
from . import keyset
from .store import KeyStore

logger = logging.getLogger(__name__)

LABELS = {objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE, signing.KEYS_LABEL: "true"}
# Published again this often even when nothing changed: a keys ConfigMap that
# someone deleted is written again within this (sidecars read meanwhile).
RECHECK_SECONDS = 600.0

Data = dict[str, str]


def configmap_body(namespace: str, data: Data) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": signing.KEYS_CONFIGMAP, "namespace": namespace, "labels": LABELS},
        "data": data,
    }


def needs_replacing(found: dict[str, Any], data: Data) -> bool:
    meta = found.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        found.get("data") != data
        or any(labels.get(k) != v for k, v in LABELS.items())
        or bool(meta.get("ownerReferences"))
    )


def replacement_patch(found: dict[str, Any], data: Data) -> dict[str, Any]:
    """A merge patch making ``found`` ours: at its resourceVersion (a conflict
    when it changed since), our labels and data, no owner (whose deletion would
    take it away) and no other data keys."""
    meta = found.get("metadata") or {}
    stale = {k: None for k in (found.get("data") or {}) if k not in data}
    return {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "labels": LABELS,
            "ownerReferences": None,
        },
        "data": {**stale, **data},
        "binaryData": None,
    }


class KeysPublisher:
    def __init__(
        self,
        api: KubeApi,
        store: KeyStore,
        leader: Leadership,
        *,
        clock: Callable[[], float] = time.time,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._api = api
        self._store = store
        self._leader = leader
        self._clock = clock
        self._recheck = recheck_seconds
        self._published: dict[str, Data] = {}  # namespace -> what its ConfigMap holds
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._wanted: Data | None = self._compute()
        self._changed = asyncio.Event()
        store.add_changed_handler(self._keys_changed)

    def _compute(self) -> Data | None:
        keys = self._store.keys()
        if not keys:
            return None
        data: Data = signing.keys_data(keyset.published(keys, self._clock()))
        return data

    def _keys_changed(self) -> None:
        self._wanted = self._compute()
        self._changed.set()

    def ready(self, namespace: str) -> bool:
        """Whether ``namespace``'s keys ConfigMap holds the current published keys."""
        wanted = self._wanted
        return wanted is not None and self._published.get(namespace) == wanted

    def published_namespaces(self) -> list[str]:
        return sorted(self._published)

    async def ensure(self, namespace: str, *, recheck: bool = False) -> bool:
        """Publish the current keys in ``namespace`` (one write at a time per
        namespace); True when they are there. API failures are logged, not raised.
        ``recheck``: read the ConfigMap even when it was published already."""
        task = self._running.get(namespace)
        if task is None:
            task = asyncio.ensure_future(self._publish(namespace, recheck))
            self._running[namespace] = task
            task.add_done_callback(lambda _: self._running.pop(namespace, None))
        return await asyncio.shield(task)

    async def _publish(self, namespace: str, recheck: bool) -> bool:
        data = self._wanted
        if data is None:
            return False
        if self._published.get(namespace) == data and not recheck:
            return True
        try:
            await self._write(namespace, data)
        except NotFound:  # the namespace is gone
            self._published.pop(namespace, None)
            return False
        except ApiError as exc:
            logger.warning("cannot publish the signing keys in %s: %s", namespace, exc)
            return False
        self._published[namespace] = data
        return True

    async def _write(self, namespace: str, data: Data) -> None:
        """Make the namespace's keys ConfigMap hold ``data``. It reads first: after
        a restart or a failover the ConfigMap is most likely there and current,
        and a read costs less than a refused create (and writes nothing)."""
        path = object_path("v1", "configmaps", namespace, signing.KEYS_CONFIGMAP)
        collection = object_path("v1", "configmaps", namespace)
        for _ in range(3):
            found = await self._api.get(path)
            try:
                if found is None:
                    await self._api.request(
                        "POST", collection, body=configmap_body(namespace, data)
                    )
                elif needs_replacing(found, data):
                    await self._api.merge_patch(path, replacement_patch(found, data))
                return
            except Conflict:
                continue  # created or changed meanwhile: look again
            except NotFound:
                if found is None:
                    raise  # the namespace is gone
                continue  # deleted meanwhile: create it
        raise Conflict(409, "Conflict", f"{path} kept changing while it was published")

    async def run(self) -> None:
        """Publish again wherever published, on each key change and every
        ``RECHECK_SECONDS`` (the leader only; a standby's list stays empty)."""
        while True:
            recheck = False
            try:
                await asyncio.wait_for(self._changed.wait(), self._recheck)
            except asyncio.TimeoutError:
                recheck = True  # one read per namespace: deleted by hand?
            self._changed.clear()
            self._wanted = self._compute()
            await self._leader.leading.wait()
            for namespace in list(self._published):
                await self.ensure(namespace, recheck=recheck)
