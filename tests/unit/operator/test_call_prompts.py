"""Chat messages and model configurations: rendering to call documents, the checks
that name the field, and history, diff and rollback of call-form revisions."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from prompt_contract import objects
from prompt_operator import history
from prompt_operator.configmap import configmap_data
from prompt_operator.model import parse_prompt
from prompt_operator.policies import evaluate
from prompt_operator.render import render
from prompt_operator.rollback import rollback_patch

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHAT = [
    {"role": "system", "content": "You help {customer}."},
    {"role": "placeholder", "name": "history"},
    {"role": "user", "content": "{question}"},
]
VARIABLES = [{"name": "customer", "default": "there"}, {"name": "question"}]
MODEL = {"name": "gpt-4o-mini", "parameters": {"temperature": 0.2, "max_tokens": 512}}


def body(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "greet", "namespace": "ns", "uid": "u1"}, "spec": spec}


def rendered(**spec: Any) -> Any:
    return render(parse_prompt(body(**spec)), T0)


def problem(**spec: Any) -> tuple[str, str] | None:
    prompt = parse_prompt(body(**spec))
    verdict = evaluate(prompt, render(prompt, T0))
    return None if verdict.problem is None else (verdict.problem.reason, verdict.problem.message)


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def test_a_text_prompt_keeps_exactly_todays_configmap_and_revision() -> None:
    """Values computed on main before call documents existed."""
    text = rendered(
        template="Hi {name}\r\nbye",
        variables=[{"name": "name", "description": "who", "default": "you"}],
    )
    assert text.revision == "e09024c6283d1cdf"
    assert configmap_data(text) == {
        "metadata.json": '{"defaults":{"name":"you"},"format":"python","variables":["name"]}',
        "source.json": '{"format":"python","key":"greet","source":"spec",'
        '"variables":[{"default":"you","description":"who","name":"name"}]}',
        "prompt": "Hi {name}\r\nbye",
    }
    ab = rendered(
        variants=[
            {"name": "a", "weight": 1, "template": "A {name}"},
            {"name": "b", "weight": 3, "template": "B"},
        ],
        variables=[{"name": "name"}],
    )
    assert ab.revision == "c37d46dcc0faaeaf"
    assert configmap_data(ab) == {
        "metadata.json": '{"defaults":{},"format":"python","variables":["name"],'
        '"variants":[{"name":"a","weight":1},{"name":"b","weight":3}]}',
        "source.json": '{"format":"python","key":"greet","source":"spec",'
        '"variables":[{"name":"name"}],'
        '"variants":[{"name":"a","weight":1},{"name":"b","weight":3}]}',
        "variant.a": "A {name}",
        "variant.b": "B",
    }


def test_a_chat_prompt_with_a_model_is_one_call_document() -> None:
    chat = rendered(messages=CHAT, variables=VARIABLES, model=MODEL)
    data = configmap_data(chat)
    assert objects.TEXT_DATA_KEY not in data
    assert json.loads(data[objects.METADATA_DATA_KEY])["form"] == "call"
    doc = json.loads(data[objects.CALL_DATA_KEY])
    assert doc == {
        "version": 1,
        "format": "python",
        "variables": ["customer", "question"],
        "defaults": {"customer": "there"},
        "messages": CHAT,
        "model": MODEL,
    }
    assert data[objects.CALL_DATA_KEY] == json.dumps(
        doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def test_a_text_prompt_with_a_model_is_a_call_document_and_every_part_is_hashed() -> None:
    base = rendered(template="Hi", model=MODEL)
    assert json.loads(base.text)["template"] == "Hi"
    warmer = rendered(template="Hi", model={**MODEL, "parameters": {"temperature": 0.9}})
    tool = {"name": "f", "parameters": {"type": "object"}}
    tooled = rendered(template="Hi", model={**MODEL, "tools": [tool]})
    assert (
        len({base.revision, warmer.revision, tooled.revision, rendered(template="Hi").revision})
        == 4
    )


def test_a_variant_may_change_the_model_alone() -> None:
    out = rendered(
        template="Summarize {text}",
        variables=[{"name": "text"}],
        model={"name": "mini"},
        variants=[
            {"name": "a", "weight": 1},
            {"name": "b", "weight": 1, "model": {"name": "large"}},
        ],
    )
    docs = {name: json.loads(text) for name, _, text in out.variants}
    assert docs["a"]["template"] == docs["b"]["template"] == "Summarize {text}"
    assert (docs["a"]["model"]["name"], docs["b"]["model"]["name"]) == ("mini", "large")
    assert (
        problem(
            template="Summarize {text}",
            variables=[{"name": "text"}],
            variants=[
                {"name": "a", "weight": 1},
                {"name": "b", "weight": 1, "model": {"name": "x"}},
            ],
        )
        is None
    )


def test_every_variant_with_its_own_text_and_a_top_level_text_is_refused() -> None:
    assert problem(template="x", variants=[{"name": "a", "weight": 1, "template": "A"}]) == (
        "InvalidVariants",
        "set spec.template or spec.variants, not both",
    )


def test_a_schedule_entry_may_switch_models_at_a_time() -> None:
    spec = {
        "messages": CHAT,
        "variables": VARIABLES,
        "model": MODEL,
        "schedule": [{"at": "2026-06-01T00:00:00Z", "model": {"name": "gpt-5"}}],
    }
    before, after = (render(parse_prompt(body(**spec)), t) for t in (T0, T0 + timedelta(days=200)))
    assert json.loads(before.text)["model"]["name"] == "gpt-4o-mini"
    doc = json.loads(after.text)
    assert doc["model"] == {"name": "gpt-5"} and doc["messages"] == CHAT
    assert after.source == "schedule 2026-06-01T00:00:00Z"
    assert problem(**spec) is None


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        (
            {"messages": [{"role": "narrator", "content": "x"}]},
            "InvalidMessages",
            "spec.messages[0].role",
        ),
        ({"messages": [{"role": "placeholder"}]}, "InvalidMessages", "spec.messages[0].name"),
        (
            {"messages": [{"role": "placeholder", "name": "question"}], "variables": VARIABLES},
            "InvalidMessages",
            "already a placeholder or a declared variable",
        ),
        (
            {"messages": [{"role": "placeholder", "name": "h", "content": "x"}]},
            "InvalidMessages",
            "no content",
        ),
        ({"messages": [{"role": "user"}]}, "InvalidMessages", "spec.messages[0].content"),
        (
            {"template": "x", "messages": [{"role": "user", "content": "x"}]},
            "InvalidMessages",
            "not both",
        ),
        (
            {"messages": [{"role": "user", "content": "{who}"}]},
            "UndeclaredVariable",
            "spec.messages[0].content",
        ),
        (
            {"template": "x", "model": {"parameters": {"temperature": 2.5}}},
            "InvalidModel",
            "temperature is 2.5",
        ),
        (
            {"template": "x", "model": {"parameters": {"top_p": "high"}}},
            "InvalidModel",
            "top_p must be a number",
        ),
        (
            {"template": "x", "model": {"parameters": {"max_tokens": 1.5}}},
            "InvalidModel",
            "max_tokens must be an integer",
        ),
        ({"template": "x", "model": {"parameters": {"stop": ["a"] * 5}}}, "InvalidModel", "stop"),
        (
            {"template": "x", "model": {"parameters": {"x": "y" * 17000}}},
            "InvalidModel",
            "at most 16,384",
        ),
        (
            {"template": "x", "model": {"tools": [{"name": "f", "parameters": {"type": "town"}}]}},
            "InvalidTool",
            "spec.model.tools[0].parameters.type is not a valid JSON Schema",
        ),
        ({"template": "x", "model": {"tools": [{"name": "f f"}]}}, "InvalidTool", "tools[0].name"),
        (
            {"template": "x", "model": {"tools": [{"name": "f"}, {"name": "f"}]}},
            "InvalidTool",
            "unique",
        ),
        (
            {"template": "x", "model": {"responseFormat": {"type": "json_schema", "schema": {}}}},
            "InvalidResponseFormat",
            "responseFormat.name",
        ),
        (
            {"template": "x", "model": {"responseFormat": {"type": "xml"}}},
            "InvalidResponseFormat",
            "xml",
        ),
        (
            {
                "template": "x",
                "variants": [{"name": "a", "weight": 1, "model": {"parameters": {"n": 0}}}],
            },
            "InvalidModel",
            "spec.variants[0].model.parameters.n",
        ),
        (
            {
                "template": "x",
                "schedule": [
                    {"at": "2030-01-01T00:00:00Z", "messages": [{"role": "bot", "content": "x"}]}
                ],
            },
            "InvalidMessages",
            "spec.schedule[0].messages[0].role",
        ),
    ],
)
def test_bad_calls_are_refused_naming_the_field(
    spec: dict[str, Any], reason: str, words: str
) -> None:
    found = problem(**spec)
    assert found is not None and found[0] == reason and words in found[1], found


def test_a_good_chat_prompt_with_tools_and_a_response_schema_passes() -> None:
    model = {
        **MODEL,
        "parameters": {**MODEL["parameters"], "stop": ["END"], "logit_bias": {"1": -100}},
        "tools": [{"name": "get_weather", "description": "w", "parameters": {"type": "object"}}],
        "responseFormat": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}},
    }
    assert problem(messages=CHAT, variables=VARIABLES, model=model) is None


def revision_data(spec: dict[str, Any]) -> dict[str, str]:
    return configmap_data(render(parse_prompt(body(**spec)), T0))


@pytest.mark.parametrize("variants", [False, True])
def test_rollback_between_call_and_text_revisions_restores_the_same_bytes(variants: bool) -> None:
    text_spec: dict[str, Any] = {"template": "Hi {customer}", "variables": VARIABLES[:1]}
    call_spec: dict[str, Any] = {
        "messages": CHAT,
        "variables": VARIABLES,
        "model": {**MODEL, "tools": [{"name": "f", "parameters": {}}]},
    }
    if variants:
        text_spec = {
            "variables": VARIABLES[:1],
            "variants": [{"name": "a", "weight": 1, "template": "A {customer}"}],
        }
        call_spec = {
            **call_spec,
            "variants": [
                {"name": "a", "weight": 1},
                {"name": "b", "weight": 2, "model": {"name": "big"}},
            ],
        }
    text_data, call_data = revision_data(text_spec), revision_data(call_spec)
    spec = copy.deepcopy(call_spec)
    spec["model"] = {**MODEL, "parameters": {"seed": 1, "temperature": 1.0}}
    for _target, data in ((text_spec, text_data), (call_spec, call_data), (text_spec, text_data)):
        spec = merge(body(**spec), rollback_patch(body(**spec), data, T0))["spec"]
        assert revision_data(spec) == data, spec


def test_history_names_a_temperature_change_and_diff_shows_it_by_line() -> None:
    old = history.snapshot_of(
        render(parse_prompt(body(messages=CHAT, variables=VARIABLES, model=MODEL)), T0)
    )
    warmer = {
        **MODEL,
        "parameters": {"temperature": 0.7, "max_tokens": 512},
        "tools": [{"name": "f", "parameters": {}}],
    }
    new = history.snapshot_of(
        render(parse_prompt(body(messages=CHAT, variables=VARIABLES, model=warmer)), T0)
    )
    assert history.summarize(old, new) == "temperature 0.2 -> 0.7; tool +f"
    diff = history.unified_diff(old, new, "rev 1", "rev 2")
    assert '-      "temperature": 0.2\n' in diff and '+      "temperature": 0.7\n' in diff
    text = history.snapshot_of(render(parse_prompt(body(template="Hi")), T0))
    assert history.summarize(text, old).startswith(
        "form text -> call; variables +customer, +question; text +"
    )
    from_cm = history.snapshot_from_configmap(
        revision_data({"messages": CHAT, "variables": VARIABLES, "model": MODEL}), "greet"
    )
    assert from_cm == old
