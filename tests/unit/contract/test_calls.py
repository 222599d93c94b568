"""The call document on the app's side: parsing, filling in, and the OpenAI and
Anthropic call arguments (shapes as the two Python SDKs take them)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from prompt_contract.calls import (
    CallDocumentError,
    MissingPlaceholderError,
    PlaceholderValueError,
    UnknownPlaceholderError,
    anthropic_arguments,
    call_document,
    dump_call,
    openai_arguments,
    parse_call,
    render_messages,
)
from prompt_contract.templates import MissingVariableError, UnknownVariableError

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def chat(**model: Any) -> str:
    return dump_call(
        call_document(
            format="python",
            variables=["customer", "question"],
            defaults={"customer": "there"},
            messages=[
                {"role": "system", "content": "You help {customer}."},
                {"role": "developer", "content": "Answer in {{JSON}}."},
                {"role": "placeholder", "name": "history"},
                {"role": "user", "content": "{question}"},
            ],
            model=model or None,
        )
    )


FULL_MODEL = {
    "name": "gpt-4o-mini",
    "parameters": {"temperature": 0.2, "max_tokens": 512, "stop": "END", "seed": 7},
    "tools": [{"name": "weather", "description": "Weather in a city", "parameters": SCHEMA}],
    "responseFormat": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True},
}
HISTORY = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_a_chat_document_parses_into_typed_values() -> None:
    doc = parse_call(chat(**FULL_MODEL))
    assert doc.version == 1 and doc.format == "python" and doc.template is None
    assert doc.variables == ("customer", "question") and doc.defaults == {"customer": "there"}
    assert doc.messages is not None
    assert [(m.role, m.name) for m in doc.messages][2] == ("placeholder", "history")
    assert doc.model is not None and doc.model.name == "gpt-4o-mini"
    assert doc.model.tools[0].name == "weather" and doc.model.tools[0].parameters == SCHEMA
    assert doc.model.response_format is not None and doc.model.response_format.strict is True


def test_unknown_fields_are_tolerated_for_newer_operators() -> None:
    raw = json.loads(chat(name="m"))
    raw["cache"] = {"ttl": 5}
    raw["messages"][0]["cache_control"] = "ephemeral"
    raw["model"]["routing"] = "eu"
    doc = parse_call(json.dumps(raw))
    assert doc.messages is not None and doc.messages[0].content == "You help {customer}."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: "not json {", "not JSON"),
        (lambda d: "[1, 2]", "call document: expected a JSON object"),
        (lambda d: {**d, "version": 2}, "version: 2 is newer"),
        (lambda d: {**d, "version": "1"}, "version: expected a positive integer"),
        (lambda d: {**d, "format": "jinja"}, "format: expected one of python, raw"),
        (lambda d: {**d, "template": "x"}, "messages, template: expected exactly one"),
        (lambda d: {**d, "messages": {"role": "user"}}, "messages: expected a list"),
        (
            lambda d: {**d, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].role: expected one of system, developer, user, assistant, placeholder",
        ),
        (lambda d: {**d, "messages": [{"role": "user"}]}, "messages[0].content: expected a string"),
        (lambda d: {**d, "messages": [{"role": "placeholder"}]}, "messages[0].name"),
        (lambda d: {**d, "model": {"tools": [{"parameters": {}}]}}, "model.tools[0].name"),
        (
            lambda d: {**d, "model": {"responseFormat": {"type": "xml"}}},
            "model.responseFormat.type",
        ),
        (
            lambda d: {**d, "model": {"responseFormat": {"type": "json_schema"}}},
            "model.responseFormat.schema",
        ),
        (lambda d: {**d, "model": {"parameters": [1]}}, "model.parameters: expected a JSON object"),
        (lambda d: {**d, "defaults": {"customer": 3}}, "defaults.customer: expected a string"),
    ],
)
def test_unusable_documents_are_refused_naming_the_field(change: Any, field: str) -> None:
    changed = change(json.loads(chat()))
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(CallDocumentError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_call(text)


def test_messages_are_rendered_and_the_conversation_goes_in_the_placeholder() -> None:
    doc = parse_call(chat())
    messages = render_messages(doc, {"question": "Why?"}, {"history": HISTORY}, prompt="support")
    assert messages == [
        {"role": "system", "content": "You help there."},
        {"role": "developer", "content": "Answer in {JSON}."},
        *HISTORY,
        {"role": "user", "content": "Why?"},
    ]
    assert render_messages(doc, {"question": "q"}, {"history": []})[2] == {
        "role": "user",
        "content": "q",
    }


def test_placeholder_and_variable_mistakes_are_clear_errors() -> None:
    doc = parse_call(chat())
    with pytest.raises(MissingPlaceholderError, match="placeholder 'history'") as missing:
        render_messages(doc, {"question": "q"}, prompt="support")
    assert isinstance(missing.value, MissingVariableError) and "support" in str(missing.value)
    with pytest.raises(UnknownPlaceholderError, match=r"unknown placeholder.*chat"):
        render_messages(doc, {"question": "q"}, {"history": [], "chat": []})
    with pytest.raises(PlaceholderValueError, match="takes a list of messages, got str"):
        render_messages(doc, {"question": "q"}, {"history": "hi"})
    with pytest.raises(PlaceholderValueError, match=r"'history'\[1\] is not a message"):
        render_messages(doc, {"question": "q"}, {"history": [HISTORY[0], "hello"]})
    with pytest.raises(MissingVariableError, match="question"):
        render_messages(doc, {}, {"history": []})
    with pytest.raises(UnknownVariableError, match="colour"):
        render_messages(doc, {"question": "q", "colour": "red"}, {"history": []})


def test_raw_content_is_sent_as_is_and_takes_no_variables() -> None:
    doc = parse_call(
        dump_call(
            call_document(
                format="raw",
                variables=[],
                defaults={},
                messages=[{"role": "user", "content": "{x}"}],
            )
        )
    )
    assert render_messages(doc) == [{"role": "user", "content": "{x}"}]
    with pytest.raises(UnknownVariableError):
        render_messages(doc, {"x": "1"})


def test_a_text_document_is_one_system_message() -> None:
    doc = parse_call(
        dump_call(
            call_document(
                format="python",
                variables=["n"],
                defaults={},
                template="Hi {n}",
                model={"name": "m"},
            )
        )
    )
    assert render_messages(doc, {"n": "Ada"}) == [{"role": "system", "content": "Hi Ada"}]


def test_openai_arguments_follow_chat_completions_create() -> None:
    doc = parse_call(chat(**FULL_MODEL))
    messages = render_messages(doc, {"question": "q"}, {"history": []})
    args = openai_arguments(doc.model, messages)
    assert args == {
        "model": "gpt-4o-mini",
        "messages": messages,
        "temperature": 0.2,
        "max_tokens": 512,
        "stop": "END",
        "seed": 7,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather in a city",
                    "parameters": SCHEMA,
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
        },
    }
    assert openai_arguments(None, messages) == {"messages": messages}
    json_object = parse_call(chat(responseFormat={"type": "json_object"})).model
    assert openai_arguments(json_object, [])["response_format"] == {"type": "json_object"}
    text = parse_call(chat(responseFormat={"type": "text"})).model
    assert "response_format" not in openai_arguments(text, [])
    described = parse_call(
        chat(responseFormat={"type": "json_schema", "description": "One answer", "schema": SCHEMA})
    ).model
    assert openai_arguments(described, [])["response_format"]["json_schema"] == {
        "name": "response",
        "description": "One answer",
        "schema": SCHEMA,
    }


def test_anthropic_arguments_keep_system_apart_and_drop_what_has_no_equivalent() -> None:
    doc = parse_call(chat(**FULL_MODEL))
    messages = render_messages(doc, {"question": "q"}, {"history": HISTORY})
    args = anthropic_arguments(doc.model, messages)
    assert args == {
        "model": "gpt-4o-mini",
        "system": "You help there.\n\nAnswer in {JSON}.",
        "messages": [*HISTORY, {"role": "user", "content": "q"}],
        "max_tokens": 512,  # temperature: no keyword in the current SDK
        "stop_sequences": ["END"],
        "tools": [{"name": "weather", "description": "Weather in a city", "input_schema": SCHEMA}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    json_object = parse_call(chat(responseFormat={"type": "json_object"})).model
    assert "output_config" not in anthropic_arguments(json_object, messages)
    listed = parse_call(chat(parameters={"stop": ["a", "b"]})).model
    assert anthropic_arguments(listed, [])["stop_sequences"] == ["a", "b"]


def test_the_sidecar_never_loads_the_reading_half() -> None:
    code = (
        "import sys, prompt_sidecar.main; "
        "print('prompt_contract.call_reading' in sys.modules, "
        "'prompt_contract.templates' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
