"""Pure checks and rendering: no cluster, milliseconds."""

from __future__ import annotations

from typing import Any

import pytest

from prompt_operator.configmap import build_configmap, label_patch
from prompt_operator.controllers.keyclaims import key_owner
from prompt_operator.model import SpecError, parse_prompt
from prompt_operator.policies import evaluate
from prompt_operator.render import render
from prompt_operator.status import Condition, build_status, status_patch


def body(template: Any = "Hi {name}", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "greeter",
            "namespace": "ns",
            "uid": "u1",
            "generation": 3,
            "labels": {"team": "a"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"template": template, "variables": [{"name": "name"}], **spec},
    }


def test_same_spec_gives_same_revision_and_bytes() -> None:
    a, b = render(parse_prompt(body())), render(parse_prompt(body()))
    assert (a.revision, a.text) == (b.revision, b.text)
    assert build_configmap(parse_prompt(body()), a, 1) == build_configmap(
        parse_prompt(body()), b, 1
    )


@pytest.mark.parametrize(
    "change",
    [
        {"template": "Hi {name}!"},
        {"key": "other"},
        {"format": "raw"},
        {"variables": [{"name": "name", "default": "you"}]},
    ],
)
def test_anything_an_app_reads_changes_the_revision(change: dict[str, Any]) -> None:
    base = render(parse_prompt(body())).revision
    changed = body()
    changed["spec"].update(change)
    assert render(parse_prompt(changed)).revision != base


def test_description_does_not_change_the_revision() -> None:
    changed = body()
    changed["spec"]["variables"] = [{"name": "name", "description": "who"}]
    assert render(parse_prompt(changed)).revision == render(parse_prompt(body())).revision


@pytest.mark.parametrize(
    ("template", "variables", "reason", "needle"),
    [
        ("Hi {user}", ["name"], "UndeclaredVariable", "{user}"),
        ("Hi {a} {b}", [], "UndeclaredVariable", "{a}, {b} are used"),
        ("Hi {", [], "MalformedTemplate", "literal braces"),
        ("Hi }", [], "MalformedTemplate", "malformed braces"),
        ("{x.__class__}", ["x"], "ForbiddenPlaceholder", "attribute"),
        ("{x[0]}", ["x"], "ForbiddenPlaceholder", "attribute or index"),
        ("{x!r}", ["x"], "ForbiddenPlaceholder", "conversion"),
        ("{x:>10}", ["x"], "ForbiddenPlaceholder", "format spec"),
        ("{x:{y}}", ["x", "y"], "ForbiddenPlaceholder", "format spec"),
        ("{}", [], "ForbiddenPlaceholder", "positional"),
        ("{0}", [], "ForbiddenPlaceholder", "positional"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(
    template: str, variables: list[str], reason: str, needle: str
) -> None:
    raw = body(template)
    raw["spec"]["variables"] = [{"name": v} for v in variables]
    prompt = parse_prompt(raw)
    verdict = evaluate(prompt, render(prompt))
    assert verdict.problem is not None
    assert verdict.problem.reason == reason
    assert needle in verdict.problem.message


def test_literal_braces_and_raw_format_are_fine() -> None:
    prompt = parse_prompt(body('JSON: {{"a": 1}} for {name}'))
    assert evaluate(prompt, render(prompt)).ok
    raw = parse_prompt(body('{"a": {b}} }{', format="raw", variables=[]))
    assert evaluate(raw, render(raw)).ok


def test_unused_variable_is_a_warning_not_a_failure() -> None:
    raw = body("Hello")
    prompt = parse_prompt(raw)
    verdict = evaluate(prompt, render(prompt))
    assert verdict.ok
    assert [w.reason for w in verdict.warnings] == ["UnusedVariable"]


@pytest.mark.parametrize("key", ["../etc/passwd", ".hidden", "a/b", "x\x00y", "é" * 101])
def test_keys_that_are_not_file_names_are_refused(key: str) -> None:
    prompt = parse_prompt(body(key=key))
    verdict = evaluate(prompt, render(prompt))
    assert verdict.problem is not None and verdict.problem.reason == "InvalidKey"


def test_oversized_prompt_is_refused() -> None:
    prompt = parse_prompt(body("x" * 1_000_001, variables=[]))
    verdict = evaluate(prompt, render(prompt))
    assert verdict.problem is not None and verdict.problem.reason == "PromptTooLarge"


def test_wrong_types_give_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"spec\.template must be a string"):
        parse_prompt(body(template=42))
    with pytest.raises(SpecError, match=r"spec\.variables must be a list"):
        parse_prompt(body(variables="x"))


def test_revision_configmap_is_immutable_named_by_hash_and_numbered() -> None:
    prompt = parse_prompt(body())
    rendered = render(prompt)
    cm = build_configmap(prompt, rendered, 3)
    assert cm["metadata"]["name"] == f"prompt-greeter-{rendered.revision}"
    assert cm["immutable"] is True
    assert cm["metadata"]["labels"] == {
        "team": "a",
        "prompts.dev/managed-by": "prompt-operator",
        "prompts.dev/revision-number": "3",
        "prompts.dev/prompt-uid": "u1",
    }
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert cm["data"]["prompt"] == "Hi {name}"
    relabelled = body()
    relabelled["metadata"]["labels"] = {"team": "b"}
    other = build_configmap(parse_prompt(relabelled), render(parse_prompt(relabelled)), 4)
    assert label_patch(cm["metadata"]["labels"], other["metadata"]["labels"]) == {
        "team": "b",
        "prompts.dev/revision-number": "4",
    }


def test_unchanged_status_needs_no_patch_and_keeps_transition_time() -> None:
    ready = Condition("Ready", True, "Rendered", "ok")
    first = build_status({}, generation=1, conditions=[ready], revision="r1", key="k", now="T1")
    again = build_status(first, generation=1, conditions=[ready], revision="r1", key="k", now="T2")
    assert status_patch(first, again) == {}
    failed = build_status(
        first,
        generation=2,
        conditions=[Condition("Ready", False, "X", "bad")],
        revision=None,
        key=None,
        now="T3",
    )
    assert failed["revision"] == "r1"  # the last good revision stays
    assert failed["conditions"][0]["lastTransitionTime"] == "T3"
    assert failed["lastUpdateTime"] == "T1"


def test_oldest_prompt_keeps_a_key() -> None:
    assert key_owner([("2026-02-01T00:00:00Z", "b"), ("2026-01-01T00:00:00Z", "z")]) == "z"
    assert key_owner([("2026-01-01T00:00:00Z", "b"), ("2026-01-01T00:00:00Z", "a")]) == "a"
    assert key_owner([]) is None
