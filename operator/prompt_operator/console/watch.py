"""The console's live views: one shared watch per namespace and label selector.

Every stream (server-sent events) of the list page that shows the same
Prompts hears the same list-and-watch, started by the first stream and stopped
with its last; at most ``MAX_STREAMS`` streams are open at once (each holds a
connection and a task).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..prompt_api import prompt_path
from ..runtime.client import KubeApi
from ..runtime.informer import Informer

# Live views (server-sent event streams) open at once.
MAX_STREAMS = 32


class SharedWatch:
    """One list-and-watch of a namespace's Prompts (one label selector), heard by
    every stream that shows them: each listener is an Event set after the first
    list and after every change (its reader clears it, so bursts coalesce)."""

    def __init__(self, api: KubeApi, namespace: str, label_selector: str) -> None:
        self.listeners: set[asyncio.Event] = set()
        self._synced = False
        self._informer: Informer[dict[str, Any]] = Informer(
            api,
            [prompt_path(namespace)],
            dict,
            what="console Prompt",
            label_selector=label_selector or None,
            on_change=lambda *_: self._tell(),
        )
        self._task = asyncio.create_task(self._run())

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return {name: obj for (_, name), obj in self._informer.items()}

    def _tell(self) -> None:
        if self._synced:
            for listener in self.listeners:
                listener.set()

    def listen(self, listener: asyncio.Event) -> None:
        self.listeners.add(listener)
        if self._synced:
            listener.set()

    async def _run(self) -> None:
        listing = asyncio.ensure_future(self._informer.run())
        try:
            await self._informer.synced.wait()
            self._synced = True
            self._tell()  # listed, even when there is nothing to show
            await listing
        finally:
            listing.cancel()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class TooManyStreams(Exception):
    """Every live view the console allows is open."""


class Subscription:
    """One stream's view of a shared watch: ``changed`` to wait on, ``items`` to show."""

    def __init__(self, key: tuple[str, str], watch: SharedWatch) -> None:
        self.key = key
        self.changed = asyncio.Event()
        self._watch = watch
        watch.listen(self.changed)

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self._watch.items


class WatchHub:
    """The console's live views: one shared watch per (namespace, selector), started
    by the first stream that needs it and stopped when its last stream leaves, and at
    most ``cap`` streams at once (each holds a connection and a task)."""

    def __init__(self, api: KubeApi, cap: int) -> None:
        self._api = api
        self.cap = cap
        self._watches: dict[tuple[str, str], SharedWatch] = {}
        self._open = 0
        self.closed = False

    @property
    def streams(self) -> int:
        return self._open

    @property
    def watches(self) -> int:
        return len(self._watches)

    def subscribe(self, namespace: str, label_selector: str) -> Subscription:
        if self.closed:
            raise TooManyStreams("the console is stopping")
        if self._open >= self.cap:
            raise TooManyStreams(
                f"the console already serves {self._open} live views (at most {self.cap}); "
                "close some of its tabs, then reload"
            )
        key = (namespace, label_selector)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = SharedWatch(self._api, namespace, label_selector)
        self._open += 1
        return Subscription(key, watch)

    async def unsubscribe(self, subscription: Subscription) -> None:
        self._open -= 1
        watch = self._watches.get(subscription.key)
        if watch is None:
            return
        watch.listeners.discard(subscription.changed)
        if not watch.listeners:
            del self._watches[subscription.key]
            await watch.stop()

    async def close(self) -> None:
        """Wake every stream to end (the console is stopping) and stop the watches."""
        self.closed = True
        watches = list(self._watches.values())
        self._watches.clear()
        for watch in watches:
            for listener in watch.listeners:
                listener.set()
            await watch.stop()
