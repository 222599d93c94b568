"""A small asyncio client for the API calls the operator makes itself.

kopf watches Prompts; everything the operator writes (server-side apply,
status merge patches, Events, its Lease) and its own filtered watches go
through here, on one aiohttp session per client. Owning these calls is what
keeps an edit at two writes and lets a watch carry a label selector or ask
for metadata only, which kopf's watches cannot.

Every failure leaves as an ``ApiError`` subclass (see ``errors``). A client
may be given a fence: a function asked before every write, which refuses the
write (``NotLeading``) once this replica may no longer be the leader; and a
write budget: the seconds a write may still take before the Lease could pass to
another replica. A write then waits no longer than that for its answer, and
tells the API server the same deadline (its ``timeout`` parameter), so neither
side carries it on past the moment another leader may be writing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.connector import Connection

from .errors import ApiError, Expired, NotFound, NotLeading, Unavailable, error_for

FIELD_MANAGER = "prompt-operator"
# Ask for metadata only: lists and watches that need no object's content.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ONLY_WATCH = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
# What aiohttp and the socket layer raise for a failed exchange.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers: Mapping[str, str]


class KubeApi:
    """Thin wrapper over one aiohttp session; every method is one request."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        fence: Callable[[], bool] | None = None,
        write_budget: Callable[[], float | None] | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._creds = credentials
        self._default_timeout = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None
        self._fence = fence
        self._write_budget = write_budget
        self._user_agent = user_agent

    @property
    def credentials(self) -> Credentials:
        return self._creds

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = dict(self._creds.headers)
            if self._user_agent:
                headers["User-Agent"] = self._user_agent
            self._session = aiohttp.ClientSession(
                base_url=self._creds.server,
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._creds.ssl, limit=64),
                request_class=self._fenced_request_class(),
            )
        return self._session

    def _fenced_request_class(self) -> type[aiohttp.ClientRequest]:
        """Requests that ask the fence again just before a write's bytes go out.

        aiohttp buffers the request line and headers and sends them with the body,
        which on Python before 3.12 is written by a task of its own, a turn of the
        event loop after the request started. A write that passed the first check
        and was paused there (SIGSTOP) while the Lease passed on must not be sent
        when the process resumes: it fails here instead, unsent."""
        fence = self._fence

        class FencedRequest(aiohttp.ClientRequest):
            async def write_bytes(
                self,
                writer: AbstractStreamWriter,
                conn: Connection,
                content_length: int | None = None,
            ) -> None:
                if self.method not in _READS and fence is not None and not fence():
                    refused = NotLeading(
                        f"refused {self.method} {self.url.path}: this replica is not the leader"
                    )
                    if conn.protocol is not None:
                        conn.protocol.set_exception(refused)
                    conn.close()
                    return
                await super().write_bytes(writer, conn, content_length)

        return FencedRequest

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
        write = method not in _READS
        if write and self._fence is not None and not self._fence():
            raise NotLeading(f"refused {method} {path}: this replica is not the leader")
        if write and self._write_budget is not None:
            left = self._write_budget()
            if left is not None:
                if left <= 0:
                    raise NotLeading(f"refused {method} {path}: the Lease may expire first")
                timeout = min(self._default_timeout if timeout is None else timeout, left)
                # The API server drops the request at the same deadline (it answers
                # 504); only an etcd write already under way then can still commit.
                params = {**(params or {}), "timeout": f"{timeout:.3f}s"}
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        client_timeout = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._http().request(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=client_timeout,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return json.loads(raw) if raw else None
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(0, type(exc).__name__, f"{method} {path}: {exc}") from exc
        except ValueError as exc:  # an answer that is not JSON
            raise Unavailable(0, "BadAnswer", f"{method} {path}: {exc}") from exc

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when there is none."""
        try:
            found: dict[str, Any] = await self.request("GET", path)
        except NotFound:
            return None
        return found

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
        """Delete ``path``; False when it was already gone (or replaced: ``uid``)."""
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

    async def list_pages(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        accept: str = "application/json",
        limit: int = 500,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Each page of the list (``limit`` items at most) with the list's
        resourceVersion. A caller that keeps only what it needs of each page never
        holds the whole list: 10,000 objects' metadata, parsed, are about 50 MB."""
        query = {**params, "limit": str(limit)}
        while True:
            page = await self.request("GET", path, params=query, accept=accept, timeout=60)
            meta = page.get("metadata") or {}
            yield page.get("items") or [], str(meta.get("resourceVersion", ""))
            cont = meta.get("continue")
            if not cont:
                return
            query["continue"] = cont

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        resource_version: str,
        *,
        accept: str = "application/json",
        timeout_seconds: int = 300,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events from ``resource_version``; raise ``Expired`` on 410.
        ``on_open()`` is called once the API server has accepted the watch (before
        any event: a quiet watch sends none for minutes)."""
        query = {
            **params,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout_seconds + 30)
        try:
            async with self._http().get(
                path, params=query, headers={"Accept": accept}, timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.read())
                if on_open is not None:
                    on_open()
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise _error(int(status.get("code", 500)), json.dumps(status).encode())
                    yield event
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(0, type(exc).__name__, f"watch {path}: {exc}") from exc
        except ValueError as exc:
            raise Unavailable(0, "BadAnswer", f"watch {path}: {exc}") from exc


def _error(status: int, raw: bytes) -> ApiError:
    try:
        data = json.loads(raw)
        reason, message = str(data.get("reason", "")), str(data.get("message", ""))
    except ValueError:
        reason, message = "", raw[:500].decode(errors="replace")
    return error_for(status, reason, message)


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


__all__ = [
    "FIELD_MANAGER",
    "METADATA_ONLY",
    "METADATA_ONLY_WATCH",
    "Credentials",
    "Expired",
    "KubeApi",
    "object_path",
]
