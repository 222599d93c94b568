"""Reading a call document on the app's side (see ``prompt_contract.calls``).

Import these names from ``prompt_contract.calls``; they live here so that the
sidecar, which needs only that module's constants, never loads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calls import CALL_VERSION, FORMATS, MESSAGE_ROLES, PLACEHOLDER_ROLE, RESPONSE_TYPES
from .templates import MissingVariableError, RenderError, UnknownVariableError, render_template


class CallDocumentError(ValueError):
    """A call document that this reader cannot use; the message names the field."""


class MissingPlaceholderError(MissingVariableError):
    """A placeholder of the document got no conversation (``placeholders={name: [...]}``)."""


class UnknownPlaceholderError(UnknownVariableError):
    """A conversation was given for a placeholder the document does not have."""


class PlaceholderValueError(RenderError, TypeError):
    """A placeholder's conversation is not a list of role messages."""


@dataclass(frozen=True)
class Message:
    """One message of the document: ``content`` is a template; a placeholder
    (role ``placeholder``) has a ``name`` and no content."""

    role: str
    content: str = ""
    name: str = ""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema for the arguments


@dataclass(frozen=True)
class ResponseFormat:
    type: str  # text, json_object or json_schema
    name: str = ""
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    description: str = ""


@dataclass(frozen=True)
class ModelConfig:
    name: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    response_format: ResponseFormat | None = None


@dataclass(frozen=True)
class CallDocument:
    """A parsed call document: ``messages`` for a chat Prompt, ``template`` for a text."""

    version: int
    format: str
    variables: tuple[str, ...]
    defaults: Mapping[str, str]
    messages: tuple[Message, ...] | None = None
    template: str | None = None
    model: ModelConfig | None = None


