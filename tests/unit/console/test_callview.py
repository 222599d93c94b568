"""What the console shows of a chat Prompt and of call-form revisions, from raw dicts."""

from __future__ import annotations

import json
from typing import Any

from prompt_contract import calls, objects
from prompt_operator import history
from prompt_operator.console import callview, compare
from prompt_operator.console.rendering import environment

CHAT_SPEC: dict[str, Any] = {
    "variables": [{"name": "customer", "default": "there"}, {"name": "question"}],
    "messages": [
        {"role": "system", "content": "You help {customer}."},
        {"role": "placeholder", "name": "history"},
        {"role": "user", "content": "{question}"},
    ],
    "model": {
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 512, "stop": ["\n\n"]},
        "tools": [
            {"name": "lookup", "description": "Find an order", "parameters": {"type": "object"}}
        ],
        "responseFormat": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}},
    },
}


def _macro(name: str, *args: Any) -> str:
    module = environment().get_template("_call.html").module
    return str(getattr(module, name)(*args))


def test_messages_keep_order_and_mark_the_placeholder_and_an_unknown_role() -> None:
    shown = callview.messages(CHAT_SPEC["messages"] + [{"role": "wizard", "content": "x"}, 7])
    assert [m.role for m in shown] == ["system", "placeholder", "user", "wizard", "?"]
    assert shown[1].placeholder and shown[1].name == "history"
    assert [m.known for m in shown] == [True, True, True, False, False]


def test_model_parameters_are_sorted_json_and_tools_pretty_with_sorted_keys() -> None:
    view = callview.model(CHAT_SPEC["model"])
    assert view is not None and view.name == "gpt-4o-mini"
    assert view.parameters == [
        ("max_tokens", "512"),
        ("stop", '["\\n\\n"]'),
        ("temperature", "0.2"),
    ]
    assert view.tools[0].schema == '{\n  "type": "object"\n}'
    assert view.response_format is not None and '"name": "answer"' in view.response_format
    assert callview.model(None) is None and callview.model("gpt") is None


def test_a_huge_tool_schema_is_cut_on_the_page_and_says_how_much() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
    view = callview.model({"tools": [{"name": "big", "parameters": schema}, "not a tool"]})
    assert view is not None
    big, odd = view.tools
    assert len(big.schema) == callview.SCHEMA_SHOWN_CHARS and big.cut > 100_000
    assert odd.name == "?" and odd.schema == '"not a tool"'
    html = _macro("model_view", view)
    assert (
        "more characters of schema not shown" in html
        and len(html) < 2 * callview.SCHEMA_SHOWN_CHARS
    )


def test_html_in_content_names_and_tools_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    chat = callview.messages(
        [{"role": evil, "content": evil}, {"role": "placeholder", "name": evil}]
    )
    html = _macro("message_list", chat)
    view = callview.model({"name": evil, "parameters": {evil: evil}, "tools": [{"name": evil}]})
    html += _macro("model_view", view)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_preview_renders_each_message_and_leaves_the_placeholder_as_a_slot() -> None:
    shown = callview.preview_messages(CHAT_SPEC, "helper", {"question": "Where?", "customer": ""})
    assert shown.error is None
    assert [(m.role, m.content, m.placeholder) for m in shown.messages] == [
        ("system", "You help there.", False),
        ("placeholder", "history", True),
        ("user", "Where?", False),
    ]
    missing = callview.preview_messages(CHAT_SPEC, "helper", {})
    assert missing.error is not None and "question" in missing.error


def test_preview_of_a_variant_uses_its_own_messages() -> None:
    spec = dict(
        CHAT_SPEC,
        variants=[{"name": "b", "weight": 1, "messages": [{"role": "user", "content": "B"}]}],
    )
    shown = callview.preview_messages(spec, "helper", {}, "b")
    assert [m.content for m in shown.messages] == ["B"]


