"""Pure functions from API objects to what the list and a Prompt's pages show.

No I/O here: the service fetches, these shape, the templates print. The render
is the client library's own, the history and the GitOps marks are the CLI's
own, so the console can never disagree with them. The edit form is
``edit_form``'s, the usage table ``usage``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prompt_contract import objects
from prompt_contract.selector import SelectorError, parse_selector
from prompt_contract.templates import RenderError, TemplateError, render_template
from prompt_contract.variants import choose_variant

from .. import history
from ..gitops import gitops_manager, gitops_owner

# -- the list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRow:
    name: str
    key: str
    ready: str  # "True", "False" or "Unknown"
    reason: str
    message: str
    revision_number: int | None
    revision: str
    delivery: str
    next_activation: str
    labels: tuple[tuple[str, str], ...]


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return dict(cond)
    return {}


def prompt_row(obj: Mapping[str, Any]) -> PromptRow:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = condition(obj, "Ready")
    records = history.records_from(status)
    current = next((r for r in reversed(records) if r.revision == status.get("revision")), None)
    stale = status.get("observedGeneration") != meta.get("generation")
    return PromptRow(
        name=str(meta.get("name") or ""),
        key=str(status.get("key") or spec.get("key") or meta.get("name") or ""),
        ready="Unknown" if stale or not ready else str(ready.get("status") or "Unknown"),
        reason="Reconciling" if stale else str(ready.get("reason") or ""),
        message="" if stale else str(ready.get("message") or ""),
        revision_number=current.number if current else None,
        revision=str(status.get("revision") or ""),
        delivery=str((status.get("delivery") or {}).get("summary") or ""),
        next_activation=str(status.get("nextActivation") or ""),
        labels=tuple(sorted((meta.get("labels") or {}).items())),
    )


def rows(objects: Iterable[Mapping[str, Any]], search: str = "") -> list[PromptRow]:
    """Rows sorted by name; ``search`` keeps those whose name or key contains it."""
    needle = search.strip().casefold()
    found = [prompt_row(o) for o in objects]
    if needle:
        found = [r for r in found if needle in r.name.casefold() or needle in r.key.casefold()]
    return sorted(found, key=lambda r: r.name)


def selector_problem(text: str) -> str | None:
    """Why a label filter is not a selector, before the API server is asked."""
    try:
        parse_selector(text)
    except SelectorError as exc:
        return str(exc)
    return None


# -- one Prompt ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}")


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str  # "text", "var" (declared), "undeclared", "brace" (a literal {{ or }})


def highlight(template: str, declared: Sequence[str], fmt: str) -> list[Piece]:
    """The template split for display, placeholders marked (raw text: one piece)."""
    if fmt == "raw":
        return [Piece(template, "text")]
    pieces: list[Piece] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > last:
            pieces.append(Piece(template[last : match.start()], "text"))
        token = match.group()
        if token in ("{{", "}}"):
            pieces.append(Piece(token, "brace"))
        else:
            pieces.append(Piece(token, "var" if token[1:-1] in declared else "undeclared"))
        last = match.end()
    if last < len(template):
        pieces.append(Piece(template[last:], "text"))
    return pieces


@dataclass(frozen=True)
class Text:
    """One text the Prompt serves: the template, or one variant's."""

    variant: str  # "" for spec.template
    weight: int
    template: str


def texts(spec: Mapping[str, Any]) -> list[Text]:
    variants = spec.get("variants") or []
    if variants:
        return [
            Text(str(v.get("name")), int(v.get("weight") or 0), str(v.get("template") or ""))
            for v in variants
            if isinstance(v, Mapping)
        ]
    return [Text("", 0, str(spec.get("template") or ""))]


@dataclass(frozen=True)
class VariableView:
    name: str
    description: str
    default: str | None


def variables(spec: Mapping[str, Any]) -> list[VariableView]:
    return [
        VariableView(
            str(v.get("name") or ""),
            str(v.get("description") or ""),
            None if v.get("default") is None else str(v.get("default")),
        )
        for v in spec.get("variables") or []
        if isinstance(v, Mapping)
    ]


@dataclass(frozen=True)
class Preview:
    text: str | None
    error: str | None


def preview(
    spec: Mapping[str, Any], name: str, values: Mapping[str, str], variant: str = ""
) -> Preview:
    """The text an app gets from ``render(key, **values)``, by the client's own rules.
    Empty inputs fall back to the declared default, as an app that omits them does."""
    if (spec.get("format") or "python") == "raw":
        chosen = next((t for t in texts(spec) if t.variant == variant), texts(spec)[0])
        return Preview(chosen.template, None)
    declared = variables(spec)
    defaults = {v.name: v.default for v in declared if v.default is not None}
    given = {k: v for k, v in values.items() if v != "" and k in {d.name for d in declared}}
    chosen = next((t for t in texts(spec) if t.variant == variant), texts(spec)[0])
    try:
        text = render_template(
            chosen.template,
            given,
            defaults=defaults,
            prompt=str(spec.get("key") or name),
            declared=tuple(d.name for d in declared),
        )
    except (RenderError, TemplateError) as exc:
        return Preview(None, str(exc))
    return Preview(text, None)


