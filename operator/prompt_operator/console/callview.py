"""Pure functions from a chat Prompt's spec, or a stored call document, to what the
console shows: messages, the model and its tools, a rendered preview, includes,
and the parts a revision diff compares one by one.

Everything reads raw dicts, not the operator's parsed model: a stored revision or
an object the webhook never saw may hold anything (an unknown role, a tool that
is not a mapping), and a page must show it rather than fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import calls, objects
from prompt_contract.templates import RenderError, TemplateError, render_template

# A tool's schema beyond this is cut on the page (the revision diff still has it whole).
SCHEMA_SHOWN_CHARS = 20_000


def pretty(value: Any) -> str:
    """JSON for people: indented, keys sorted, so equal values print equally."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class MessageView:
    role: str
    content: str
    name: str  # a placeholder's name: where the app's conversation goes
    known: bool  # a role the contract knows; an unknown one is shown, marked

    @property
    def placeholder(self) -> bool:
        return self.role == calls.PLACEHOLDER_ROLE


def messages(raw: Any) -> list[MessageView]:
    """The messages of ``spec.messages`` or of a call document, as given."""
    out = []
    for m in raw if isinstance(raw, list) else []:
        if not isinstance(m, Mapping):
            out.append(MessageView("?", pretty(m), "", False))
            continue
        role = str(m.get("role") or "")
        known = role in calls.MESSAGE_ROLES or role == calls.PLACEHOLDER_ROLE
        out.append(MessageView(role, str(m.get("content") or ""), str(m.get("name") or ""), known))
    return out


@dataclass(frozen=True)
class ToolView:
    name: str
    description: str
    schema: str  # pretty JSON, cut at SCHEMA_SHOWN_CHARS
    cut: int  # characters left out, 0 when whole


@dataclass(frozen=True)
class ModelView:
    name: str
    parameters: list[tuple[str, str]]  # (name, JSON value), sorted
    tools: list[ToolView]
    response_format: str | None  # pretty JSON


def _tool(raw: Any) -> ToolView:
    if not isinstance(raw, Mapping):
        return ToolView("?", "", pretty(raw), 0)
    schema = pretty(raw.get("parameters") or {})
    cut = max(0, len(schema) - SCHEMA_SHOWN_CHARS)
    return ToolView(
        str(raw.get("name") or ""),
        str(raw.get("description") or ""),
        schema[:SCHEMA_SHOWN_CHARS],
        cut,
    )


def model(raw: Any) -> ModelView | None:
    """``spec.model`` (or a call document's "model") for display; None when absent."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    params = raw.get("parameters")
    params = params if isinstance(params, Mapping) else {}
    tools = raw.get("tools")
    response = raw.get("responseFormat")
    return ModelView(
        name=str(raw.get("name") or ""),
        parameters=sorted((str(k), json.dumps(v, ensure_ascii=False)) for k, v in params.items()),
        tools=[_tool(t) for t in tools] if isinstance(tools, list) else [],
        response_format=None if response is None else pretty(response),
    )


def is_chat(spec: Mapping[str, Any]) -> bool:
    """Whether the page shows messages: the spec or one of its variants has them."""
    variants = spec.get("variants") or []
    return "messages" in spec or any(isinstance(v, Mapping) and "messages" in v for v in variants)


@dataclass(frozen=True)
class VariantOverride:
    name: str
    weight: int
    overrides: list[str]  # "template", "messages", "model": what it sets itself
    messages: list[MessageView] | None
    model: ModelView | None


def variant_overrides(spec: Mapping[str, Any]) -> list[VariantOverride]:
    out = []
    for v in spec.get("variants") or []:
        if not isinstance(v, Mapping):
            continue
        own = [field for field in ("template", "messages", "model") if field in v]
        chat = messages(v["messages"]) if "messages" in v else None
        out.append(
            VariantOverride(
                str(v.get("name")), int(v.get("weight") or 0), own, chat, model(v.get("model"))
            )
        )
    return out


# -- includes ------------------------------------------------------------------------


def includes(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(placeholder name, included Prompt) of ``spec.includes``."""
    return [
        (str(i.get("name") or ""), str(i.get("prompt") or ""))
        for i in spec.get("includes") or []
        if isinstance(i, Mapping)
    ]


def included_by(name: str, items: Iterable[Mapping[str, Any]]) -> list[str]:
    """The Prompts among ``items`` (one namespace's) whose spec.includes name ``name``."""
    found = {
        str((o.get("metadata") or {}).get("name") or "")
        for o in items
        if any(prompt == name for _, prompt in includes(o.get("spec") or {}))
    }
    return sorted(found - {""})


