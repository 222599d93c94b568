"""The console's guards: who may ask, from where, and what every answer carries.

Security, in one place (docs/console/security.md says it for users):
- nothing but the static files answers without a session: the console prints a
  one-time link on its terminal, and ``/login`` trades it for a session cookie
  (HttpOnly, SameSite=Strict, see ``auth``); without one, 401;
- it answers only requests whose Host header is one of its names (a
  DNS-rebinding page gets 421), on every address it may listen on;
- every POST repeats the session's CSRF token, which the server derives from its
  own key (no client can choose it), and a browser's Origin must be the console;
- the user's credentials stay in this process: pages are rendered from API
  objects, never from the kubeconfig;
- the access log names method, path and status, never a query string (sample
  values, the login token) or a body;
- a Content-Security-Policy allows only the console's own scripts and styles;
- URLs name namespaces and Prompts as Kubernetes does, or get 400; diffs run
  in a worker thread with a bounded cost; live views share one watch per
  namespace and selector, at most ``MAX_STREAMS`` of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from prompt_contract.objects import name_problem, namespace_problem

from ..prompt_api import ApiError, BadName, Unreachable
from .auth import Keys, session_cookie_name
from .rendering import csrf_token, forbidden_message, redirect, render, short_page
from .settings import KEYS, SETTINGS

logger = logging.getLogger("prompt_operator.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on
    # its own form posts, which the CSRF check must refuse. The one URL with a secret
    # in it, /login?token=..., answers no-referrer (and only with a redirect).
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class AccessLogger(AbstractAccessLogger):
    """Method, path, status, time: never the query string (sample values, filters,
    the login token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.0fms", request.method, request.path, response.status, time * 1000
        )


NO_SESSION = (
    "Open the link that <code>prompt-operator console</code> printed on its terminal "
    "(<code>http://…/login?token=…</code>). Each link works once; for a new one, send the "
    "console <code>SIGUSR1</code> (<code>kill -USR1 PID</code>, the PID is printed next to "
    "the link) or restart it."
)


# -- middlewares ---------------------------------------------------------------------------


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await _guarded(request, handler)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.host.lower() not in settings.allowed_hosts:
        return web.Response(status=421, text="this console answers only to its own address\n")
    if request.path.startswith("/static/"):
        return await handler(request)  # the console's own CSS and script: no data in them
    keys = request.app[KEYS]
    cookie = request.cookies.get(session_cookie_name(settings.port), "")
    sid = keys.session_id(cookie) if cookie else None
    if request.path == "/login":
        return login(request, keys, sid)
    if sid is None:
        return short_page(401, "Open the console's link", NO_SESSION)
    csrf_token.set(keys.csrf_token(sid))
    if request.method not in ("GET", "HEAD") and not await _csrf_ok(request, keys, sid):
        return web.Response(
            status=403,
            text="the form is out of date or came from another site (CSRF check); "
            "reload the page and try again\n",
        )
    problem = _url_problem(request)
    if problem:
        return render(request, "error.html", 400, title="Not a Kubernetes name", detail=problem)
    return await handler(request)


def login(request: web.Request, keys: Keys, sid: str | None) -> web.StreamResponse:
    """Trade the one-time token for a session cookie, then go to the clean URL."""
    token = request.query.get("token", "")
    if token and keys.spend(token):
        response = redirect("/")
        response.set_cookie(
            session_cookie_name(request.app[SETTINGS].port),
            keys.new_session(),
            httponly=True,
            samesite="Strict",
            path="/",
        )
    elif sid is not None:
        response = redirect("/")  # the link again, in a browser already signed in
    else:
        response = short_page(
            403, "This link is spent", "It was used already or is not this console's. " + NO_SESSION
        )
    # A token is in this URL: no Referer may carry it anywhere.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _csrf_ok(request: web.Request, keys: Keys, sid: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1].lower() != request.host.lower():
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.post()
        sent = str(form.get(CSRF_FIELD) or "")
    return keys.csrf_ok(sid, sent)


def _url_problem(request: web.Request) -> str | None:
    """Why the URL's namespace or Prompt name is not a Kubernetes name, or None."""
    ns, name = request.match_info.get("ns"), request.match_info.get("name")
    if ns is not None and (problem := namespace_problem(ns)):
        return problem
    if name is not None and (problem := name_problem(name)):
        return problem
    return None


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An API error no page handled itself becomes a page that says what happened."""
    try:
        return await handler(request)
    except Unreachable as exc:
        return render(request, "error.html", 502, title="API server unreachable", detail=str(exc))
    except BadName as exc:
        return render(request, "error.html", 400, title="Not a Kubernetes name", detail=str(exc))
    except ApiError as exc:
        if exc.status == 404:
            return render(request, "error.html", 404, title="Not found", detail=exc.message)
        if exc.status in (401, 403):
            return render(
                request, "error.html", 403, title="Not allowed", detail=forbidden_message(exc)
            )
        return render(request, "error.html", 502, title="The API server refused", detail=str(exc))