def events(items: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Events newest first: time, type, reason, message, count."""
    out = []
    for e in items:
        when = e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
        out.append(
            {
                "time": str(when),
                "type": str(e.get("type") or ""),
                "reason": str(e.get("reason") or ""),
                "message": str(e.get("message") or ""),
                "count": str(e.get("count") or 1),
            }
        )
    return sorted(out, key=lambda e: e["time"], reverse=True)


@dataclass(frozen=True)
class WeightBar:
    name: str
    weight: int
    percent: float
    pods: int | None


def weight_bars(obj: Mapping[str, Any]) -> list[WeightBar]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    pods = {
        str(v.get("name")): int(v.get("pods") or 0)
        for v in status.get("variants") or []
        if isinstance(v, Mapping)
    }
    variants = [t for t in texts(spec) if t.variant]
    total = sum(t.weight for t in variants) or 1
    return [
        WeightBar(t.variant, t.weight, round(100 * t.weight / total, 1), pods.get(t.variant))
        for t in variants
    ]


@dataclass(frozen=True)
class ScheduleEntryView:
    at: str
    what: str
    state: str  # "past", "active", "next" or "later"
    position: float  # 0..100 along the time line


def schedule(obj: Mapping[str, Any], now: datetime) -> list[ScheduleEntryView]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    entries = []
    for e in spec.get("schedule") or []:
        if not isinstance(e, Mapping):
            continue
        try:
            when = datetime.fromisoformat(str(e.get("at")).upper().replace("Z", "+00:00"))
        except ValueError:
            continue
        what = (
            "variants " + ", ".join(str(v.get("name")) for v in e.get("variants") or [])
            if e.get("variants")
            else _first_line(str(e.get("template") or ""))
        )
        entries.append((when, str(e.get("at")), what))
    entries.sort()
    if not entries:
        return []
    times = [w.timestamp() for w, _, _ in entries] + [now.timestamp()]
    low, high = min(times), max(times)
    span = (high - low) or 1.0
    active = str((status.get("activeSchedule") or {}).get("at") or "")
    upcoming = [w for w, _, _ in entries if w > now]
    out = []
    for when, at, what in entries:
        if at == active:
            state = "active"
        elif upcoming and when == upcoming[0]:
            state = "next"
        else:
            state = "past" if when <= now else "later"
        position = round(100 * (when.timestamp() - low) / span, 1)
        out.append(ScheduleEntryView(at, what, state, position))
    return out


def now_position(
    entries: Sequence[ScheduleEntryView], obj: Mapping[str, Any], now: datetime
) -> float:
    """Where "now" sits on the schedule's time line (0..100)."""
    spec = obj.get("spec") or {}
    stamps = []
    for e in spec.get("schedule") or []:
        try:
            stamps.append(
                datetime.fromisoformat(str(e.get("at")).upper().replace("Z", "+00:00")).timestamp()
            )
        except (ValueError, AttributeError):
            continue
    stamps.append(now.timestamp())
    low, high = min(stamps), max(stamps)
    return round(100 * (now.timestamp() - low) / ((high - low) or 1.0), 1)


def _first_line(text: str, limit: int = 80) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class PodView:
    name: str
    variant: str | None
    phase: str
    waiting: bool  # named in the Delivered condition as not yet serving the current revision


def delivery(obj: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[PodView]:
    """Subscribed pods whose selector picks this Prompt, with the variant each serves.
    The variant is the same function the sidecar uses (a hash of the pod's name)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name") or "")
    weights = [(b.name, b.weight) for b in weight_bars(obj)]
    delivered = condition(obj, "Delivered")
    waiting_text = ""
    if delivered.get("reason") == "PodsPending":
        waiting_text = str(delivered.get("message") or "").partition("waiting for ")[2]
    waiting = {w.strip(" .") for w in waiting_text.split(",")}
    out = []
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        try:
            selector = parse_selector(
                (pmeta.get("annotations") or {}).get(objects.SELECTOR_ANNOTATION)
            )
        except SelectorError:
            continue
        if not selector.matches(labels):
            continue
        pod_name = str(pmeta.get("name") or "")
        out.append(
            PodView(
                pod_name,
                choose_variant(pod_name, name, weights) if weights else None,
                str((pod.get("status") or {}).get("phase") or ""),
                pod_name in waiting,
            )
        )
    return sorted(out, key=lambda p: (not p.waiting, p.name))


# -- GitOps -------------------------------------------------------------------------------


def managed_elsewhere(obj: Mapping[str, Any]) -> str | None:
    """Why the console must not write this Prompt (a GitOps tool owns it), or None."""
    owner = gitops_owner(obj)
    if owner:
        return (
            f"it is managed by {owner} (its labels or annotations say so); "
            "a change made here is drift that the next sync undoes"
        )
    found = gitops_manager(obj)
    if found:
        tool, manager = found
        return (
            f"its spec is owned by {tool} (field manager {manager}); "
            "a change made here is drift that the next sync undoes"
        )
    return None
