"""Pure parts of revisions, variants and schedules: no cluster, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from prompt_operator import history
from prompt_operator.controllers.desired import desired_at
from prompt_operator.controllers.prompts import requeue
from prompt_operator.model import SpecError, parse_prompt
from prompt_operator.policies import evaluate
from prompt_operator.render import render
from prompt_operator.runtime.controller import Result
from prompt_operator.schedule import content_at, next_activation
from prompt_operator.status import variants_field

T0 = datetime(2026, 12, 24, 17, 0, tzinfo=timezone.utc)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "greeter", "namespace": "ns", "uid": "u1"},
        "spec": {"template": "Hello", **spec},
    }


def ab(weights: tuple[int, int] = (50, 50)) -> dict[str, Any]:
    b = body(
        variants=[
            {"name": "a", "weight": weights[0], "template": "A text"},
            {"name": "b", "weight": weights[1], "template": "B text"},
        ]
    )
    del b["spec"]["template"]
    return b


# -- schedule ------------------------------------------------------------------------


def scheduled() -> dict[str, Any]:
    return body(
        schedule=[
            {"at": "2026-12-24T19:00:00+01:00", "template": "Merry"},  # = T0 + 1 h
            {"at": "2026-12-24T17:00:00Z", "template": "Eve"},  # = T0
        ]
    )


def test_before_the_first_entry_the_spec_is_served() -> None:
    prompt = parse_prompt(scheduled())
    content = content_at(prompt, T0 - timedelta(seconds=1))
    assert (content.template, content.source) == ("Hello", "spec")
    assert next_activation(prompt, T0 - timedelta(seconds=1)) == T0


def test_the_latest_passed_entry_is_served_whatever_the_order_or_zone() -> None:
    prompt = parse_prompt(scheduled())
    assert content_at(prompt, T0).template == "Eve"
    later = T0 + timedelta(hours=1)
    assert content_at(prompt, later).template == "Merry"
    assert content_at(prompt, later).source == "schedule 2026-12-24T19:00:00+01:00"
    assert next_activation(prompt, later) is None


def test_a_scheduled_text_is_a_new_revision_and_back_to_spec_is_the_old_hash() -> None:
    prompt = parse_prompt(scheduled())
    before, during = render(prompt, T0 - timedelta(1)), render(prompt, T0)
    assert before.revision != during.revision
    assert render(parse_prompt(body()), T0).revision == before.revision


def test_schedule_variants_take_missing_texts_from_spec_variants() -> None:
    b = ab()
    b["spec"]["schedule"] = [
        {
            "at": "2026-12-24T17:00:00Z",
            "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}],
        }
    ]
    rendered = render(parse_prompt(b), T0)
    assert rendered.variants == (("a", 0, "A text"), ("b", 1, "B text"))


@pytest.mark.parametrize(
    "at", ["2026-12-24T17:00:00", "2026-12-24 17:00:00Z", "tomorrow", "2026-13-01T00:00:00Z", ""]
)
def test_times_without_zone_or_not_rfc3339_are_refused(at: str) -> None:
    with pytest.raises(SpecError, match="RFC 3339"):
        parse_prompt(body(schedule=[{"at": at, "template": "x"}]))


def test_the_same_instant_twice_is_refused_even_in_other_zones() -> None:
    b = body(
        schedule=[
            {"at": "2026-12-24T18:00:00+01:00", "template": "x"},
            {"at": "2026-12-24T17:00:00Z", "template": "y"},
        ]
    )
    problem = evaluate(parse_prompt(b), render(parse_prompt(b), T0)).problem
    assert problem is not None and problem.reason == "InvalidSchedule"


def test_scheduled_templates_are_checked_before_their_time() -> None:
    b = body(schedule=[{"at": "2030-01-01T00:00:00Z", "template": "Hi {who}"}])
    problem = evaluate(parse_prompt(b), render(parse_prompt(b), T0)).problem
    assert problem is not None and problem.reason == "UndeclaredVariable"
    assert "spec.schedule[0]" in problem.message


def test_a_reconcile_asks_to_look_again_at_the_next_entry_and_never_after_the_last() -> None:
    b = body(
        schedule=[
            {"at": "2026-12-24T18:00:00Z", "template": "Evening"},
            {"at": "2026-12-25T00:00:00Z", "template": "Christmas"},
        ]
    )
    prompt = parse_prompt(b)
    assert requeue(desired_at(prompt, T0)) == Result(requeue_after=3600)
    # A taken ConfigMap name is looked at again sooner than the next entry.
    assert requeue(desired_at(prompt, T0), also=10) == Result(requeue_after=10)
    assert requeue(desired_at(prompt, T0 + timedelta(hours=1))).requeue_after == 6 * 3600
    assert requeue(desired_at(prompt, T0 + timedelta(days=1))) == Result()


# -- variants ------------------------------------------------------------------------


def test_variants_render_each_text_and_weights_change_the_revision() -> None:
    even, skewed = render(parse_prompt(ab())), render(parse_prompt(ab((90, 10))))
    assert even.variants == (("a", 50, "A text"), ("b", 50, "B text"))
    assert even.text == "" and even.revision != skewed.revision
    assert '"variants":[{"name":"a","weight":50}' in even.metadata_json


@pytest.mark.parametrize(
    ("weights", "names", "fragment"),
    [
        ((0, 0), ("a", "b"), "every weight is 0"),
        ((-1, 5), ("a", "b"), "weight -1"),
        ((1, 1), ("a", "a"), "unique"),
        ((1, 1), ("a", "B_x"), "lower-case"),
    ],
)
def test_bad_variants_are_refused(
    weights: tuple[int, int], names: tuple[str, str], fragment: str
) -> None:
    b = ab(weights)
    for variant, name in zip(b["spec"]["variants"], names, strict=True):
        variant["name"] = name
    prompt = parse_prompt(b)
    problem = evaluate(prompt, render(prompt)).problem
    assert problem is not None and problem.reason == "InvalidVariants"
    assert fragment in problem.message


def test_every_variant_passes_the_variable_checks() -> None:
    b = ab()
    b["spec"]["variants"][1]["template"] = "B {who}"
    prompt = parse_prompt(b)
    problem = evaluate(prompt, render(prompt)).problem
    assert problem is not None and problem.reason == "UndeclaredVariable"
    assert "spec.variants[1] (b)" in problem.message


def test_variant_counts_follow_the_pods_and_the_weights() -> None:
    pods = [f"app-{i}" for i in range(1000)]
    counts = variants_field("greeter", (("a", 90, ""), ("b", 10, "")), pods)
    assert counts is not None
    assert {c["name"]: c["pods"] for c in counts}["b"] in range(70, 131)
    assert variants_field("greeter", (), pods) is None


# -- history -------------------------------------------------------------------------


def record(n: int, rev: str) -> history.Record:
    return history.Record(n, rev, "2026-11-23T00:00:00Z", "spec", "")


def test_history_keeps_the_newest_up_to_the_limit() -> None:
    records = [record(n, f"r{n}") for n in range(1, 11)]
    kept = history.retained(records, record(11, "r1"), 10)
    assert [r.number for r in kept] == list(range(2, 12))
    assert history.next_number(kept, [14]) == 15


def test_records_round_trip_through_status() -> None:
    records = [record(1, "a"), record(2, "b")]
    status = {"revisions": [r.to_status() for r in reversed(records)] + [{"bad": 1}]}
    assert history.records_from(status) == records


def test_summary_says_what_changed() -> None:
    old = history.Snapshot("k", "python", ("a",), (("", "one\ntwo\n"),))
    new = history.Snapshot("k", "python", ("a", "b"), (("", "one\n2\nthree\n"),))
    assert history.summarize(old, new) == "variables +b; text +2 -1 lines"
    assert history.summarize(None, new) == "first revision"
    assert history.summarize(new, new) == "no change in what apps read"


def test_unified_diff_of_two_revisions() -> None:
    old = history.Snapshot("k", "python", (), (("", "one\ntwo\n"),))
    new = history.Snapshot("k", "python", (), (("", "one\n2\n"),))
    diff = history.unified_diff(old, new, "greeter#1", "greeter#2")
    assert diff.splitlines() == [
        "--- greeter#1",
        "+++ greeter#2",
        "@@ -1,2 +1,2 @@",
        " one",
        "-two",
        "+2",
    ]


# -- the CLI's pure parts ------------------------------------------------------------


def test_rollback_patch_restores_text_variables_and_drops_passed_schedule_entries() -> None:
    from prompt_operator.configmap import configmap_data
    from prompt_operator.rollback import rollback_patch

    old = body(template="Hi {name}\r\n", variables=[{"name": "name", "default": "you"}])
    rendered = render(parse_prompt(old), T0)
    current = ab()
    current["spec"]["schedule"] = [
        {"at": "2026-12-24T16:00:00Z", "template": "passed"},
        {"at": "2026-12-24T18:00:00Z", "template": "future"},
    ]
    patch = rollback_patch(current, configmap_data(rendered), T0)
    restored = {**current["spec"], **patch["spec"]}
    restored = {k: v for k, v in restored.items() if v is not None}
    assert [e["template"] for e in restored["schedule"]] == ["future"]
    again = dict(current, spec=restored)
    assert render(parse_prompt(again), T0).revision == rendered.revision


def test_rollback_patch_of_variants_brings_every_text_back() -> None:
    from prompt_operator.configmap import configmap_data
    from prompt_operator.rollback import rollback_patch

    rendered = render(parse_prompt(ab((90, 10))), T0)
    patch = rollback_patch(body(), configmap_data(rendered), T0)
    spec = {k: v for k, v in {**body()["spec"], **patch["spec"]}.items() if v is not None}
    assert render(parse_prompt(dict(body(), spec=spec)), T0).revision == rendered.revision


def test_history_table_marks_the_current_revision_and_gitops_owners_are_named() -> None:
    from prompt_operator.gitops import gitops_owner
    from prompt_operator.revisions_cli import history_table

    status = {
        "revision": "r2",
        "revisions": [record(1, "r1").to_status(), record(2, "r2").to_status()],
    }
    lines = history_table("p", status).splitlines()
    assert lines[0].split() == ["REVISION", "HASH", "TIME", "SOURCE", "SUMMARY"]
    assert lines[2].startswith("2 (current)")
    assert "no revisions yet" in history_table("p", {})
    marked = {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "x"}}}
    assert gitops_owner(marked) == "Argo CD"
    assert (
        gitops_owner({"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}}) == "Helm"
    )
    assert gitops_owner({"metadata": {}}) is None