def test_variant_overrides_say_what_each_variant_sets() -> None:
    spec = {
        "messages": [{"role": "user", "content": "hi"}],
        "variants": [
            {"name": "a", "weight": 1},
            {"name": "b", "weight": 1, "model": {"name": "gpt-4o"}},
        ],
    }
    a, b = callview.variant_overrides(spec)
    assert (a.overrides, b.overrides) == ([], ["model"])
    assert b.model is not None and b.model.name == "gpt-4o"
    assert callview.is_chat(spec) and not callview.is_chat({"template": "x"})


def test_included_by_names_the_prompts_of_the_list_that_include_this_one() -> None:
    def obj(name: str, includes: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"template": "x", "includes": includes}}

    items = [
        obj("b", [{"name": "safety", "prompt": "preamble"}]),
        obj("a", [{"name": "s", "prompt": "preamble"}, {"name": "t", "prompt": "other"}]),
        obj("c", [{"name": "s", "prompt": "other"}]),
        obj("d", "not a list"),
        obj("preamble", None),
    ]
    assert callview.included_by("preamble", items) == ["a", "b"]
    assert callview.includes(items[1]["spec"]) == [("s", "preamble"), ("t", "other")]


def _call_data(doc: dict[str, Any]) -> dict[str, str]:
    return {
        objects.METADATA_DATA_KEY: json.dumps({"form": calls.CALL_FORM, "format": "python"}),
        objects.CALL_DATA_KEY: calls.dump_call(doc),
    }


def _doc(temperature: float, tools: list[dict[str, Any]]) -> dict[str, Any]:
    model = dict(CHAT_SPEC["model"], parameters={"temperature": temperature}, tools=tools)
    return calls.call_document(
        format="python", variables=[], defaults={}, messages=CHAT_SPEC["messages"], model=model
    )


def test_a_call_revision_is_diffed_part_by_part() -> None:
    tool = {"name": "lookup", "description": "d", "parameters": {"b": 1, "a": 2}}
    old = _call_data(_doc(0.2, [tool]))
    new = _call_data(_doc(0.7, [tool, {"name": "refund", "parameters": {}}]))
    pairs = compare.part_pairs(old, new)
    changed = [name for name, a, b in pairs if a != b]
    assert changed == ["model parameters", "tool refund"]
    assert dict((n, b) for n, _, b in pairs)["tool lookup"].index('"a"') < dict(
        (n, b) for n, _, b in pairs
    )["tool lookup"].index('"b"')
    texts = compare.compare_texts(pairs)
    snap = history.snapshot_from_configmap(old, "helper")
    summary = compare.summarize(snap, history.snapshot_from_configmap(new, "helper"), pairs, texts)
    assert "model parameters +1 -1 lines" in summary and "tool refund" in summary


def test_a_text_revision_compared_with_a_call_revision_does_not_crash() -> None:
    text = {
        objects.METADATA_DATA_KEY: json.dumps({"format": "python"}),
        objects.TEXT_DATA_KEY: "Hi",
    }
    call = _call_data(_doc(0.2, []))
    call[objects.CALL_DATA_KEY] += "garbage"  # a stored document that is not JSON
    for old, new in ((text, call), (call, text)):
        pairs = compare.part_pairs(old, new)
        texts = compare.compare_texts(pairs)
        snaps = [history.snapshot_from_configmap(d, "helper") for d in (old, new)]
        assert compare.summarize(*snaps, pairs, texts)
        assert len(texts) == len(pairs) >= 2


def test_a_call_document_with_an_unknown_role_and_variants_is_cut_into_parts() -> None:
    doc = {"messages": [{"role": "wizard", "content": "x"}, "odd"], "model": {"tools": ["odd"]}}
    meta = {"form": "call", "variants": [{"name": "a", "weight": 1}]}
    data = {
        objects.METADATA_DATA_KEY: json.dumps(meta),
        objects.variant_data_key("a"): json.dumps(doc),
    }
    labels = [label for label, _ in callview.revision_parts(data)]
    assert labels == [
        "variant a · message 1 · wizard",
        "variant a · message 2 · ?",
        "variant a · tool ?",
    ]
