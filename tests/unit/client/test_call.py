"""``PromptRegistry.call``: a call document read from the sidecar's files, filled in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_client import ChatPromptError, PromptCall, PromptRegistry
from prompt_contract.calls import (
    CALL_FORM,
    CallDocumentError,
    MissingPlaceholderError,
    UnknownPlaceholderError,
    call_document,
    dump_call,
)
from prompt_contract.variants import choose_variant

from .support import Writer

MODEL = {"name": "gpt-4o-mini", "parameters": {"temperature": 0.2}}


def chat_document(greeting: str = "Hello", model: dict | None = MODEL) -> str:
    return dump_call(
        call_document(
            format="python",
            variables=["customer"],
            defaults={"customer": "there"},
            messages=[
                {"role": "system", "content": greeting + " {customer}."},
                {"role": "placeholder", "name": "history"},
            ],
            model=model,
        )
    )


TEXT_WITH_MODEL = dump_call(
    call_document(
        format="python", variables=["customer"], defaults={}, template="Hi {customer}", model=MODEL
    )
)


def put_call(writer: Writer, key: str, document: str, **extra: object) -> str:
    return writer.put(key, document, form=CALL_FORM, variables=("customer",), **extra)


def test_a_chat_prompt_becomes_a_call_with_the_conversation(
    writer: Writer, prompt_dir: Path
) -> None:
    put_call(writer, "support", chat_document())
    registry = PromptRegistry(str(prompt_dir), watch=False)
    history = [{"role": "user", "content": "Where is my order?"}]
    call = registry.call("support", placeholders={"history": history}, customer="Ada")
    assert isinstance(call, PromptCall)
    assert call.messages == ({"role": "system", "content": "Hello Ada."}, *history)
    assert call.model is not None and call.model.name == "gpt-4o-mini"
    assert call.openai() == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Hello Ada."}, *history],
        "temperature": 0.2,
    }
    assert call.anthropic()["system"] == "Hello Ada."
    assert call.info.revision is not None and call.info.form == CALL_FORM
    assert registry["support"] == chat_document()  # the document itself, as on disk
    assert registry.snapshot().call("support", placeholders={"history": []}).messages == (
        {"role": "system", "content": "Hello there."},
    )


def test_render_of_a_chat_prompt_points_to_call(writer: Writer, prompt_dir: Path) -> None:
    put_call(writer, "support", chat_document())
    registry = PromptRegistry(str(prompt_dir), watch=False)
    with pytest.raises(ChatPromptError, match=r"chat prompt .* use call\('support'"):
        registry.render("support")
    with pytest.raises(MissingPlaceholderError, match="history"):
        registry.call("support")
    with pytest.raises(UnknownPlaceholderError, match="chat"):
        registry.call("support", placeholders={"history": [], "chat": []})


def test_a_text_prompt_with_a_model_renders_and_calls(writer: Writer, prompt_dir: Path) -> None:
    put_call(writer, "greet", TEXT_WITH_MODEL)
    registry = PromptRegistry(str(prompt_dir), watch=False)
    assert registry.render("greet", customer="Ada") == "Hi Ada"
    call = registry.call("greet", customer="Ada")
    assert call.openai() == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Hi Ada"}],
        "temperature": 0.2,
    }


def test_a_plain_text_prompt_is_one_system_message_without_a_model(
    writer: Writer, prompt_dir: Path
) -> None:
    writer.put("plain", "Be kind to {name}.", variables=("name",))
    registry = PromptRegistry(str(prompt_dir), watch=False, defaults={"fallback": "Hi"})
    call = registry.call("plain", name="Ada")
    assert (
        call.messages == ({"role": "system", "content": "Be kind to Ada."},) and call.model is None
    )
    assert call.openai() == {"messages": [{"role": "system", "content": "Be kind to Ada."}]}
    assert registry.call("fallback").messages == ({"role": "system", "content": "Hi"},)
    with pytest.raises(UnknownPlaceholderError, match="history"):
        registry.call("plain", placeholders={"history": []}, name="Ada")


def test_variant_keys_choose_among_call_documents(writer: Writer, prompt_dir: Path) -> None:
    a, b = chat_document("Hello"), chat_document("Howdy", {"name": "other-model"})
    variants = {"a": {"weight": 1, "text": a}, "b": {"weight": 1, "text": b}}
    put_call(writer, "support", a, variant="a", variants=variants)
    registry = PromptRegistry(str(prompt_dir), watch=False)
    users = [f"user-{i}" for i in range(40)]
    for user in users:
        chosen = choose_variant(user, "support", [("a", 1), ("b", 1)])
        call = registry.call("support", variant_key=user, placeholders={"history": []})
        assert call.info.variant == chosen
        greeting = "Hello" if chosen == "a" else "Howdy"
        assert call.messages[0]["content"] == f"{greeting} there."
        assert (call.model and call.model.name) == (
            "gpt-4o-mini" if chosen == "a" else "other-model"
        )


def test_an_unreadable_document_is_a_clear_error(writer: Writer, prompt_dir: Path) -> None:
    newer = json.loads(chat_document())
    newer["version"] = 9
    put_call(writer, "future", json.dumps(newer))
    registry = PromptRegistry(str(prompt_dir), watch=False)
    with pytest.raises(CallDocumentError, match="version: 9 is newer"):
        registry.call("future", placeholders={"history": []})
    assert (prompt_dir / "future.json").exists()
