"""The API calls a person's tools make about Prompts, with that person's credentials.

The console's pages and `prompt-operator history | diff | rollback` read and
write through here, over the one client (``runtime.client.KubeApi``).

Every write carries the object's resourceVersion as it was when the user
opened the page, so an edit made by someone else in between is a 409 Conflict
the page shows, never a silent overwrite. Writes go under the console's own
field manager, so `kubectl get -o yaml --show-managed-fields` says who did it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prompt_contract import objects
from prompt_contract.objects import name_problem, namespace_problem

from .runtime.client import KubeApi, object_path
from .runtime.errors import ApiError, Unavailable

FIELD_MANAGER = "prompt-console"

__all__ = ["FIELD_MANAGER", "ApiError", "BadName", "PromptApi", "Unreachable"]

# The list page shows at most this many Prompts, read in pages of LIST_PAGE.
LIST_CAP = 1000
LIST_PAGE = 250


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
    return object_path(objects.API_VERSION, objects.PLURAL, namespace, name)


class PromptApi:
    """Prompts, their revision ConfigMaps, Events and subscribed pods, through ``api``
    (its owner closes it). Fails with ``ApiError``, ``Unreachable`` or ``BadName``."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

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
            "group": objects.GROUP,
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
