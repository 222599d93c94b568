"""The console's aiohttp application.

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

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .. import history
from ..gitops import spec_managers
from ..rollback import RollbackError, rollback_patch
from . import views, worddiff
from .api import (
    FIELD_MANAGER,
    LIST_CAP,
    ApiError,
    BadName,
    ConsoleApi,
    TooManyStreams,
    Unreachable,
    name_problem,
    namespace_problem,
)
from .auth import Keys, session_cookie_name

logger = logging.getLogger("prompt_operator.console")

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
# Diffs computed at once (each in a worker thread, each within worddiff's budget).
MAX_DIFFS = 2

# The CSRF token of the request being handled (set by ``guard``, read by ``render``).
_csrf_token: contextvars.ContextVar[str] = contextvars.ContextVar("csrf_token", default="")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Settings:
    namespace: str
    context: str
    user: str
    # "host:port" values (lower case) the Host header may carry; never "any"
    allowed_hosts: frozenset[str]
    port: int
    prometheus: str | None = None


class AccessLogger(AbstractAccessLogger):
    """Method, path, status, time: never the query string (sample values, filters,
    the login token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.0fms", request.method, request.path, response.status, time * 1000
        )


# -- app state -----------------------------------------------------------------------------

SETTINGS = web.AppKey("settings", Settings)
API = web.AppKey("api", ConsoleApi)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
KEYS = web.AppKey("keys", Keys)
DIFFS = web.AppKey("diffs", asyncio.Semaphore)


