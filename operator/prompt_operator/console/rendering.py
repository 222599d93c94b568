"""Pages out of templates, and the words for what the API server refused.

The CSRF token of the request being handled rides in a context variable: the
guard sets it, every page's forms and scripts repeat it, and a page rendered in
a worker thread (one with diffs) carries it along.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from ..runtime.errors import ApiError
from .settings import SERVICE, SETTINGS, TEMPLATES

# The CSRF token of the request being handled (set by the guard, read by ``render``).
csrf_token: contextvars.ContextVar[str] = contextvars.ContextVar("csrf_token", default="")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files(__package__).joinpath("templates"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["qs"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    return env


def _html(request: web.Request, template: str, context: Mapping[str, Any]) -> str:
    settings = request.app[SETTINGS]
    return (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            settings=settings,
            namespace=request.match_info.get("ns", settings.namespace),
            csrf=csrf_token.get(),
            path=request.path,
            **context,
        )
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = _html(request, template, context)
    return web.Response(text=html, content_type="text/html", status=status)


async def render_diffs(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    """``render`` in a worker thread, for pages with diffs (up to MAX_CHANGED_ROWS rows
    of each text); ``to_thread`` carries the request's CSRF token along."""
    html = await request.app[SERVICE].in_thread(lambda: _html(request, template, context))
    return web.Response(text=html, content_type="text/html", status=status)


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect returned, not raised, so the middlewares still add headers and cookie."""
    return web.Response(status=status, headers={"Location": location})


def short_page(status: int, title: str, text: str) -> web.Response:
    """A page that needs no session and shows nothing of the cluster."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} · prompt console</title></head><body>"
        f"<h1>{title}</h1><p>{text}</p></body></html>\n"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def forbidden_message(exc: ApiError) -> str:
    if exc.status == 401:
        return (
            "The API server did not accept your credentials (401): the token in your "
            "kubeconfig may have expired. Get a new one and restart the console."
        )
    return (
        "You are not allowed to do this: the API server's RBAC refused it for your "
        f"kubeconfig's user. It said: {exc.message}"
    )


def write_error(exc: ApiError) -> str:
    if exc.status in (401, 403):
        return forbidden_message(exc)
    if exc.status == 409:
        return (
            "Someone else changed this Prompt after you opened the page, so nothing was "
            "written (the API server reported a conflict). Reload to see their change, "
            "then make yours again."
        )
    return f"The API server refused the change: {exc.message}"
