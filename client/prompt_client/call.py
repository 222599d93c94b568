"""What ``PromptRegistry.call`` returns: one LLM call, filled in and ready to send.

A Prompt with chat messages or a model configuration arrives as a call
document (``prompt_contract.calls``); ``build_call`` fills it in. A text
Prompt without one arrives as its text and becomes one ``system`` message,
the text's usual job (instructions), with no model configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prompt_contract.calls import (
    TEXT_ROLE,
    ModelConfig,
    UnknownPlaceholderError,
    anthropic_arguments,
    openai_arguments,
    parse_call,
    render_messages,
)
from prompt_contract.templates import RenderError

from .scan import PromptInfo

__all__ = ["ChatPromptError", "PromptCall", "build_call", "render_call_text", "text_call"]


class ChatPromptError(RenderError, TypeError):
    """``render`` was asked for a chat Prompt, which has messages, not one text."""


@dataclass(frozen=True)
class PromptCall:
    """One call: rendered ``messages`` (the app's conversation in its placeholders),
    the ``model`` configuration (``None`` when the Prompt has none) and ``info``
    about the revision and variant it came from."""

    name: str
    messages: tuple[Mapping[str, Any], ...]
    model: ModelConfig | None
    info: PromptInfo

    def openai(self) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create(**call.openai())``."""
        return openai_arguments(self.model, self.messages)

    def anthropic(self) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create(**call.anthropic())``
        (system apart; see ``prompt_contract.calls.anthropic_arguments``)."""
        return anthropic_arguments(self.model, self.messages)


def build_call(
    name: str,
    document: str,
    info: PromptInfo,
    variables: Mapping[str, Any],
    placeholders: Mapping[str, Any] | None,
) -> PromptCall:
    """The call for prompt ``name`` served as call document ``document``.

    Raises ``CallDocumentError`` for a document this client cannot read and
    the render errors of ``render_messages``.
    """
    doc = parse_call(document)
    messages = render_messages(doc, variables, placeholders, prompt=name)
    return PromptCall(name, tuple(messages), doc.model, info)


def text_call(
    name: str, rendered: str, info: PromptInfo, placeholders: Mapping[str, Any] | None
) -> PromptCall:
    """The call for a text Prompt without a model configuration: its rendered
    text as one ``system`` message; a text has no placeholder for a conversation."""
    unknown = tuple(placeholders or ())
    if unknown:
        raise UnknownPlaceholderError(
            f"prompt {name!r}: unknown placeholder(s) {', '.join(unknown)} (placeholders: "
            "none; a text prompt is one system message: append your conversation to "
            "call.messages)",
            unknown,
        )
    return PromptCall(name, ({"role": TEXT_ROLE, "content": rendered},), None, info)


def render_call_text(name: str, text: str, variables: Mapping[str, Any]) -> str:
    """``render`` of a Prompt served as a call document: its template filled in,
    or ``ChatPromptError`` for chat messages, which only ``call`` can serve."""
    doc = parse_call(text)
    if doc.messages is not None:
        raise ChatPromptError(
            f"prompt {name!r} is a chat prompt (messages, not one text): use "
            f"call({name!r}, placeholders=..., **variables) and send call.openai() "
            "or call.anthropic()"
        )
    return str(render_messages(doc, variables, prompt=name)[0]["content"])
