"""The API calls the console makes, all with the user's own credentials.

Every write carries the object's resourceVersion as it was when the user
opened the page, so an edit made by someone else in between is a 409 Conflict
the page shows, never a silent overwrite. Writes go under the console's own
field manager, so `kubectl get -o yaml --show-managed-fields` says who did it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from prompt_contract import objects
from prompt_contract.objects import name_problem, namespace_problem

from ..configmap import API_VERSION as PROMPTS
from ..runtime.client import Credentials, KubeApi, object_path
from ..runtime.errors import ApiError, Unavailable
from ..runtime.informer import Informer

FIELD_MANAGER = "prompt-console"

__all__ = ["FIELD_MANAGER", "ApiError", "BadName", "ConsoleApi", "Unreachable"]

# The list page shows at most this many Prompts, read in pages of LIST_PAGE.
LIST_CAP = 1000
LIST_PAGE = 250
# Live views (server-sent event streams) open at once.
MAX_STREAMS = 32


class Unreachable(Exception):
    """The API server could not be reached (network, TLS, timeout)."""


class BadName(ValueError):
    """A namespace or object name that Kubernetes could not have made."""


def _checked(namespace: str) -> str:
    problem = namespace_problem(namespace)
    if problem:
        raise BadName(problem)
    return namespace


def prompt_path(namespace: str, name: str | None = None) -> str:
    """The URL path of a namespace's Prompts or of one; ``BadName`` for a name that is
    not one (the pages check first; this is the last line)."""
    problem = namespace_problem(namespace) or (name_problem(name) if name is not None else None)
    if problem:
        raise BadName(problem)
    return object_path(PROMPTS, "prompts", namespace, name)


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


class ConsoleApi:
    def __init__(self, credentials: Credentials, max_streams: int = MAX_STREAMS) -> None:
        self._api = KubeApi(credentials, timeout=15.0)
        self.streams = WatchHub(self._api, max_streams)

    async def close(self) -> None:
        await self.streams.close()
        await self._api.close()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self._api.request(method, path, **kwargs)
        except Unavailable as exc:
            if exc.status:
                raise  # the API server answered (429, 5xx): an ApiError like any other
            raise Unreachable(f"cannot reach the API server: {exc.message}") from None

    # -- reads -------------------------------------------------------------------

    async def prompts(
        self, namespace: str, label_selector: str = "", cap: int = LIST_CAP
    ) -> tuple[list[dict[str, Any]], bool]:
        """The namespace's Prompts, read in pages, at most ``cap``; and whether there
        were more."""
        params = {"labelSelector": label_selector} if label_selector else {}
        items: list[dict[str, Any]] = []
        try:
            async for page, _ in self._api.list_pages(
                prompt_path(namespace), params, limit=min(LIST_PAGE, cap + 1)
            ):
                items += page
                if len(items) > cap:  # one past the cap says there are more
                    return items[:cap], True
        except Unavailable as exc:
            if exc.status:
                raise
            raise Unreachable(f"cannot reach the API server: {exc.message}") from None
        return items, False

    async def prompt(self, namespace: str, name: str) -> dict[str, Any]:
        value: dict[str, Any] = await self._call("GET", prompt_path(namespace, name))
        return value

    async def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        if namespace_problem(namespace) or name_problem(name):
            raise BadName(f"not a ConfigMap: {namespace}/{name}")
        try:
            value: dict[str, Any] = await self._call(
                "GET", object_path("v1", "configmaps", namespace, name)
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return value

    async def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind=Prompt,involvedObject.name={name}"
        try:
            page = await self._call(
                "GET",
                object_path("v1", "events", _checked(namespace)),
                params={"fieldSelector": selector},
            )
        except ApiError as exc:
            if exc.status == 403:
                return []  # a user who may not read Events still sees the rest
            raise
        return list(page.get("items") or [])

    async def subscribed_pods(self, namespace: str) -> list[dict[str, Any]]:
        try:
            page = await self._call(
                "GET",
                object_path("v1", "pods", _checked(namespace)),
                params={"labelSelector": f"{objects.SUBSCRIBE_LABEL}=true"},
            )
        except ApiError as exc:
            if exc.status == 403:
                return []
            raise
        return list(page.get("items") or [])

    async def can(self, verb: str, namespace: str, name: str | None = None) -> bool:
        """Whether the user may ``verb`` Prompts (SelfSubjectAccessReview: any user may ask)."""
        attributes = {
            "namespace": namespace,
            "verb": verb,
            "group": PROMPTS.split("/")[0],
            "resource": "prompts",
            **({"name": name} if name else {}),
        }
        review = await self._call(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    # -- writes ------------------------------------------------------------------

    async def apply(self, body: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """Server-side apply under the console's field manager. ``force`` takes over the
        fields the user edited from whoever set them last (kubectl, another console);
        the resourceVersion in ``body`` is what makes a concurrent edit a conflict."""
        meta = body["metadata"]
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        value: dict[str, Any] = await self._call(
            "PATCH",
            prompt_path(meta["namespace"], meta["name"]),
            params=params,
            body=body,
            content_type="application/apply-patch+yaml",
        )
        return value

    async def merge_patch(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        params = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            params["dryRun"] = "All"
        value: dict[str, Any] = await self._call(
            "PATCH",
            prompt_path(namespace, name),
            params=params,
            body=patch,
            content_type="application/merge-patch+json",
        )
        return value
