"""Typed values parsed once from a Prompt object; the rest of the code trusts them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """The raw object does not have the shape the CRD promises (old CRD, bad import)."""


@dataclass(frozen=True)
class Variable:
    name: str
    description: str = ""
    default: str | None = None


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


def parse_prompt(body: Mapping[str, Any]) -> Prompt:
    """Turn a Prompt object (as the API returns it) into a ``Prompt``.

    Raises ``SpecError`` when a field has the wrong type: the CRD's schema
    prevents that, but an object stored under an older schema might not.
    """
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
    )
