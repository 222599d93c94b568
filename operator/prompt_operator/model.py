"""Typed values parsed once from a Prompt object; the rest of the code trusts them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prompt_contract.calls import PLACEHOLDER_ROLE

if TYPE_CHECKING:
    from .rollouts.model import Rollout

DEFAULT_HISTORY_LIMIT = 10
# The CRD's rule for schedule times, so offline checks and the operator agree with it.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class SpecError(ValueError):
    """The raw object does not have the shape the CRD promises (old CRD, bad import)."""


@dataclass(frozen=True)
class Variable:
    name: str
    description: str = ""
    default: str | None = None


@dataclass(frozen=True)
class Message:
    """One chat message: ``content`` is a template (the Prompt's format and
    variables rules); a ``placeholder`` has a ``name`` and no content: the app
    puts its own conversation there."""

    role: str  # system, developer, user, assistant or placeholder
    content: str = ""
    name: str = ""

    def to_document(self) -> dict[str, str]:
        if self.role == PLACEHOLDER_ROLE:
            return {"role": self.role, "name": self.name}
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema for the arguments

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            doc["description"] = self.description
        return doc


@dataclass(frozen=True)
class ModelConfig:
    """spec.model: which model, its parameters, tools and response format, as given."""

    name: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    response_format: Mapping[str, Any] | None = None

    def to_document(self) -> dict[str, Any]:
        """The call document's "model" (spec field names, empty parts left out)."""
        doc: dict[str, Any] = {}
        if self.name:
            doc["name"] = self.name
        if self.parameters:
            doc["parameters"] = dict(self.parameters)
        if self.tools:
            doc["tools"] = [tool.to_document() for tool in self.tools]
        if self.response_format is not None:
            doc["responseFormat"] = dict(self.response_format)
        return doc


@dataclass(frozen=True)
class Include:
    """spec.includes[]: ``{name}`` in this Prompt's texts is the text of Prompt
    ``prompt`` of the same namespace, resolved when a revision is built."""

    name: str
    prompt: str


@dataclass(frozen=True)
class Variant:
    """One A/B alternative. ``template`` and ``messages`` None keep the text of the
    spec.variants entry of the same name (schedule entries); ``model`` None keeps
    the spec's model."""

    name: str
    weight: int
    template: str | None
    messages: tuple[Message, ...] | None = None
    model: ModelConfig | None = None


@dataclass(frozen=True)
class ScheduleEntry:
    """Text (or variants) that takes effect at ``at``."""

    at: datetime  # timezone-aware
    at_text: str  # as written in the spec, for messages and status
    template: str | None
    variants: tuple[Variant, ...] = ()
    messages: tuple[Message, ...] | None = None
    model: ModelConfig | None = None  # None: the spec's model


@dataclass(frozen=True)
class PromptRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Prompt:
    """One Prompt as the operator needs it: identity, spec and the status it last wrote."""

    ref: PromptRef
    uid: str
    generation: int
    created: str  # metadata.creationTimestamp; the older of two Prompts keeps a key
    labels: Mapping[str, str]
    template: str
    format: str  # "python" or "raw"
    key: str
    variables: tuple[Variable, ...]
    status: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()  # with variants, ``template`` is ""
    schedule: tuple[ScheduleEntry, ...] = ()  # sorted by time
    history_limit: int = DEFAULT_HISTORY_LIMIT
    messages: tuple[Message, ...] | None = None  # a chat Prompt; then ``template`` is ""
    model: ModelConfig | None = None
    includes: tuple[Include, ...] = ()
    rollout: Rollout | None = None  # spec.rollout: a change goes out by steps

    @property
    def declared(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    @property
    def defaults(self) -> dict[str, str]:
        return {v.name: v.default for v in self.variables if v.default is not None}


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the API server stores 2.0 as 2 for an integer field
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} must be an integer, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise SpecError(f"{where}[{i}] must be an object")
    return value


def parse_time(text: str, where: str) -> datetime:
    """An RFC 3339 time with a zone (``Z`` or an offset); anything else is a SpecError."""
    when = None
    if RFC3339.fullmatch(text):
        try:
            when = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:  # month 13, hour 25, ...
            when = None
    if when is None:
        raise SpecError(
            f"{where} is {text!r}: use an RFC 3339 time with a zone, "
            "such as 2026-12-24T18:00:00+01:00 or 2026-12-24T17:00:00Z"
        )
    return when


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be an object")
    return value


def _messages(raw: Any, where: str) -> tuple[Message, ...] | None:
    if raw is None:
        return None
    messages = []
    for i, item in enumerate(_list(raw, where)):
        role = _str(item.get("role"), f"{where}[{i}].role")
        content, name = item.get("content"), item.get("name")
        messages.append(
            Message(
                role=role,
                content="" if content is None else _str(content, f"{where}[{i}].content"),
                name="" if name is None else _str(name, f"{where}[{i}].name"),
            )
        )
    return tuple(messages)


