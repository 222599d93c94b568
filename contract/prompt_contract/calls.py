"""The call document: one JSON file with everything an app needs for an LLM call.

A text Prompt without a model configuration is served as its text, exactly as
always. A Prompt with chat messages or a model configuration is served as one
JSON object, the *call document*, written to ``<key>.json`` (see
docs/file-contract.md for every field)::

    {
      "version": 1,
      "format": "python",                      # how each text is rendered
      "variables": ["customer"],               # declared names
      "defaults": {"customer": "there"},
      "messages": [                            # or "template": "<text>"
        {"role": "system", "content": "You help {customer}."},
        {"role": "placeholder", "name": "history"},
        {"role": "user", "content": "{question}"}
      ],
      "model": {                               # absent when the Prompt has none
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 512},
        "tools": [{"name": "...", "description": "...", "parameters": {...}}],
        "responseFormat": {"type": "json_schema", "name": "...", "schema": {...}}
      }
    }

The operator builds it (``call_document``) and serialises it canonically
(``dump_call``), so the same spec always gives the same bytes and revision.

Apps read it with ``parse_call`` (typed, unknown fields tolerated, the version
checked), fill it in with ``render_messages`` (the app's conversation goes in
at each placeholder, as Langfuse's ``compile(placeholders={"history": [...]})``
does) and turn it into the keyword arguments of an OpenAI-style
``chat.completions.create`` (``openai_arguments``) or an Anthropic-style
``messages.create`` (``anthropic_arguments``). The sidecar only needs the
constants, so those app-side functions and types live in ``call_reading`` and
load on first use from here (as ``prompt_client`` loads its registry): every
pod's sidecar stays as small as before call documents.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .call_reading import (
        ANTHROPIC_PARAMETERS,
        TEXT_ROLE,
        CallDocument,
        CallDocumentError,
        Message,
        MissingPlaceholderError,
        ModelConfig,
        PlaceholderValueError,
        ResponseFormat,
        Tool,
        UnknownPlaceholderError,
        anthropic_arguments,
        openai_arguments,
        parse_call,
        render_messages,
    )

__all__ = [
    "ANTHROPIC_PARAMETERS",
    "CALL_EXT",
    "CALL_FORM",
    "CALL_VERSION",
    "FORMATS",
    "MESSAGE_ROLES",
    "PLACEHOLDER_ROLE",
    "RESPONSE_TYPES",
    "TEXT_ROLE",
    "CallDocument",
    "CallDocumentError",
    "Message",
    "MissingPlaceholderError",
    "ModelConfig",
    "PlaceholderValueError",
    "ResponseFormat",
    "Tool",
    "UnknownPlaceholderError",
    "anthropic_arguments",
    "call_document",
    "dump_call",
    "openai_arguments",
    "parse_call",
    "render_messages",
]

CALL_FORM = "call"  # metadata "form" of a call document; a text has no "form"
CALL_EXT = ".json"  # a call document's file is <key>.json, whatever the text extension
CALL_VERSION = 1
MESSAGE_ROLES = ("system", "developer", "user", "assistant")
FORMATS = ("python", "raw")  # how each content is rendered: {placeholders}, or as is
RESPONSE_TYPES = ("text", "json_object", "json_schema")
_READING = (
    "ANTHROPIC_PARAMETERS",
    "TEXT_ROLE",
    "CallDocument",
    "CallDocumentError",
    "Message",
    "MissingPlaceholderError",
    "ModelConfig",
    "PlaceholderValueError",
    "ResponseFormat",
    "Tool",
    "UnknownPlaceholderError",
    "anthropic_arguments",
    "openai_arguments",
    "parse_call",
    "render_messages",
)


def __getattr__(name: str) -> Any:
    if name in _READING:
        from . import call_reading

        return getattr(call_reading, name)
    raise AttributeError(f"module 'prompt_contract.calls' has no attribute {name!r}")


PLACEHOLDER_ROLE = "placeholder"  # {"role": "placeholder", "name": ...}: the app's conversation


def call_document(
    *,
    format: str,
    variables: Sequence[str],
    defaults: Mapping[str, str],
    template: str | None = None,
    messages: Sequence[Mapping[str, str]] | None = None,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The call document for a text (``template``) or chat (``messages``) Prompt."""
    if (template is None) == (messages is None):
        raise ValueError("a call document has a template or messages, exactly one")
    doc: dict[str, Any] = {
        "version": CALL_VERSION,
        "format": format,
        "variables": list(variables),
        "defaults": dict(defaults),
    }
    if messages is not None:
        doc["messages"] = [dict(m) for m in messages]
    else:
        doc["template"] = template
    if model:
        doc["model"] = dict(model)
    return doc


def dump_call(doc: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces, UTF-8 as is): same document, same bytes."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
