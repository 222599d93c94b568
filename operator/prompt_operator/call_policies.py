"""Checks on chat messages and model configurations (spec.messages, spec.model,
and the same fields of every variant and schedule entry).

Each problem names the field (``spec.messages[2].role``). Tool and response
schemas are checked as JSON Schemas (Draft 2020-12) with ``jsonschema``, which
is imported only when a Prompt has one: most Prompts have none, and the import
costs the operator memory it would otherwise never use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from prompt_contract.calls import MESSAGE_ROLES, PLACEHOLDER_ROLE

from .model import Message, ModelConfig, Prompt

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_PARAMETERS_BYTES = 16 * 1024
MAX_STOP_SEQUENCES = 4
RESPONSE_TYPES = ("text", "json_object", "json_schema")
# key: (kind, low, high); kind "number" or "integer"; None is unbounded.
_BOUNDED: dict[str, tuple[str, float | None, float | None]] = {
    "temperature": ("number", 0, 2),
    "top_p": ("number", 0, 1),
    "max_tokens": ("integer", 1, None),
    "max_completion_tokens": ("integer", 1, None),
    "presence_penalty": ("number", -2, 2),
    "frequency_penalty": ("number", -2, 2),
    "seed": ("integer", None, None),
    "n": ("integer", 1, None),
}


def calls(
    prompt: Prompt,
) -> Iterator[tuple[str, tuple[Message, ...] | None, ModelConfig | None, bool]]:
    """Every (where, messages, model, has template) in the spec, top level first."""
    yield "spec", prompt.messages, prompt.model, bool(prompt.template)
    for i, v in enumerate(prompt.variants):
        yield f"spec.variants[{i}]", v.messages, v.model, v.template is not None
    for i, entry in enumerate(prompt.schedule):
        where = f"spec.schedule[{i}]"
        yield where, entry.messages, entry.model, entry.template is not None
        for j, v in enumerate(entry.variants):
            yield f"{where}.variants[{j}]", v.messages, v.model, v.template is not None


def messages_problem(
    messages: tuple[Message, ...], where: str, declared: tuple[str, ...]
) -> str | None:
    if not messages:
        return f"{where}: give at least one message"
    names: set[str] = set()
    for i, message in enumerate(messages):
        at = f"{where}[{i}]"
        if message.role == PLACEHOLDER_ROLE:
            if not _IDENTIFIER.fullmatch(message.name):
                return f"{at}.name: a placeholder needs a name, a plain identifier such as history"
            if message.name in names or message.name in declared:
                return (
                    f"{at}.name: {message.name!r} is already a placeholder or a declared "
                    "variable; give each placeholder its own name"
                )
            if message.content:
                return f"{at}.content: a placeholder has no content (the app fills it)"
            names.add(message.name)
        elif message.role not in MESSAGE_ROLES:
            roles = ", ".join((*MESSAGE_ROLES, PLACEHOLDER_ROLE))
            return f"{at}.role: {message.role!r} is not a role; use one of {roles}"
        elif not message.content:
            return f"{at}.content: a {message.role} message needs content"
    return None


def _number_problem(key: str, value: Any, where: str) -> str | None:
    kind, low, high = _BOUNDED[key]
    is_int = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind == "integer" and not is_int)
    ):
        return f"{where}.{key} must be {'an integer' if kind == 'integer' else 'a number'}"
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        return f"{where}.{key} is {value}; it must be {bounds}"
    return None


def parameters_problem(parameters: Mapping[str, Any], where: str) -> str | None:
    size = len(json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_PARAMETERS_BYTES:
        return f"{where} takes {size:,} bytes as JSON; at most {MAX_PARAMETERS_BYTES:,}"
    for key, value in parameters.items():
        if key in _BOUNDED:
            why = _number_problem(key, value, where)
            if why:
                return why
    stop = parameters.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and (
            not isinstance(stop, list)
            or len(stop) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) for s in stop)
        )
    ):
        return f"{where}.stop must be a string or a list of at most 4 strings"
    return None


def schema_problem(schema: Any, where: str) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (Draft 2020-12), or None."""
    from jsonschema import Draft202012Validator, SchemaError  # lazily: see the module doc

    if not isinstance(schema, (Mapping, bool)):
        return f"{where} must be a JSON Schema object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        return f"{where}{path} is not a valid JSON Schema: {exc.message}"
    return None


def tools_problem(model: ModelConfig, where: str) -> str | None:
    seen: set[str] = set()
    for i, tool in enumerate(model.tools):
        at = f"{where}.tools[{i}]"
        if not _TOOL_NAME.fullmatch(tool.name):
            return f"{at}.name {tool.name!r} must be 1 to 64 letters, digits, '_' or '-'"
        if tool.name in seen:
            return f"{at}.name: two tools are named {tool.name!r}; names must be unique"
        seen.add(tool.name)
        why = schema_problem(tool.parameters, f"{at}.parameters")
        if why:
            return why
    return None


def response_format_problem(model: ModelConfig, where: str) -> str | None:
    fmt = model.response_format
    if fmt is None:
        return None
    at = f"{where}.responseFormat"
    kind = fmt.get("type")
    if kind not in RESPONSE_TYPES:
        return f"{at}.type is {kind!r}; use one of {', '.join(RESPONSE_TYPES)}"
    if kind != "json_schema":
        return None
    name = fmt.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        return (
            f"{at}.name: a json_schema response needs a name of 1 to 64 letters, digits, '_' or '-'"
        )
    if "schema" not in fmt:
        return f"{at}.schema: a json_schema response needs a schema"
    return schema_problem(fmt["schema"], f"{at}.schema")
