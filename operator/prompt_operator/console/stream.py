"""The list's live view: server-sent events carrying the table body, again after
every change. Streams of one namespace and selector share one watch
(``watch.WatchHub``), at most ``MAX_STREAMS`` at once."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..prompt_api import LIST_CAP
from . import views
from .security import SECURITY_HEADERS
from .settings import SERVICE, TEMPLATES
from .watch import Subscription, TooManyStreams, WatchHub

# A closed tab frees its place in the cap within this many seconds.
POLL_SECONDS = 1.0
# A comment line this often keeps proxies from closing a quiet stream.
KEEP_ALIVE_SECONDS = 15


async def prompt_stream(request: web.Request) -> web.StreamResponse:
    ns = request.match_info["ns"]
    label = request.query.get("label", "").strip()
    search = request.query.get("q", "").strip()
    if views.selector_problem(label) is not None:
        raise web.HTTPBadRequest(text="bad label filter\n")
    hub = request.app[SERVICE].streams
    try:
        subscription = hub.subscribe(ns, label)
    except TooManyStreams as exc:
        return web.Response(status=503, text=f"{exc}\n", headers={"Retry-After": "30"})
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    try:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response.prepare(request)
        await _send_changes(request, response, hub, subscription, ns, search)
    except ConnectionResetError:
        pass  # the tab was closed
    finally:
        await hub.unsubscribe(subscription)
    return response


async def _send_changes(
    request: web.Request,
    response: web.StreamResponse,
    hub: WatchHub,
    subscription: Subscription,
    ns: str,
    search: str,
) -> None:
    """The table body after every change, until the tab or the console closes."""
    body = request.app[TEMPLATES].get_template("rows.html")
    quiet = 0.0
    while not hub.closed:
        try:
            await asyncio.wait_for(subscription.changed.wait(), timeout=POLL_SECONDS)
        except asyncio.TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            quiet += POLL_SECONDS
            if quiet >= KEEP_ALIVE_SECONDS:
                quiet = 0
                await response.write(b": keep-alive\n\n")
            continue
        subscription.changed.clear()
        if hub.closed:
            return
        rows = views.rows(subscription.items.values(), search)
        html = body.render(rows=rows[:LIST_CAP], namespace=ns)
        data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
        await response.write(f"event: rows\n{data}\n".encode())