# -- preview -------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedMessage:
    role: str
    content: str  # for a placeholder: its name
    placeholder: bool


@dataclass(frozen=True)
class MessagesPreview:
    messages: list[RenderedMessage]
    error: str | None


def render_messages(
    chat: Sequence[MessageView],
    values: Mapping[str, str],
    *,
    fmt: str,
    defaults: Mapping[str, str],
    prompt: str,
    declared: Sequence[str],
) -> list[RenderedMessage]:
    """Each message's content rendered like a text Prompt's; a placeholder left as a slot.
    The one place to swap for ``prompt_contract.calls.render_messages`` once it exists."""
    out = []
    for m in chat:
        if m.placeholder:
            out.append(RenderedMessage(m.role, m.name, True))
        elif fmt == "raw":
            out.append(RenderedMessage(m.role, m.content, False))
        else:
            text = render_template(
                m.content, values, defaults=defaults, prompt=prompt, declared=tuple(declared)
            )
            out.append(RenderedMessage(m.role, text, False))
    return out


def preview_messages(
    spec: Mapping[str, Any], name: str, values: Mapping[str, str], variant: str = ""
) -> MessagesPreview:
    """The messages an app gets, sample ``values`` filled in (empty: the default)."""
    chosen: Any = spec.get("messages")
    for v in spec.get("variants") or []:
        if isinstance(v, Mapping) and str(v.get("name")) == variant and "messages" in v:
            chosen = v["messages"]
    declared = [str(v.get("name")) for v in spec.get("variables") or [] if isinstance(v, Mapping)]
    defaults = {
        str(v.get("name")): str(v["default"])
        for v in spec.get("variables") or []
        if isinstance(v, Mapping) and v.get("default") is not None
    }
    given = {k: v for k, v in values.items() if v != "" and k in declared}
    try:
        rendered = render_messages(
            messages(chosen),
            given,
            fmt=str(spec.get("format") or "python"),
            defaults=defaults,
            prompt=str(spec.get("key") or name),
            declared=declared,
        )
    except (RenderError, TemplateError) as exc:
        return MessagesPreview([], str(exc))
    return MessagesPreview(rendered, None)


# -- revision parts, for diffs -------------------------------------------------------


def call_parts(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A call document cut into the parts a diff compares one by one: each message,
    the model's name and parameters, each tool, the response format."""
    parts: list[tuple[str, str]] = []
    if "template" in doc:
        parts.append(("text", str(doc.get("template") or "")))
    for n, m in enumerate(messages(doc.get("messages")), 1):
        what = f"placeholder {m.name}" if m.placeholder else m.role
        parts.append((f"message {n} · {what}", m.name if m.placeholder else m.content))
    raw = doc.get("model")
    if isinstance(raw, Mapping):
        if "name" in raw:
            parts.append(("model", str(raw.get("name") or "")))
        if raw.get("parameters"):
            parts.append(("model parameters", pretty(raw.get("parameters"))))
        for t in raw.get("tools") or []:
            label = t.get("name") if isinstance(t, Mapping) else "?"
            parts.append((f"tool {label}", pretty(t)))
        if "responseFormat" in raw:
            parts.append(("response format", pretty(raw.get("responseFormat"))))
    return parts


def _document(raw: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(raw or "{}")
    except ValueError:
        return {"template": raw}  # not JSON: shown as the text it is
    return doc if isinstance(doc, Mapping) else {"template": raw}


def revision_parts(data: Mapping[str, str]) -> list[tuple[str, str]]:
    """(heading, text) of what a revision ConfigMap serves: its text, each variant's
    text, or each part of its call documents ("" heads a lone text)."""
    try:
        meta = json.loads(data.get(objects.METADATA_DATA_KEY) or "{}")
    except ValueError:
        meta = {}
    meta = meta if isinstance(meta, Mapping) else {}
    variants = [str(v.get("name")) for v in meta.get("variants") or [] if isinstance(v, Mapping)]
    call = meta.get("form") == calls.CALL_FORM
    if not variants:
        if call:
            return call_parts(_document(data.get(objects.CALL_DATA_KEY, "")))
        return [("", data.get(objects.TEXT_DATA_KEY, ""))]
    out: list[tuple[str, str]] = []
    for v in variants:
        raw = data.get(objects.variant_data_key(v), "")
        if call:
            out.extend(
                (f"variant {v} · {label}", text) for label, text in call_parts(_document(raw))
            )
        else:
            out.append((f"variant {v}", raw))
    return out
