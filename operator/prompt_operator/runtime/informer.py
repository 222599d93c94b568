"""An informer: list, then watch from the list's resourceVersion, into a keyed cache.

client-go's shared informer in miniature. Each path (the whole cluster, or
one per watched namespace) is listed and then watched; a failed watch backs
off briefly and resumes from the last resourceVersion seen, and only an expired
one (410) lists again. The cache holds, per object,
only what ``convert`` makes of it (a small frozen value), so a metadata-only
informer of ten thousand ConfigMaps holds no text at all. ``on_change`` hears
every change of a cached value, including objects that vanished while the
watch was down (a resumed watch says DELETED; a list finds them missing).

It knows nothing about what it watches; the operator's ConfigMap inventory
and its subscribed-pod view are two instances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .backoff import backoff_sleep
from .client import METADATA_ONLY, METADATA_ONLY_WATCH, KubeApi
from .errors import ApiError, Expired

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name)
# One watch per resource: retrying it every second costs nothing, and a
# longer wait would be added to every edit made after an outage.
WATCH_RETRY_CAP = 1.0


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def collection_paths(group_version: str, plural: str, namespaces: Sequence[str]) -> list[str]:
    """One cluster-wide path, or one per namespace."""
    prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    if not namespaces:
        return [f"{prefix}/{plural}"]
    return [f"{prefix}/namespaces/{ns}/{plural}" for ns in namespaces]


class Informer(Generic[T]):
    """A cache of ``convert(object)`` per (namespace, name), kept current by a watch.

    ``convert`` returning None means "not of interest" (the key is dropped).
    ``index``, when given, groups cached values by what it returns, for
    ``indexed()`` (client-go's Indexer, with one index)."""

    def __init__(
        self,
        api: KubeApi,
        paths: Sequence[str],
        convert: Callable[[Mapping[str, Any]], T | None],
        *,
        what: str,
        label_selector: str | None = None,
        metadata_only: bool = False,
        on_change: Callable[[Key, T | None, T | None], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        index: Callable[[Key, T], Hashable] | None = None,
    ) -> None:
        self._api = api
        self._paths = list(paths)
        self._convert = convert
        self._what = what
        self._params = {"labelSelector": label_selector} if label_selector else {}
        self._list_accept = METADATA_ONLY if metadata_only else "application/json"
        self._watch_accept = METADATA_ONLY_WATCH if metadata_only else "application/json"
        self._handlers: list[Callable[[Key, T | None, T | None], None]] = []
        self._recovered: list[Callable[[], None]] = []
        if on_change is not None:
            self._handlers.append(on_change)
        if on_recovered is not None:
            self._recovered.append(on_recovered)
        self._index_of = index
        self._cache: dict[Key, T] = {}
        self._index: dict[Hashable, set[Key]] = {}
        self._listed: set[str] = set()
        self.synced = asyncio.Event()

    # -- the cache ---------------------------------------------------------------

    def get(self, key: Key) -> T | None:
        return self._cache.get(key)

    def items(self) -> Iterator[tuple[Key, T]]:
        return iter(list(self._cache.items()))

    def indexed(self, value: Hashable) -> list[T]:
        return [self._cache[k] for k in self._index.get(value, ())]

    def values(self) -> list[T]:
        return list(self._cache.values())

    def __len__(self) -> int:
        return len(self._cache)

    def add_handler(self, on_change: Callable[[Key, T | None, T | None], None]) -> None:
        """Also call ``on_change(key, old, new)`` for every change (client-go's
        AddEventHandler); handlers run in the order they were added."""
        self._handlers.append(on_change)

    def add_recovered_handler(self, on_recovered: Callable[[], None]) -> None:
        """Call ``on_recovered()`` when the API server answers again after failures
        (a list succeeds, or a watch is accepted)."""
        self._recovered.append(on_recovered)

    def store(self, key: Key, value: T | None) -> T | None:
        """Put ``value`` (None: remove) without telling ``on_change``; the previous
        value is returned. For read-your-writes: a controller records what it just
        wrote (or forgets what it is about to delete) before the watch says so."""
        old = self._cache.pop(key, None)
        if old is not None and self._index_of is not None:
            peers = self._index.get(self._index_of(key, old))
            if peers is not None:
                peers.discard(key)
                if not peers:
                    del self._index[self._index_of(key, old)]
        if value is not None:
            self._cache[key] = value
            if self._index_of is not None:
                self._index.setdefault(self._index_of(key, value), set()).add(key)
        return old

    def _set(self, key: Key, value: T | None) -> None:
        old = self.store(key, value)
        if old != value:
            for handler in self._handlers:
                handler(key, old, value)

    # -- list and watch ------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(*(self._follow(path) for path in self._paths))

    def _listed_items(self, path: str, listed: list[tuple[Key, T | None]]) -> None:
        scope = None if len(self._paths) == 1 else path.split("/")[-2]
        seen: set[Key] = set()
        for key, value in listed:
            seen.add(key)
            self._set(key, value)
        for key in [k for k in self._cache if k not in seen and scope in (None, k[0])]:
            self._set(key, None)  # gone while the watch was down
        self._listed.add(path)
        if len(self._listed) == len(self._paths):
            self.synced.set()

    async def _list(self, path: str) -> str:
        """Replace the cache's view of ``path`` with a list; the list's resourceVersion."""
        # Each page is converted as it comes and dropped; the cache changes
        # (and handlers hear of it) only once the whole list is in.
        listed: list[tuple[Key, T | None]] = []
        version = ""
        async for items, list_version in self._api.list_pages(
            path, self._params, accept=self._list_accept
        ):
            listed += [(key_of(item), self._convert(item)) for item in items]
            version = list_version
        self._listed_items(path, listed)
        return version

    async def _follow(self, path: str) -> None:
        """List once, then watch, resuming every failed watch from the last version seen.

        Only a 410 lists again. A restarted API server answers before it is ready:
        403 until its RBAC cache is filled, 429 until its watch cache is, for a
        second or more on a loaded machine; a list per retry made one LIST per
        retry of that (the R3 flake: four after one restart). A watch refused
        costs the server no read. Once it accepts one, a version older than its new
        watch cache gets 410, so one restart costs each path one list, sent to a
        server that has just authorised this watch. (client-go's reflector resumes
        its watch the same way after a refused connection or a 429.)"""
        version = ""  # where the next watch starts; "" until listed, and after a 410
        retries = _Retries(self._recovered)
        while True:
            try:
                if not version:
                    version = await self._list(path)
                    retries.answered()
                async for event in self._api.watch(
                    path,
                    self._params,
                    version,
                    accept=self._watch_accept,
                    on_open=retries.answered,
                ):
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    kind = event.get("type")
                    if kind != "BOOKMARK":
                        self._set(key_of(obj), None if kind == "DELETED" else self._convert(obj))
            except Expired:
                logger.info("%s watch on %s expired; listing again", self._what, path)
                version = ""
            except ApiError as exc:
                logger.warning("%s watch on %s failed: %s; retrying", self._what, path, exc)
                await backoff_sleep(retries.failed(), cap=WATCH_RETRY_CAP)


class _Retries:
    """Failures in a row on one path; the recovered handlers hear when the API
    server answers again (a list came, or a watch was accepted)."""

    def __init__(self, recovered: Sequence[Callable[[], None]]) -> None:
        self._recovered = recovered
        self._failures = 0

    def failed(self) -> int:
        """Count a failure; the number of failures before it (the backoff attempt)."""
        self._failures += 1
        return self._failures - 1

    def answered(self) -> None:
        if self._failures:
            self._failures = 0
            for recovered in self._recovered:
                recovered()
