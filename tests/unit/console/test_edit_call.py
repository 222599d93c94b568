"""The edit form of a chat Prompt: messages and model as one YAML text."""

from __future__ import annotations

from typing import Any

from prompt_operator.console import edit_form


def chat_prompt(**spec: Any) -> dict[str, Any]:
    body = {
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "placeholder", "name": "history"},
        ],
        "model": {"name": "gpt-4o-mini", "parameters": {"temperature": 0.2}},
        **spec,
    }
    return {"metadata": {"name": "helper", "namespace": "team"}, "spec": body}


def test_a_chat_prompts_form_round_trips_messages_and_model_without_a_template() -> None:
    obj = chat_prompt(includes=[{"name": "safety", "prompt": "preamble"}])
    form = edit_form.form_from_spec(obj)
    assert form.chat and "temperature: 0.2" in form.call
    spec = edit_form.spec_from_form(obj, form)
    assert "template" not in spec
    assert spec["messages"] == obj["spec"]["messages"] and spec["model"] == obj["spec"]["model"]
    assert spec["includes"] == obj["spec"]["includes"]


def test_an_edit_of_the_temperature_alone_reaches_the_spec() -> None:
    obj = chat_prompt()
    form = edit_form.form_from_spec(obj)
    form.call = form.call.replace("temperature: 0.2", "temperature: 0.9").replace("\n", "\r\n")
    assert edit_form.spec_from_form(obj, form)["model"]["parameters"] == {"temperature": 0.9}


def test_yaml_that_is_not_messages_and_model_is_refused_next_to_the_field() -> None:
    obj = chat_prompt()
    for text, words in (
        ("messages: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("template: hi", "not ['template']"),
    ):
        form = edit_form.form_from_spec(obj)
        form.call = text
        spec = edit_form.spec_from_form(obj, form)
        assert spec["messages"] == obj["spec"]["messages"]  # kept; the save is refused
        checks = edit_form.check(obj, spec, form)
        assert not checks.ok and any(words in m for m in checks.errors["call"])


def test_a_variant_that_overrides_the_model_gets_no_text_from_the_form() -> None:
    obj = chat_prompt(variants=[{"name": "a", "weight": 1, "model": {"name": "gpt-4o"}}])
    form = edit_form.form_from_spec(obj)
    form.variant_weights = ["3"]
    assert edit_form.spec_from_form(obj, form)["variants"] == [
        {"name": "a", "weight": 3, "model": {"name": "gpt-4o"}}
    ]


def test_a_text_prompts_form_has_no_call_text_and_keeps_its_template() -> None:
    obj = {"metadata": {"name": "greeter"}, "spec": {"template": "Hi"}}
    form = edit_form.form_from_spec(obj)
    assert form.call == "" and not form.chat
    assert edit_form.spec_from_form(obj, form)["template"] == "Hi"