def parse_call(text: str | bytes) -> CallDocument:
    """The call document in ``text``; ``CallDocumentError`` naming the field when unusable.

    Fields this reader does not know are ignored (a newer operator may add
    some); a ``version`` newer than ``CALL_VERSION`` is refused.
    """
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise CallDocumentError(f"call document: not JSON ({exc})") from None
    doc = _object(raw, "call document")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CallDocumentError(f"version: expected a positive integer, got {version!r}")
    if version > CALL_VERSION:
        raise CallDocumentError(
            f"version: {version} is newer than this reader understands ({CALL_VERSION}); "
            "update prompt-contract"
        )
    fmt = doc.get("format", "python")
    if fmt not in FORMATS:
        raise CallDocumentError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if ("messages" in doc) == ("template" in doc):
        raise CallDocumentError("messages, template: expected exactly one of them")
    defaults = _object(doc.get("defaults", {}), "defaults")
    return CallDocument(
        version=version,
        format=fmt,
        variables=tuple(
            _string(v, f"variables[{i}]")
            for i, v in enumerate(_list(doc.get("variables", []), "variables"))
        ),
        defaults={k: _string(v, f"defaults.{k}") for k, v in defaults.items()},
        messages=_messages(doc["messages"]) if "messages" in doc else None,
        template=_string(doc["template"], "template") if "template" in doc else None,
        model=_model(doc["model"]) if doc.get("model") is not None else None,
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CallDocumentError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CallDocumentError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CallDocumentError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _messages(value: Any) -> tuple[Message, ...]:
    found = []
    for i, item in enumerate(_list(value, "messages")):
        where = f"messages[{i}]"
        entry = _object(item, where)
        role = entry.get("role")
        if role == PLACEHOLDER_ROLE:
            found.append(Message(role, name=_string(entry.get("name"), f"{where}.name")))
        elif role in MESSAGE_ROLES:
            found.append(Message(role, _string(entry.get("content"), f"{where}.content")))
        else:
            known = ", ".join((*MESSAGE_ROLES, PLACEHOLDER_ROLE))
            raise CallDocumentError(f"{where}.role: expected one of {known}, got {role!r}")
    return tuple(found)


def _model(value: Any) -> ModelConfig:
    model = _object(value, "model")
    tools = []
    for i, item in enumerate(_list(model.get("tools", []), "model.tools")):
        where = f"model.tools[{i}]"
        tool = _object(item, where)
        tools.append(
            Tool(
                _string(tool.get("name"), f"{where}.name"),
                _string(tool.get("description", ""), f"{where}.description"),
                _object(tool.get("parameters", {}), f"{where}.parameters"),
            )
        )
    answer = model.get("responseFormat")
    return ModelConfig(
        name=_string(model.get("name", ""), "model.name"),
        parameters=_object(model.get("parameters", {}), "model.parameters"),
        tools=tuple(tools),
        response_format=None if answer is None else _response_format(answer),
    )


def _response_format(value: Any) -> ResponseFormat:
    answer = _object(value, "model.responseFormat")
    kind = answer.get("type")
    if kind not in RESPONSE_TYPES:
        raise CallDocumentError(
            f"model.responseFormat.type: expected one of {', '.join(RESPONSE_TYPES)}, got {kind!r}"
        )
    schema = answer.get("schema")
    if kind == "json_schema" and not isinstance(schema, dict):
        raise CallDocumentError("model.responseFormat.schema: expected a JSON Schema object")
    strict = answer.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise CallDocumentError(
            f"model.responseFormat.strict: expected true or false, got {strict!r}"
        )
    return ResponseFormat(
        kind,
        _string(answer.get("name", ""), "model.responseFormat.name"),
        schema if isinstance(schema, dict) else None,
        strict,
        _string(answer.get("description", ""), "model.responseFormat.description"),
    )


# -- filling in and calling ------------------------------------------------------------

TEXT_ROLE = "system"  # a text Prompt with a model configuration is one message of this role
# What Anthropic's messages.create accepts of the parameters (stop is renamed
# stop_sequences); every other parameter has no equivalent there and is left out.
# What the Anthropic SDK's messages.create takes (anthropic 2.17 has no temperature,
# top_p or top_k any more: they are left out like the other sampling parameters).
ANTHROPIC_PARAMETERS = ("max_tokens", "metadata")


def render_messages(
    doc: CallDocument,
    variables: Mapping[str, Any] | None = None,
    placeholders: Mapping[str, Any] | None = None,
    *,
    prompt: str = "prompt",
) -> list[dict[str, Any]]:
    """The document's messages filled in: each content rendered with the
    template rules under the document's format, variables and defaults, and
    each placeholder replaced by the app's conversation ``placeholders[name]``
    (a list of ``{"role", "content", ...}`` dicts, inserted as given).

    A text document (``template``) is one message of role ``TEXT_ROLE``.
    Raises ``MissingVariableError`` / ``UnknownVariableError`` for variables
    and ``MissingPlaceholderError`` / ``UnknownPlaceholderError`` /
    ``PlaceholderValueError`` for placeholders; each names the prompt.
    """
    values = dict(variables or {})
    conversations = dict(placeholders or {})
    if doc.format == "raw" and values:
        unknown = tuple(values)
        raise UnknownVariableError(
            f"prompt {prompt!r} has format raw and takes no variables (got: {', '.join(unknown)})",
            unknown,
        )
    listed = doc.messages if doc.messages is not None else (Message(TEXT_ROLE, doc.template or ""),)
    names = [m.name for m in listed if m.role == PLACEHOLDER_ROLE]
    unknown = tuple(name for name in conversations if name not in names)
    if unknown:
        raise UnknownPlaceholderError(
            f"prompt {prompt!r}: unknown placeholder(s) {', '.join(unknown)} "
            f"(placeholders: {', '.join(names) or 'none'})",
            unknown,
        )
    out: list[dict[str, Any]] = []
    for message in listed:
        if message.role != PLACEHOLDER_ROLE:
            content = message.content
            if doc.format != "raw":
                content = render_template(
                    content, values, defaults=doc.defaults, prompt=prompt, declared=doc.variables
                )
            out.append({"role": message.role, "content": content})
        elif message.name in conversations:
            out.extend(_conversation(conversations[message.name], prompt, message.name))
        else:
            raise MissingPlaceholderError(
                f"prompt {prompt!r}: missing conversation for placeholder {message.name!r}: "
                f"pass placeholders={{{message.name!r}: [...]}} (an empty list for none)",
                (message.name,),
            )
    return out


def _conversation(value: Any, prompt: str, name: str) -> list[dict[str, Any]]:
    """The app's messages for placeholder ``name``, checked to be a list of role messages."""
    if not isinstance(value, (list, tuple)):
        raise PlaceholderValueError(
            f"prompt {prompt!r}: placeholder {name!r} takes a list of messages, "
            f"got {type(value).__name__}"
        )
    found = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise PlaceholderValueError(
                f"prompt {prompt!r}: placeholder {name!r}[{i}] is not a message "
                "(a dict with a 'role')"
            )
        found.append(dict(item))
    return found


def openai_arguments(
    model: ModelConfig | None, messages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Keyword arguments for OpenAI-style ``client.chat.completions.create(**kwargs)``.

    ``model``, ``messages``, every parameter as given, ``tools`` as function
    tools and ``response_format`` (a ``text`` response format is left out:
    it is the API's default).
    """
    model = model or ModelConfig()
    args: dict[str, Any] = {"model": model.name} if model.name else {}
    args["messages"] = [dict(m) for m in messages]
    args.update((k, v) for k, v in model.parameters.items() if k not in ("model", "messages"))
    if model.tools:
        args["tools"] = [
            {"type": "function", "function": _function(tool, "parameters")} for tool in model.tools
        ]
    answer = model.response_format
    if answer is not None and answer.type == "json_object":
        args["response_format"] = {"type": "json_object"}
    elif answer is not None and answer.type == "json_schema":
        schema: dict[str, Any] = {"name": answer.name or "response", "schema": answer.schema}
        if answer.description:
            schema["description"] = answer.description
        if answer.strict is not None:
            schema["strict"] = answer.strict
        args["response_format"] = {"type": "json_schema", "json_schema": schema}
    return args


def anthropic_arguments(
    model: ModelConfig | None, messages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Keyword arguments for Anthropic-style ``client.messages.create(**kwargs)``.

    System and developer messages are joined (blank line between) into
    ``system``; user and assistant messages stay in ``messages``. Of the
    parameters, ``ANTHROPIC_PARAMETERS`` pass as given and ``stop`` becomes
    ``stop_sequences``; the rest (temperature, top_p, frequency_penalty, seed,
    n, logit_bias, ...) has no keyword in the current SDK and is left out (an
    app on an older API reads ``call.model.parameters`` itself). Tools become
    ``{name, description, input_schema}``; a JSON Schema response format
    becomes ``output_config={"format": ...}``; ``json_object`` has no
    equivalent and is left out.
    """
    model = model or ModelConfig()
    system = [
        str(m.get("content", "")) for m in messages if m.get("role") in ("system", "developer")
    ]
    args: dict[str, Any] = {"model": model.name} if model.name else {}
    if system:
        args["system"] = "\n\n".join(system)
    args["messages"] = [dict(m) for m in messages if m.get("role") not in ("system", "developer")]
    args.update((k, v) for k, v in model.parameters.items() if k in ANTHROPIC_PARAMETERS)
    stop = model.parameters.get("stop")
    if stop is not None:
        args["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if model.tools:
        args["tools"] = [_function(tool, "input_schema") for tool in model.tools]
    answer = model.response_format
    if answer is not None and answer.type == "json_schema":
        args["output_config"] = {"format": {"type": "json_schema", "schema": answer.schema}}
    return args


def _function(tool: Tool, schema_key: str) -> dict[str, Any]:
    found: dict[str, Any] = {"name": tool.name}
    if tool.description:
        found["description"] = tool.description
    found[schema_key] = dict(tool.parameters)
    return found
