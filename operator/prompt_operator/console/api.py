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

from prompt_client import wire

from ..configmap import API_VERSION as PROMPTS
from ..runtime.client import Credentials, KubeApi, object_path
from ..runtime.errors import ApiError, Unavailable
from ..runtime.informer import Informer

FIELD_MANAGER = "prompt-console"

__all__ = ["FIELD_MANAGER", "ApiError", "ConsoleApi", "Unreachable"]


class Unreachable(Exception):
    """The API server could not be reached (network, TLS, timeout)."""


def prompt_path(namespace: str, name: str | None = None) -> str:
    return object_path(PROMPTS, "prompts", namespace, name)


class PromptWatch:
    """The Prompts of one namespace by name, kept current by an informer; ``changed``
    is set after the first list and after every change (the reader clears it)."""

    def __init__(self, api: KubeApi, namespace: str, label_selector: str) -> None:
        self.changed = asyncio.Event()
        self._informer: Informer[dict[str, Any]] = Informer(
            api,
            [prompt_path(namespace)],
            dict,
            what="console Prompt",
            label_selector=label_selector or None,
            on_change=lambda *_: self.changed.set(),
        )
        self._task = asyncio.create_task(self._run())

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return {name: obj for (_, name), obj in self._informer.items()}

    async def _run(self) -> None:
        listing = asyncio.ensure_future(self._informer.run())
        try:
            await self._informer.synced.wait()
            self.changed.set()  # listed, even when there is nothing to show
            await listing
        finally:
            listing.cancel()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ConsoleApi:
    def __init__(self, credentials: Credentials) -> None:
        self._api = KubeApi(credentials, timeout=15.0)

    async def close(self) -> None:
        await self._api.close()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self._api.request(method, path, **kwargs)
        except Unavailable as exc:
            if exc.status:
                raise  # the API server answered (429, 5xx): an ApiError like any other
            raise Unreachable(f"cannot reach the API server: {exc.message}") from None

    # -- reads -------------------------------------------------------------------

    async def prompts(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        page = await self._call("GET", prompt_path(namespace), params=params)
        return list(page.get("items") or [])

    async def prompt(self, namespace: str, name: str) -> dict[str, Any]:
        value: dict[str, Any] = await self._call("GET", prompt_path(namespace, name))
        return value

    async def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
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
                "GET", object_path("v1", "events", namespace), params={"fieldSelector": selector}
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
                object_path("v1", "pods", namespace),
                params={"labelSelector": f"{wire.SUBSCRIBE_LABEL}=true"},
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

    def watch_prompts(self, namespace: str, label_selector: str) -> PromptWatch:
        """A live view of the namespace's Prompts (list, then watch), until ``stop()``."""
        return PromptWatch(self._api, namespace, label_selector)

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