def _tools(raw: Any, where: str) -> tuple[Tool, ...]:
    tools = []
    for i, item in enumerate(_list(raw, where)):
        parameters = item.get("parameters")
        tools.append(
            Tool(
                name=_str(item.get("name"), f"{where}[{i}].name"),
                description=_str(item.get("description") or "", f"{where}[{i}].description"),
                parameters={}
                if parameters is None
                else _object(parameters, f"{where}[{i}].parameters"),
            )
        )
    return tuple(tools)


def _model(raw: Any, where: str) -> ModelConfig | None:
    if raw is None:
        return None
    raw = _object(raw, where)
    response_format = raw.get("responseFormat")
    return ModelConfig(
        name=_str(raw.get("name") or "", f"{where}.name"),
        parameters=dict(_object(raw.get("parameters") or {}, f"{where}.parameters")),
        tools=_tools(raw.get("tools"), f"{where}.tools"),
        response_format=None
        if response_format is None
        else _object(response_format, f"{where}.responseFormat"),
    )


def _includes(raw: Any) -> tuple[Include, ...]:
    return tuple(
        Include(
            name=_str(item.get("name"), f"spec.includes[{i}].name"),
            prompt=_str(item.get("prompt"), f"spec.includes[{i}].prompt"),
        )
        for i, item in enumerate(_list(raw, "spec.includes"))
    )


def _variants(raw: Any, where: str) -> tuple[Variant, ...]:
    variants = []
    for i, item in enumerate(_list(raw, where)):
        template = item.get("template")
        variants.append(
            Variant(
                name=_str(item.get("name"), f"{where}[{i}].name"),
                weight=_int(item.get("weight"), f"{where}[{i}].weight"),
                template=None if template is None else _str(template, f"{where}[{i}].template"),
                messages=_messages(item.get("messages"), f"{where}[{i}].messages"),
                model=_model(item.get("model"), f"{where}[{i}].model"),
            )
        )
    return tuple(variants)


def _schedule(raw: Any) -> tuple[ScheduleEntry, ...]:
    entries = []
    for i, item in enumerate(_list(raw, "spec.schedule")):
        where = f"spec.schedule[{i}]"
        at_text = _str(item.get("at"), f"{where}.at")
        template = item.get("template")
        entries.append(
            ScheduleEntry(
                at=parse_time(at_text, f"{where}.at"),
                at_text=at_text,
                template=None if template is None else _str(template, f"{where}.template"),
                variants=_variants(item.get("variants"), f"{where}.variants"),
                messages=_messages(item.get("messages"), f"{where}.messages"),
                model=_model(item.get("model"), f"{where}.model"),
            )
        )
    return tuple(sorted(entries, key=lambda e: e.at))


def parse_prompt(body: Mapping[str, Any]) -> Prompt:
    """Turn a Prompt object (as the API returns it) into a ``Prompt``.

    Raises ``SpecError`` when a field has the wrong type: the CRD's schema
    prevents that, but an object stored under an older schema might not.
    """
    from .rollouts.model import parse_rollout  # it raises this module's SpecError

    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise SpecError("spec must be an object")
    name = _str(meta.get("name"), "metadata.name")
    raw_vars = spec.get("variables") or []
    if not isinstance(raw_vars, list):
        raise SpecError("spec.variables must be a list")
    variables = []
    for i, item in enumerate(raw_vars):
        if not isinstance(item, Mapping):
            raise SpecError(f"spec.variables[{i}] must be an object")
        default = item.get("default")
        variables.append(
            Variable(
                name=_str(item.get("name"), f"spec.variables[{i}].name"),
                description=str(item.get("description") or ""),
                default=None if default is None else _str(default, f"spec.variables[{i}].default"),
            )
        )
    template = spec.get("template")
    limit = spec.get("revisionHistoryLimit")
    return Prompt(
        ref=PromptRef(_str(meta.get("namespace"), "metadata.namespace"), name),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        created=str(meta.get("creationTimestamp") or ""),
        labels=dict(meta.get("labels") or {}),
        template=_str(template, "spec.template") if template is not None else "",
        format=str(spec.get("format") or "python"),
        key=_str(spec.get("key") or name, "spec.key"),
        variables=tuple(variables),
        status=dict(body.get("status") or {}),
        variants=_variants(spec.get("variants"), "spec.variants"),
        schedule=_schedule(spec.get("schedule")),
        history_limit=DEFAULT_HISTORY_LIMIT
        if limit is None
        else max(1, _int(limit, "spec.revisionHistoryLimit")),
        messages=_messages(spec.get("messages"), "spec.messages"),
        model=_model(spec.get("model"), "spec.model"),
        includes=_includes(spec.get("includes")),
        rollout=parse_rollout(spec.get("rollout")),
    )