def _environment() -> jinja2.Environment:
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
            csrf=_csrf_token.get(),
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
    html = await _in_thread(request, lambda: _html(request, template, context))
    return web.Response(text=html, content_type="text/html", status=status)


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect returned, not raised, so the middlewares still add headers and cookie."""
    return web.Response(status=status, headers={"Location": location})


def _short_page(status: int, title: str, text: str) -> web.Response:
    """A page that needs no session and shows nothing of the cluster."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} · prompt console</title></head><body>"
        f"<h1>{title}</h1><p>{text}</p></body></html>\n"
    )
    return web.Response(status=status, text=body, content_type="text/html")


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
        return _short_page(401, "Open the console's link", NO_SESSION)
    _csrf_token.set(keys.csrf_token(sid))
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
        response = _short_page(
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


# -- pages ---------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    ns = request.query.get("ns", "").strip() or request.app[SETTINGS].namespace
    problem = namespace_problem(ns)
    if problem:
        return render(request, "error.html", 400, title="Not a Kubernetes name", detail=problem)
    return redirect(f"/ns/{quote(ns, safe='')}/prompts", 302)


async def prompt_list(request: web.Request) -> web.StreamResponse:
    ns = request.match_info["ns"]
    label = request.query.get("label", "").strip()
    search = request.query.get("q", "").strip()
    problem = views.selector_problem(label)
    items: list[dict[str, Any]] = []
    more = False
    if problem is None:
        try:
            items, more = await request.app[API].prompts(ns, label)
        except ApiError as exc:
            if exc.status != 400:
                raise
            problem = exc.message
    return render(
        request,
        "list.html",
        rows=views.rows(items, search),
        more=more,
        cap=LIST_CAP,
        label=label,
        search=search,
        label_problem=problem,
        stream_url=f"/ns/{ns}/prompts/stream?" + urlencode({"label": label, "q": search}),
    )


async def prompt_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the list's table body, again after every change. Streams
    of one namespace and selector share one watch (``WatchHub``)."""
    ns = request.match_info["ns"]
    label = request.query.get("label", "").strip()
    search = request.query.get("q", "").strip()
    if views.selector_problem(label) is not None:
        raise web.HTTPBadRequest(text="bad label filter\n")
    hub = request.app[API].streams
    try:
        subscription = hub.subscribe(ns, label)
    except TooManyStreams as exc:
        return web.Response(status=503, text=f"{exc}\n", headers={"Retry-After": "30"})
    try:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response.prepare(request)
        body = request.app[TEMPLATES].get_template("rows.html")
        quiet = 0.0
        while not hub.closed:
            try:
                await asyncio.wait_for(subscription.changed.wait(), timeout=1)
            except asyncio.TimeoutError:
                # A closed tab frees its place in the cap within a second.
                if request.transport is None or request.transport.is_closing():
                    break
                quiet += 1
                if quiet >= 15:
                    quiet = 0
                    await response.write(b": keep-alive\n\n")
                continue
            subscription.changed.clear()
            if hub.closed:
                break
            rows = views.rows(subscription.items.values(), search)
            html = body.render(rows=rows[:LIST_CAP], namespace=ns)
            data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
            await response.write(f"event: rows\n{data}\n".encode())
    except ConnectionResetError:
        pass  # the tab was closed
    finally:
        await hub.unsubscribe(subscription)
    return response


def _sample_values(query: Mapping[str, str]) -> dict[str, str]:
    return {k[4:]: v for k, v in query.items() if k.startswith("var.")}


async def prompt_page(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    api = request.app[API]
    obj, events, pods = await asyncio.gather(
        api.prompt(ns, name), api.events(ns, name), api.subscribed_pods(ns)
    )
    spec = obj.get("spec") or {}
    usage, usage_error = await _usage(request, views.prompt_row(obj).key)
    declared = [v.name for v in views.variables(spec)]
    samples = _sample_values(request.query)
    variant = request.query.get("variant", "")
    now = datetime.now(timezone.utc)
    schedule = views.schedule(obj, now)
    return render(
        request,
        "prompt.html",
        obj=obj,
        row=views.prompt_row(obj),
        texts=[
            (t, views.highlight(t.template, declared, str(spec.get("format") or "python")))
            for t in views.texts(spec)
        ],
        variables=views.variables(spec),
        samples=samples,
        variant=variant,
        preview=views.preview(spec, name, samples, variant),
        conditions=[views.condition(obj, t) for t in ("Ready", "Delivered")],
        events=views.events(events),
        bars=views.weight_bars(obj),
        schedule=schedule,
        now_at=views.now_position(schedule, obj, now) if schedule else 0,
        pods=views.delivery(obj, pods),
        gitops=views.managed_elsewhere(obj),
        saved=request.query.get("saved"),
        usage=usage,
        usage_error=usage_error,
        tab="overview",
    )


async def _usage(request: web.Request, key: str) -> tuple[views.Usage | None, str | None]:
    """Uses by revision, variant and outcome from --prometheus (no credentials sent)."""
    url = request.app[SETTINGS].prometheus
    if not url:
        return None, None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url + "/api/v1/query", params={"query": views.usage_query(key)}) as resp,
        ):
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return None, f"cannot query Prometheus at {url}: {exc or type(exc).__name__}"
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else "not a Prometheus answer"
        return None, f"Prometheus at {url} answered: {error}"
    return views.usage((body.get("data") or {}).get("result") or []), None


async def preview_fragment(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = await request.app[API].prompt(ns, name)
    result = views.preview(
        obj.get("spec") or {}, name, _sample_values(request.query), request.query.get("variant", "")
    )
    return render(request, "preview.html", preview=result)


async def _snapshot(
    api: ConsoleApi, ns: str, name: str, record: history.Record
) -> history.Snapshot | None:
    from prompt_client import wire

    cm = await api.configmap(ns, wire.configmap_name(name, record.revision))
    if cm is None:
        return None
    return history.snapshot_from_configmap(cm.get("data") or {}, name)


# One text's comparison: its rows, or why it is too large to compare on a page.
Compared = tuple[str, "list[worddiff.Row] | str"]


def compare_texts(pairs: list[tuple[str, str, str]]) -> list[Compared]:
    """(name, old, new) texts compared within one page's budget. Pure CPU: it runs in
    a worker thread (``_in_thread``)."""
    budget = worddiff.Budget()
    out: list[Compared] = []
    for name, old, new in pairs:
        try:
            out.append((name, worddiff.side_by_side(old, new, budget)))
        except worddiff.TooLarge as exc:
            out.append((name, f"{exc} ({len(old):,} and {len(new):,} characters)"))
    return out


def _pairs(old: history.Snapshot, new: history.Snapshot) -> list[tuple[str, str, str]]:
    names = [n for n, _ in old.texts] + [n for n, _ in new.texts if n not in dict(old.texts)]
    a, b = dict(old.texts), dict(new.texts)
    return [(n, a.get(n, ""), b.get(n, "")) for n in names]


def summarize(old: history.Snapshot, new: history.Snapshot, texts: list[Compared]) -> str:
    """history.summarize's line, its line counts taken from the bounded comparison
    (history's own runs difflib on up to 200 KB, on the caller's thread)."""
    bare = history.summarize(replace(old, texts=()), replace(new, texts=()))
    parts = [] if bare == history.summarize(new, new) else [bare]
    old_texts, new_texts = dict(old.texts), dict(new.texts)
    for name, rows in texts:
        before, after = old_texts.get(name), new_texts.get(name)
        if before is None or after is None or before == after:
            continue
        where = f"variant {name}" if name else "text"
        if isinstance(rows, str):
            parts.append(f"{where} changed ({len(before):,} -> {len(after):,} characters)")
        else:
            plus, minus = worddiff.line_changes(rows)
            parts.append(f"{where} +{plus} -{minus} lines")
    return "; ".join(parts) or history.summarize(new, new)


async def _in_thread(request: web.Request, work: Callable[[], T]) -> T:
    """CPU-bound page work off the event loop, a few at a time."""
    async with request.app[DIFFS]:
        return await asyncio.to_thread(work)


async def _compare(
    request: web.Request, old: history.Snapshot, new: history.Snapshot
) -> tuple[str, list[Compared]]:
    texts = await _in_thread(request, lambda: compare_texts(_pairs(old, new)))
    return summarize(old, new, texts), texts


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def revisions_page(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    api = request.app[API]
    obj = await api.prompt(ns, name)
    status = obj.get("status") or {}
    records = history.records_from(status)
    old_n, new_n = _int(request.query.get("from")), _int(request.query.get("to"))
    if records and new_n is None:
        new_n = records[-1].number
    if records and old_n is None:
        old_n = records[-2].number if len(records) > 1 else records[-1].number
    compare = None
    problem = None
    old_r = views.record(status, old_n) if old_n is not None else None
    new_r = views.record(status, new_n) if new_n is not None else None
    if records and (old_r is None or new_r is None):
        problem = f"no revision {old_n if old_r is None else new_n} is kept"
    elif old_r is not None and new_r is not None:
        old_s, new_s = await asyncio.gather(
            _snapshot(api, ns, name, old_r), _snapshot(api, ns, name, new_r)
        )
        if old_s is None or new_s is None:
            problem = "a revision's ConfigMap is gone; it was pruned or deleted"
        else:
            summary, texts = await _compare(request, old_s, new_s)
            compare = {"old": old_r, "new": new_r, "summary": summary, "texts": texts}
    return await render_diffs(
        request,
        "revisions.html",
        obj=obj,
        row=views.prompt_row(obj),
        records=list(reversed(records)),
        current=status.get("revision"),
        compare=compare,
        problem=problem,
        gitops=views.managed_elsewhere(obj),
        rolledback=_int(request.query.get("rolledback")),
        tab="revisions",
    )


async def rollback(request: web.Request) -> web.StreamResponse:
    """GET: the confirmation naming what changes. POST: the rollback itself."""
    ns, name = request.match_info["ns"], request.match_info["name"]
    api = request.app[API]
    form = await request.post() if request.method == "POST" else request.query
    number = _int(str(form.get("to") or ""))
    obj = await api.prompt(ns, name)
    status = obj.get("status") or {}
    records = history.records_from(status)
    target = views.record(status, number) if number is not None else None
    context: dict[str, Any] = {
        "obj": obj,
        "row": views.prompt_row(obj),
        "tab": "revisions",
        "target": target,
        "gitops": views.managed_elsewhere(obj),
        "error": None,
    }
    if target is None:
        kept = ", ".join(str(r.number) for r in records) or "none"
        context["error"] = f"Prompt {name} has no revision {number} (kept: {kept})."
        return render(request, "rollback.html", 404, **context)
    current = records[-1] if records else None
    target_s = await _snapshot(api, ns, name, target)
    current_s = await _snapshot(api, ns, name, current) if current else None
    if target_s is None:
        context["error"] = f"Revision {target.number}'s ConfigMap is gone; it cannot be restored."
        return render(request, "rollback.html", 410, **context)
    context["current"] = current
    context["summary"], context["texts"] = (
        await _compare(request, current_s, target_s) if current_s else ("", [])
    )
    context["resource_version"] = obj["metadata"].get("resourceVersion", "")
    if request.method != "POST" or context["gitops"]:
        return await render_diffs(request, "rollback.html", **context)
    from prompt_client import wire

    cm = await api.configmap(ns, wire.configmap_name(name, target.revision)) or {}
    try:
        patch = rollback_patch(obj, cm.get("data") or {}, datetime.now(timezone.utc))
    except RollbackError as exc:
        context["error"] = str(exc)
        return await render_diffs(request, "rollback.html", 422, **context)
    # The resourceVersion the user confirmed on: a change since then is a conflict.
    patch["metadata"] = {"resourceVersion": str(form.get("resource_version") or "")}
    try:
        await api.merge_patch(ns, name, patch, dry_run=False)
    except ApiError as exc:
        context["error"] = _write_error(exc)
        status = exc.status if exc.status < 500 else 502
        return await render_diffs(request, "rollback.html", status, **context)
    logger.info("rolled back Prompt %s/%s to revision %s", ns, name, target.number)
    return redirect(f"/ns/{ns}/prompts/{name}/revisions?rolledback={target.number}")


def _write_error(exc: ApiError) -> str:
    if exc.status in (401, 403):
        return forbidden_message(exc)
    if exc.status == 409:
        return (
            "Someone else changed this Prompt after you opened the page, so nothing was "
            "written (the API server reported a conflict). Reload to see their change, "
            "then make yours again."
        )
    return f"The API server refused the change: {exc.message}"


# -- edit ------------------------------------------------------------------------------------


async def _edit_context(request: web.Request, obj: Mapping[str, Any]) -> dict[str, Any]:
    ns, name = request.match_info["ns"], request.match_info["name"]
    gitops = views.managed_elsewhere(obj)
    allowed = True
    with contextlib.suppress(ApiError):
        allowed = await request.app[API].can("patch", ns, name)
    return {
        "obj": obj,
        "row": views.prompt_row(obj),
        "tab": "edit",
        "gitops": gitops,
        "allowed": allowed,
        "manifest": views.manifest(obj) if gitops else "",
        "managers": spec_managers(obj),
        "field_manager": FIELD_MANAGER,
    }


async def edit_page(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = await request.app[API].prompt(ns, name)
    form = views.form_from_spec(obj)
    context = await _edit_context(request, obj)
    checks = views.check(obj, views.spec_from_form(obj, form))
    return render(request, "edit.html", form=form, checks=checks, outcome=None, **context)


async def edit_check(request: web.Request) -> web.StreamResponse:
    """Live checks while typing: JSON problems by field. Writes nothing."""
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = await request.app[API].prompt(ns, name)
    form = views.form_from_fields(await _fields(request))
    checks = views.check(obj, views.spec_from_form(obj, form))
    return web.json_response({"errors": checks.errors, "warnings": checks.warnings})


async def _fields(request: web.Request) -> dict[str, list[str]]:
    posted = await request.post()
    out: dict[str, list[str]] = {}
    for key in posted:
        if key not in out:
            out[key] = [str(v) for v in posted.getall(key)]
    return out


@dataclass(frozen=True)
class Outcome:
    kind: str  # "saved", "dry-run", "conflict", "refused", "forbidden", "invalid"
    message: str
    theirs: list[Compared] | None = None


async def edit_submit(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    api = request.app[API]
    fields = await _fields(request)
    form = views.form_from_fields(fields)
    dry_run = (fields.get("action") or ["save"])[0] != "save"
    obj = await api.prompt(ns, name)
    context = await _edit_context(request, obj)
    spec = views.spec_from_form(obj, form)
    checks = views.check(obj, spec)
    if context["gitops"]:
        context["manifest"] = views.manifest(obj, spec)
        outcome = Outcome("refused", "Nothing was written: " + context["gitops"] + ".")
        return render(
            request, "edit.html", 409, form=form, checks=checks, outcome=outcome, **context
        )
    if not checks.ok:
        outcome = Outcome("invalid", "Nothing was written: fix the problems marked below.")
        return render(
            request, "edit.html", 422, form=form, checks=checks, outcome=outcome, **context
        )
    body = {
        "apiVersion": obj["apiVersion"],
        "kind": "Prompt",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": form.resource_version},
        "spec": spec,
    }
    try:
        result = await api.apply(body, dry_run=True)
        if (result.get("spec") or {}) != spec:
            # Server-side apply keeps list entries another manager owns (a variable
            # kubectl added, which the user removed here): write the spec whole
            # instead, same field manager, same resourceVersion precondition.
            patch = {
                "metadata": {"resourceVersion": form.resource_version},
                "spec": _merge(obj, spec),
            }
            result = await api.merge_patch(ns, name, patch, dry_run=True)
            if not dry_run:
                result = await api.merge_patch(ns, name, patch, dry_run=False)
        elif not dry_run:
            result = await api.apply(body, dry_run=False)
    except ApiError as exc:
        if exc.status == 409 and "modified" in exc.message:
            outcome = await _conflict(request, await api.prompt(ns, name), form)
        elif exc.status in (401, 403):
            outcome = Outcome("forbidden", forbidden_message(exc))
        else:
            outcome = Outcome("refused", "Nothing was written. " + _write_error(exc))
        return await render_diffs(
            request,
            "edit.html",
            exc.status if exc.status < 500 else 502,
            form=form,
            checks=checks,
            outcome=outcome,
            **context,
        )
    if dry_run:
        outcome = Outcome(
            "dry-run",
            "Dry run passed: the API server accepted this change (schema, rules and "
            "admission). Nothing was written.",
        )
        return render(request, "edit.html", form=form, checks=checks, outcome=outcome, **context)
    logger.info(
        "saved Prompt %s/%s (generation %s)",
        ns,
        name,
        (result.get("metadata") or {}).get("generation"),
    )
    return redirect(f"/ns/{ns}/prompts/{name}?saved=1")


def _merge(obj: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch's spec: ``spec``, with fields it dropped set to null."""
    out: dict[str, Any] = dict(spec)
    for key in obj.get("spec") or {}:
        out.setdefault(key, None)
    return out


async def _conflict(request: web.Request, theirs: Mapping[str, Any], form: views.Form) -> Outcome:
    mine = views.texts(views.spec_from_form(theirs, form))
    stored = {t.variant: t.template for t in views.texts(theirs.get("spec") or {})}
    pairs = [(t.variant, stored.get(t.variant, ""), t.template) for t in mine]
    diffs = await _in_thread(request, lambda: compare_texts(pairs))
    managers = ", ".join(spec_managers(theirs)) or "unknown"
    return Outcome(
        "conflict",
        "Someone else changed this Prompt after you opened it, so nothing was written "
        f"(it is now at resourceVersion {theirs['metadata'].get('resourceVersion')}; "
        f"spec written by: {managers}). Your text is kept below; the comparison shows "
        "their version on the left and yours on the right. Reload to start from theirs.",
        diffs,
    )


# -- the app ---------------------------------------------------------------------------------


def make_app(api: ConsoleApi, settings: Settings, keys: Keys) -> web.Application:
    app = web.Application(middlewares=[guard, api_errors], client_max_size=4 * 1024 * 1024)
    app[SETTINGS] = settings
    app[API] = api
    app[TEMPLATES] = _environment()
    app[KEYS] = keys
    app[DIFFS] = asyncio.Semaphore(MAX_DIFFS)
    static = resources.files(__package__).joinpath("static")
    app.router.add_get("/", index)
    app.router.add_static("/static/", str(static), append_version=True)
    app.router.add_get("/ns/{ns}/prompts", prompt_list)
    app.router.add_get("/ns/{ns}/prompts/stream", prompt_stream)
    app.router.add_get("/ns/{ns}/prompts/{name}", prompt_page)
    app.router.add_get("/ns/{ns}/prompts/{name}/preview", preview_fragment)
    app.router.add_get("/ns/{ns}/prompts/{name}/revisions", revisions_page)
    app.router.add_get("/ns/{ns}/prompts/{name}/rollback", rollback)
    app.router.add_post("/ns/{ns}/prompts/{name}/rollback", rollback)
    app.router.add_get("/ns/{ns}/prompts/{name}/edit", edit_page)
    app.router.add_post("/ns/{ns}/prompts/{name}/edit", edit_submit)
    app.router.add_post("/ns/{ns}/prompts/{name}/check", edit_check)

    async def end_streams(_: web.Application) -> None:
        await api.streams.close()  # live views end, so shutting down waits for nothing

    async def close(_: web.Application) -> None:
        await api.close()

    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(close)
    return app


async def start(app: web.Application, address: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``address:port`` with the query-free access log."""
    # A request still running at shutdown gets 1 s (a diff is bounded well below it).
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


class HostsError(ValueError):
    """The console would answer to host names it cannot know are its own."""


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
_HOST_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def host_name(name: str) -> str:
    """``name`` as the Host header spells it (an IPv6 address in brackets, lower case);
    ``HostsError`` for anything but one host name or IP address."""
    bare = name.strip().lower().removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST_NAME.fullmatch(bare) or len(bare) > 253:
            raise HostsError(
                f"--allow-host {name!r}: give one host name or IP address, without port, "
                "scheme or wildcard (e.g. --allow-host console.example.internal)"
            ) from None
        return bare
    if ip.is_unspecified:
        raise HostsError(f"--allow-host {name!r}: a wildcard address is no host's name")
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def allowed_hosts(address: str, port: int, names: Sequence[str] = ()) -> frozenset[str]:
    """The Host header values to answer ("host:port", lower case); never "any".

    On loopback: the loopback names. Elsewhere, the user must name the console
    (``--allow-host``): a DNS-rebinding page reaches the console under the
    attacker's own name, and only a list of the console's names refuses it. A
    wildcard address also answers to the loopback names, and a given IP address to
    itself (a page at that address is the console)."""
    given = {host_name(n) for n in names}
    if is_loopback(address):
        hosts = {*LOOPBACK_NAMES, host_name(address), *given}
    elif not given:
        raise HostsError(
            f"--address {address} lets other machines reach the console: name the host "
            "names it answers to with --allow-host NAME (repeatable), e.g. "
            "--allow-host my-laptop.example.internal"
        )
    elif address in WILDCARDS:
        hosts = {*LOOPBACK_NAMES, *given}
    else:
        hosts = {host_name(address), *given}
    out = {f"{h}:{port}" for h in hosts}
    if port == 80:
        out |= hosts  # a browser leaves the default port out of Host
    return frozenset(out)
