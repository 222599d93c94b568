"""A small asyncio client for the few API calls the operator makes itself.

kopf watches Prompts; everything the operator writes (server-side apply of
ConfigMaps, status merge patches, Events) and its own filtered watches (our
ConfigMaps, metadata only; subscribed Pods by label) go through here, on one
aiohttp session with the credentials kopf logged in with. Owning these calls
is what keeps an edit at two writes and lets the watches carry a label
selector, which kopf's own watches cannot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

logger = logging.getLogger(__name__)

FIELD_MANAGER = "prompt-operator"
# Ask for metadata only: the operator never needs ConfigMap text in memory.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ONLY_WATCH = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.status in (409, 429) or self.status >= 500


class Gone(ApiError):
    """410: the resourceVersion a watch started from is too old; list again."""


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers: Mapping[str, str]


class KubeApi:
    """Thin wrapper over one aiohttp session; every method is one request."""

    def __init__(self, credentials: Credentials, *, timeout: float = 10.0) -> None:
        self._creds = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self._creds.server,
                headers=dict(self._creds.headers),
                connector=aiohttp.TCPConnector(ssl=self._creds.ssl, limit=64),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        client_timeout = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        async with self._http().request(
            method, path, params=params, data=data, headers=headers, timeout=client_timeout
        ) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise _error(resp.status, raw)
            return json.loads(raw) if raw else None

    # -- writes ----------------------------------------------------------------

    async def apply(self, path: str, body: Mapping[str, Any]) -> Any:
        """Server-side apply ``body`` at ``path`` as our field manager."""
        return await self.request(
            "PATCH",
            path,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=body,
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch_status(self, path: str, status: Mapping[str, Any]) -> Any:
        return await self.request(
            "PATCH",
            path + "/status",
            params={"fieldManager": FIELD_MANAGER},
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        return await self.request(
            "PATCH",
            path,
            params={"fieldManager": FIELD_MANAGER},
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def delete_collection(self, path: str, label_selector: str) -> None:
        """Delete every object at ``path`` that ``label_selector`` selects (one request)."""
        await self.request(
            "DELETE",
            path,
            params={"labelSelector": label_selector},
            body={"kind": "DeleteOptions", "apiVersion": "v1"},
        )

    async def delete(self, path: str, *, uid: str | None = None) -> bool:
        """Delete ``path``; False when it was already gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", path, body=body)
        except ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    # -- reads -----------------------------------------------------------------

    async def list_all(
        self, path: str, params: Mapping[str, str], *, accept: str = "application/json"
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item (paginated) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        query = {**params, "limit": "500"}
        while True:
            page = await self.request("GET", path, params=query, accept=accept, timeout=60)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items, str((page.get("metadata") or {}).get("resourceVersion", ""))
            query["continue"] = cont

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        resource_version: str,
        *,
        accept: str = "application/json",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events from ``resource_version``; raise ``Gone`` on 410."""
        query = {
            **params,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout_seconds + 30)
        async with self._http().get(
            path, params=query, headers={"Accept": accept}, timeout=timeout
        ) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise _error(int(status.get("code", 500)), json.dumps(status).encode())
                yield event


# One watch per resource: retrying it every second costs nothing, and a
# longer wait would be added to every edit made after an outage.
WATCH_RETRY_CAP = 1.0


async def list_then_watch(
    api: KubeApi,
    path: str,
    params: Mapping[str, str],
    *,
    on_list: Callable[[list[dict[str, Any]]], None],
    on_event: Callable[[str, dict[str, Any]], None],
    what: str,
    list_accept: str = "application/json",
    watch_accept: str = "application/json",
    on_recovered: Callable[[], None] | None = None,
) -> None:
    """Keep a view of ``path`` current, forever: list (``on_list`` gets every item),
    then watch from the list's resourceVersion (``on_event`` gets each change).
    An expired watch (410 Gone) lists again once; other failures back off (at most
    ``WATCH_RETRY_CAP`` seconds apart, so an API server that comes back is seen
    soon) and retry. ``on_recovered`` is called when a list succeeds after failures."""
    attempt = 0
    while True:
        try:
            items, version = await api.list_all(path, params, accept=list_accept)
            on_list(items)
            if attempt and on_recovered is not None:
                on_recovered()
            attempt = 0
            while True:
                async for event in api.watch(path, params, version, accept=watch_accept):
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") != "BOOKMARK":
                        on_event(str(event.get("type")), obj)
        except Gone:
            logger.info("%s watch on %s expired; listing again", what, path)
        except asyncio.CancelledError:
            raise
        except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            logger.warning("%s watch on %s failed: %s; retrying", what, path, exc)
            await backoff_sleep(attempt, cap=WATCH_RETRY_CAP)
            attempt += 1


def _error(status: int, raw: bytes) -> ApiError:
    try:
        data = json.loads(raw)
        reason, message = str(data.get("reason", "")), str(data.get("message", ""))
    except ValueError:
        reason, message = "", raw[:500].decode(errors="replace")
    cls = Gone if status == 410 else ApiError
    return cls(status, reason, message)


def credentials_from(info: Any) -> Credentials:
    """Credentials for our session from the ``kopf.ConnectionInfo`` kopf logged in with."""
    context: ssl.SSLContext | bool = info.as_ssl_context()
    if info.insecure:
        context = False
    return Credentials(server=info.server, ssl=context, headers=info.as_http_headers())


def object_path(
    group_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """URL path of a collection or an object, e.g. ``/api/v1/namespaces/x/configmaps``."""
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    return base


def query(**params: str) -> str:
    return urlencode(params)


async def backoff_sleep(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> None:
    """Exponential backoff with full jitter."""
    import random

    await asyncio.sleep(random.uniform(0, min(cap, base * (2**attempt))))
