"""The console's pure parts: what the pages show, the checks by field, the word diff."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from prompt_operator.console import edit_form, usage, views, worddiff


def prompt(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": {"name": "greeter", "namespace": "team", "generation": 2, **meta},
        "spec": spec,
        "status": {
            "observedGeneration": 2,
            "revision": "bbb",
            "revisions": [
                {
                    "number": 1,
                    "revision": "aaa",
                    "time": "t1",
                    "source": "spec",
                    "summary": "first",
                },
                {"number": 2, "revision": "bbb", "time": "t2", "source": "spec", "summary": "x"},
            ],
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "UndeclaredVariable", "message": "m"}
            ],
            "delivery": {"summary": "1/2"},
        },
    }


def test_a_row_shows_readiness_reason_revision_number_and_delivery() -> None:
    row = views.prompt_row(prompt({"template": "hi", "key": "greet"}, labels={"team": "a"}))
    assert (row.ready, row.reason, row.message) == ("False", "UndeclaredVariable", "m")
    assert (row.revision_number, row.revision, row.delivery) == (2, "bbb", "1/2")
    assert row.key == "greet" and row.labels == (("team", "a"),)


def test_a_row_whose_generation_is_not_observed_yet_is_reconciling() -> None:
    obj = prompt({"template": "hi"})
    obj["metadata"]["generation"] = 3
    row = views.prompt_row(obj)
    assert (row.ready, row.reason) == ("Unknown", "Reconciling")


def test_search_matches_name_or_key_case_insensitively() -> None:
    a = prompt({"template": "x", "key": "Support_Agent"})
    b = prompt({"template": "x"}, name="other")
    assert [r.name for r in views.rows([a, b], "support")] == ["greeter"]
    assert [r.name for r in views.rows([a, b], "OTH")] == ["other"]
    assert len(views.rows([a, b], "")) == 2


def test_a_bad_label_filter_is_named_before_the_api_is_asked() -> None:
    assert views.selector_problem("team=a,tier in (x,y)") is None
    assert views.selector_problem("team in (") is not None


def test_placeholders_are_highlighted_and_undeclared_ones_marked() -> None:
    pieces = views.highlight("Hi {name}, {{literal}} and {other}.", ["name"], "python")
    kinds = [(p.text, p.kind) for p in pieces]
    assert ("{name}", "var") in kinds and ("{other}", "undeclared") in kinds
    assert ("{{", "brace") in kinds and ("}}", "brace") in kinds
    assert "".join(p.text for p in pieces) == "Hi {name}, {{literal}} and {other}."
    assert views.highlight("{raw}", [], "raw") == [views.Piece("{raw}", "text")]


def test_preview_uses_the_client_render_with_defaults_and_names_a_missing_value() -> None:
    spec = {
        "template": "Hello {name} from {team}",
        "variables": [{"name": "name"}, {"name": "team", "default": "Acme"}],
    }
    assert views.preview(spec, "g", {"name": "Ada"}).text == "Hello Ada from Acme"
    missing = views.preview(spec, "g", {"name": ""})
    assert missing.text is None and "missing value for variable(s) name" in str(missing.error)


def test_form_round_trip_keeps_schedule_and_drops_empty_variable_rows() -> None:
    obj = prompt(
        {
            "template": "Hi {a}",
            "variables": [{"name": "a", "description": "the a"}],
            "schedule": [{"at": "2030-01-01T00:00:00Z", "template": "later {a}"}],
        }
    )
    form = edit_form.form_from_fields(
        {
            "template": ["Hi {a}\r\nbye"],
            "key": [""],
            "format": ["python"],
            "var_name": ["a", ""],
            "var_description": ["the a", ""],
            "var_default": ["", ""],
        }
    )
    spec = edit_form.spec_from_form(obj, form)
    assert spec["template"] == "Hi {a}\nbye"  # a browser's CRLF is the user's LF
    assert spec["key"] == "greeter"
    assert spec["variables"] == [{"name": "a", "description": "the a"}]
    assert spec["schedule"] == obj["spec"]["schedule"]


def test_a_form_opened_before_a_status_update_saves_against_the_current_version() -> None:
    """The operator's status writes bump the resourceVersion, not the generation: the
    user changed nothing of theirs, so the save is checked against the version
    read now. A spec written by someone else (a new generation) keeps the old one,
    and the API server refuses the save as a conflict."""
    obj = {"metadata": {"resourceVersion": "120", "generation": 3}}
    assert edit_form.precondition(obj, "100", "3") == "120"
    assert edit_form.precondition(obj, "100", "2") == "100"
    assert edit_form.precondition(obj, "100", "") == "100"  # a form without one: as before
    opened = edit_form.form_from_spec({"metadata": {"resourceVersion": "7", "generation": 2}})
    assert (opened.resource_version, opened.generation) == ("7", "2")


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"template": "Hi {user}"}, "template", "{user}"),
        ({"template": "Hi", "key": ".hidden"}, "key", "spec.key"),
        ({"template": "x" * 1_000_001}, "template", "1,000,000"),
        ({"template": "Hi {a.b}", "variables": [{"name": "a"}]}, "template", "attribute"),
    ],
)
def test_checks_are_validates_own_and_land_next_to_their_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    checks = edit_form.check(prompt({}), spec)
    assert not checks.ok
    assert any(words in m for m in checks.errors[field]), checks.errors


def test_a_valid_spec_passes_with_an_unused_variable_as_a_warning() -> None:
    checks = edit_form.check(prompt({}), {"template": "Hi", "variables": [{"name": "a"}]})
    assert checks.ok and any("not used" in w for w in checks.warnings)


def test_gitops_marks_and_gitops_field_managers_make_a_prompt_read_only() -> None:
    assert views.managed_elsewhere(prompt({}, labels={"argocd.argoproj.io/instance": "x"}))
    flux = prompt(
        {}, managedFields=[{"manager": "kustomize-controller", "fieldsV1": {"f:spec": {}}}]
    )
    assert "Flux" in str(views.managed_elsewhere(flux))
    kubectl = prompt({}, managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}])
    assert views.managed_elsewhere(kubectl) is None


def test_the_manifest_to_commit_has_no_server_fields() -> None:
    obj = prompt(
        {"template": "t"},
        uid="u",
        resourceVersion="9",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"},
    )
    text = edit_form.manifest(obj, {"template": "new"})
    assert "new" in text and "resourceVersion" not in text and "uid" not in text
    assert "last-applied" not in text and "a: b" in text and "status" not in text


def test_weights_and_schedule_positions() -> None:
    obj = prompt(
        {
            "variants": [
                {"name": "a", "weight": 3, "template": "A"},
                {"name": "b", "weight": 1, "template": "B"},
            ],
            "schedule": [
                {"at": "2020-01-01T00:00:00Z", "template": "old"},
                {"at": "2040-01-01T00:00:00Z", "template": "new"},
            ],
        }
    )
    obj["status"]["variants"] = [{"name": "a", "pods": 2}, {"name": "b", "pods": 1}]
    bars = views.weight_bars(obj)
    assert [(b.name, b.percent, b.pods) for b in bars] == [("a", 75.0, 2), ("b", 25.0, 1)]
    entries = views.schedule(obj, datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert [(e.state, e.position) for e in entries] == [("past", 0.0), ("next", 100.0)]


def test_pods_named_in_the_delivered_condition_are_marked_stale() -> None:
    obj = prompt({"template": "t"}, labels={"team": "a"})
    obj["status"]["conditions"].append(
        {
            "type": "Delivered",
            "status": "False",
            "reason": "PodsPending",
            "message": "1/2 subscribed pods serve revision bbb; waiting for app-2",
        }
    )
    pods = [
        {"metadata": {"name": "app-1", "annotations": {"prompts.dev/selector": "team=a"}}},
        {"metadata": {"name": "app-2"}},
        {"metadata": {"name": "other", "annotations": {"prompts.dev/selector": "team=b"}}},
    ]
    shown = views.delivery(obj, pods)
    assert [(p.name, p.waiting) for p in shown] == [("app-2", True), ("app-1", False)]


def test_word_diff_marks_only_the_changed_word() -> None:
    rows = worddiff.side_by_side("one two three\nsame\n", "one TWO three\nsame\nadded\n")
    assert [r.kind for r in rows] == ["change", "equal", "insert"]
    old, new = rows[0].old.segments, rows[0].new.segments
    assert [s.text for s in old if s.kind == "del"] == ["two"]
    assert [s.text for s in new if s.kind == "ins"] == ["TWO"]
    assert worddiff.changed_words(rows) == (1, 2)


def test_usage_shares_per_variant_and_outcome_from_a_prometheus_result() -> None:
    def sample(variant: str, outcome: str, value: str) -> dict[str, Any]:
        return {
            "metric": {"revision": "r1", "variant": variant, "outcome": outcome},
            "value": [0, value],
        }

    result = [
        sample("control", "resolved", "6"),
        sample("control", "escalated", "2"),
        sample("control", "other", "2"),
        sample("concise", "resolved", "1"),
        sample("concise", "escalated", "3"),
    ]
    shown = usage.usage(result)
    assert shown.outcomes == ("escalated", "resolved", "other")
    control = next(r for r in shown.rows if r.variant == "control")
    assert control.total == 10
    assert control.shares == (("escalated", 2, 20.0), ("resolved", 6, 60.0), ("other", 2, 20.0))
    concise = next(r for r in shown.rows if r.variant == "concise")
    assert concise.shares[2] == ("other", 0, 0.0)
    assert usage.usage_query('a"b') == (
        'sum by (revision, variant, outcome) (prompt_usage_total{prompt="a\\"b"})'
    )


def test_a_variants_form_keeps_names_and_reports_a_bad_weight_by_the_variants() -> None:
    obj = prompt(
        {
            "variables": [{"name": "n"}],
            "variants": [
                {"name": "a", "weight": 1, "template": "A {n}"},
                {"name": "b", "weight": 1, "template": "B {n}"},
            ],
        }
    )
    form = edit_form.form_from_spec(obj)
    assert form.variant_names == ["a", "b"] and form.var_names == ["n"]
    form.variant_weights = ["3", "heavy"]
    form.variant_templates = ["A {n}", "B {m}"]
    spec = edit_form.spec_from_form(obj, form)
    assert "template" not in spec
    assert spec["variants"][0] == {"name": "a", "weight": 3, "template": "A {n}"}
    checks = edit_form.check(obj, spec)
    assert any("weight" in m for m in checks.errors["variants"]), checks.errors
    form.variant_weights = ["3", "1"]
    checks = edit_form.check(obj, edit_form.spec_from_form(obj, form))
    assert any("{m}" in m for m in checks.errors["template"]), checks.errors
