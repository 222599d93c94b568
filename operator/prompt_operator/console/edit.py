"""The edit pages: the form, its live checks, and saving (or a dry run).

Each parses the form, calls the service, and renders the outcome; the write
itself (server-side apply, or the whole spec when apply would keep what the
user removed) is ``PromptService.save``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..gitops import spec_managers
from ..prompt_api import FIELD_MANAGER, ApiError
from . import edit_form, views
from .compare import Compared
from .edit_form import Form
from .rendering import forbidden_message, redirect, render, render_diffs, write_error
from .service import PromptService
from .settings import SERVICE

logger = logging.getLogger("prompt_operator.console")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "saved", "dry-run", "conflict", "refused", "forbidden", "invalid"
    message: str
    theirs: list[Compared] | None = None


DRY_RUN_PASSED = Outcome(
    "dry-run",
    "Dry run passed: the API server accepted this change (schema, rules and "
    "admission). Nothing was written.",
)


async def _context(request: web.Request, obj: Mapping[str, Any]) -> dict[str, Any]:
    ns, name = request.match_info["ns"], request.match_info["name"]
    gitops = views.managed_elsewhere(obj)
    return {
        "obj": obj,
        "row": views.prompt_row(obj),
        "tab": "edit",
        "gitops": gitops,
        "allowed": await request.app[SERVICE].can_patch(ns, name),
        "manifest": edit_form.manifest(obj) if gitops else "",
        "managers": spec_managers(obj),
        "field_manager": FIELD_MANAGER,
    }


async def _fields(request: web.Request) -> dict[str, list[str]]:
    posted = await request.post()
    out: dict[str, list[str]] = {}
    for key in posted:
        if key not in out:
            out[key] = [str(v) for v in posted.getall(key)]
    return out


async def edit_page(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = await request.app[SERVICE].prompt(ns, name)
    form = edit_form.form_from_spec(obj)
    context = await _context(request, obj)
    checks = edit_form.check(obj, edit_form.spec_from_form(obj, form), form)
    return render(request, "edit.html", form=form, checks=checks, outcome=None, **context)


async def edit_check(request: web.Request) -> web.StreamResponse:
    """Live checks while typing: JSON problems by field. Writes nothing."""
    ns, name = request.match_info["ns"], request.match_info["name"]
    obj = await request.app[SERVICE].prompt(ns, name)
    form = edit_form.form_from_fields(await _fields(request))
    checks = edit_form.check(obj, edit_form.spec_from_form(obj, form), form)
    return web.json_response({"errors": checks.errors, "warnings": checks.warnings})


async def edit_submit(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["ns"], request.match_info["name"]
    service = request.app[SERVICE]
    fields = await _fields(request)
    form = edit_form.form_from_fields(fields)
    dry_run = (fields.get("action") or ["save"])[0] != "save"
    obj = await service.prompt(ns, name)
    context = await _context(request, obj)
    spec = edit_form.spec_from_form(obj, form)
    checks = edit_form.check(obj, spec, form)

    def page(status: int, outcome: Outcome) -> web.Response:
        return render(
            request, "edit.html", status, form=form, checks=checks, outcome=outcome, **context
        )

    if context["gitops"]:
        context["manifest"] = edit_form.manifest(obj, spec)
        return page(409, Outcome("refused", "Nothing was written: " + context["gitops"] + "."))
    if not checks.ok:
        return page(422, Outcome("invalid", "Nothing was written: fix the problems marked below."))
    try:
        expected = edit_form.precondition(obj, form.resource_version, form.generation)
        result = await service.save(obj, spec, expected, dry_run=dry_run)
    except ApiError as exc:
        outcome = await _refused(service, ns, name, form, exc)
        status = exc.status if exc.status < 500 else 502
        return await render_diffs(
            request, "edit.html", status, form=form, checks=checks, outcome=outcome, **context
        )
    if dry_run:
        return page(200, DRY_RUN_PASSED)
    generation = (result.get("metadata") or {}).get("generation")
    logger.info("saved Prompt %s/%s (generation %s)", ns, name, generation)
    return redirect(f"/ns/{ns}/prompts/{name}?saved=1")


async def _refused(
    service: PromptService, ns: str, name: str, form: Form, exc: ApiError
) -> Outcome:
    if exc.status == 409 and "modified" in exc.message:
        return await _conflict(service, await service.prompt(ns, name), form)
    if exc.status in (401, 403):
        return Outcome("forbidden", forbidden_message(exc))
    return Outcome("refused", "Nothing was written. " + write_error(exc))


async def _conflict(service: PromptService, theirs: Mapping[str, Any], form: Form) -> Outcome:
    mine = views.texts(edit_form.spec_from_form(theirs, form))
    stored = {t.variant: t.template for t in views.texts(theirs.get("spec") or {})}
    diffs = await service.compare_texts(
        [(t.variant, stored.get(t.variant, ""), t.template) for t in mine]
    )
    managers = ", ".join(spec_managers(theirs)) or "unknown"
    return Outcome(
        "conflict",
        "Someone else changed this Prompt after you opened it, so nothing was written "
        f"(it is now at resourceVersion {theirs['metadata'].get('resourceVersion')}; "
        f"spec written by: {managers}). Your text is kept below; the comparison shows "
        "their version on the left and yours on the right. Reload to start from theirs.",
        diffs,
    )
