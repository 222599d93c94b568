"""The pages that show Prompts: the list, one Prompt, its preview, its revisions, and
the rollback. Each parses its request, calls the service once, and renders."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from prompt_contract.objects import ROLLOUT_ACTIONS, namespace_problem

from ..prompt_api import LIST_CAP, ApiError
from ..rollback import RollbackError
from ..rollouts import view as rollout_view
from . import callview, edit_form, rollout, views
from .rendering import redirect, render, render_diffs, write_error
from .service import RollbackPlan
from .settings import SERVICE, SETTINGS

logger = logging.getLogger("prompt_operator.console")


def _names(request: web.Request) -> tuple[str, str]:
    return request.match_info["ns"], request.match_info["name"]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _sample_values(query: Mapping[str, str]) -> dict[str, str]:
    return {k[4:]: v for k, v in query.items() if k.startswith("var.")}


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
            items, more = await request.app[SERVICE].prompts(ns, label)
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


async def prompt_page(request: web.Request) -> web.StreamResponse:
    ns, name = _names(request)
    seen = await request.app[SERVICE].overview(ns, name, lambda obj: views.prompt_row(obj).key)
    obj = seen.obj
    spec = obj.get("spec") or {}
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
        preview=_preview(spec, name, samples, variant),
        chat=callview.messages(spec.get("messages")) if "messages" in spec else None,
        model=callview.model(spec.get("model")),
        overrides=callview.variant_overrides(spec),
        includes=callview.includes(spec),
        included_by=await _included_by(request, ns, name),
        conditions=[views.condition(obj, t) for t in ("Ready", "Delivered")],
        events=views.events(seen.events),
        bars=views.weight_bars(obj),
        rollout=rollout.panel(obj),
        rollout_asked=rollout.asked_notice(request.query.get("rollout")),
        schedule=schedule,
        now_at=views.now_position(schedule, obj, now) if schedule else 0,
        pods=views.delivery(obj, seen.pods),
        gitops=views.managed_elsewhere(obj),
        saved=request.query.get("saved"),
        usage=seen.usage,
        usage_error=seen.usage_error,
        tab="overview",
    )


async def rollout_action(request: web.Request) -> web.StreamResponse:
    """POST: ask the operator for a rollout action (promote, abort, ...), when it makes
    sense in the rollout's phase; the operator decides again when it acts."""
    ns, name = _names(request)
    action = str((await request.post()).get("action") or "")
    if action not in ROLLOUT_ACTIONS:
        detail = f"{action!r} is not one of {', '.join(ROLLOUT_ACTIONS)}."
        return render(request, "error.html", 400, title="Not a rollout action", detail=detail)
    service = request.app[SERVICE]
    obj = await service.prompt(ns, name)
    problem = rollout_view.action_problem(rollout_view.rollout_of(obj.get("status")), action, name)
    if problem:
        return render(
            request,
            "error.html",
            409,
            title="Not now",
            detail=problem[:1].upper() + problem[1:] + ".",
        )
    await service.ask_rollout(ns, name, action)
    logger.info("asked for rollout action %s on Prompt %s/%s", action, ns, name)
    return redirect(f"/ns/{ns}/prompts/{name}?rollout={action}")


async def preview_fragment(request: web.Request) -> web.StreamResponse:
    ns, name = _names(request)
    obj = await request.app[SERVICE].prompt(ns, name)
    result = _preview(
        obj.get("spec") or {}, name, _sample_values(request.query), request.query.get("variant", "")
    )
    return render(request, "preview.html", preview=result)


def _preview(
    spec: Mapping[str, Any], name: str, samples: Mapping[str, str], variant: str
) -> views.Preview | callview.MessagesPreview:
    if callview.is_chat(spec):
        return callview.preview_messages(spec, name, samples, variant)
    return views.preview(spec, name, samples, variant)


async def _included_by(request: web.Request, ns: str, name: str) -> list[str] | str:
    """The Prompts of ``ns`` that include this one, or why the list could not be read."""
    try:
        items, _ = await request.app[SERVICE].prompts(ns, "")
    except ApiError as exc:
        return f"cannot list the Prompts of {ns}: {exc.message}"
    return callview.included_by(name, items)


async def revisions_page(request: web.Request) -> web.StreamResponse:
    ns, name = _names(request)
    old_n, new_n = _int(request.query.get("from")), _int(request.query.get("to"))
    found = await request.app[SERVICE].revisions(ns, name, old_n, new_n)
    return await render_diffs(
        request,
        "revisions.html",
        obj=found.obj,
        row=views.prompt_row(found.obj),
        records=list(reversed(found.records)),
        current=(found.obj.get("status") or {}).get("revision"),
        compare=found.compare,
        problem=found.problem,
        gitops=views.managed_elsewhere(found.obj),
        rolledback=_int(request.query.get("rolledback")),
        tab="revisions",
    )


async def rollback(request: web.Request) -> web.StreamResponse:
    """GET: the confirmation naming what changes. POST: the rollback itself."""
    ns, name = _names(request)
    service = request.app[SERVICE]
    form = await request.post() if request.method == "POST" else request.query
    number = _int(str(form.get("to") or ""))
    plan = await service.rollback_plan(ns, name, number)
    context = _rollback_context(plan)
    if plan.target is None:
        kept = ", ".join(str(r.number) for r in plan.records) or "none"
        context["error"] = f"Prompt {name} has no revision {number} (kept: {kept})."
        return render(request, "rollback.html", 404, **context)
    if plan.data is None:
        number = plan.target.number
        context["error"] = f"Revision {number}'s ConfigMap is gone; it cannot be restored."
        context["target"] = None  # "Cannot roll back": there is nothing to confirm
        return render(request, "rollback.html", 410, **context)
    if request.method != "POST" or context["gitops"]:
        return await render_diffs(request, "rollback.html", **context)
    try:
        seen = str(form.get("resource_version") or ""), str(form.get("generation") or "")
        await service.rollback(plan, edit_form.precondition(plan.obj, *seen))
    except RollbackError as exc:
        context["error"] = str(exc)
        return await render_diffs(request, "rollback.html", 422, **context)
    except ApiError as exc:
        context["error"] = write_error(exc)
        status = exc.status if exc.status < 500 else 502
        return await render_diffs(request, "rollback.html", status, **context)
    logger.info("rolled back Prompt %s/%s to revision %s", ns, name, plan.target.number)
    return redirect(f"/ns/{ns}/prompts/{name}/revisions?rolledback={plan.target.number}")


def _rollback_context(plan: RollbackPlan) -> dict[str, Any]:
    return {
        "obj": plan.obj,
        "row": views.prompt_row(plan.obj),
        "tab": "revisions",
        "target": plan.target,
        "gitops": views.managed_elsewhere(plan.obj),
        "error": None,
        "current": plan.current,
        "summary": plan.summary,
        "texts": plan.texts or [],
        "resource_version": plan.obj["metadata"].get("resourceVersion", ""),
        "generation": plan.obj["metadata"].get("generation", ""),
    }
