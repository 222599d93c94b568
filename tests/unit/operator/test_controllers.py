"""The pure parts of the controllers: key claims and the revision plan."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prompt_contract import objects
from prompt_operator import history
from prompt_operator.configmap import revision_labels
from prompt_operator.controllers.keyclaims import KeyClaims
from prompt_operator.controllers.revisions import (
    plan_cleanup,
    plan_revision,
    prune_margin,
)
from prompt_operator.inventory import Entry, entry_from
from prompt_operator.model import PromptRef, parse_prompt
from prompt_operator.render import render

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def prompt_body(text: str, uid: str = "uid-1") -> dict[str, object]:
    spec: dict[str, object] = {"template": text}
    return {
        "metadata": {"name": "greeter", "namespace": "ns", "uid": uid, "generation": 1},
        "spec": spec,
    }


def test_the_oldest_claim_keeps_a_key_and_peers_are_looked_at_again_when_it_leaves() -> None:
    claims = KeyClaims()
    a, b = PromptRef("ns", "a"), PromptRef("ns", "b")
    assert claims.claim(a, "k", "2026-01-01T00:00:00Z") == []
    assert claims.claim(b, "k", "2026-02-01T00:00:00Z") == [a]
    assert claims.owner("ns", "k") == "a"
    assert claims.claim(a, "other", "2026-01-01T00:00:00Z") == [b]
    assert claims.owner("ns", "k") == "b"
    assert claims.claim(b, None, "") == []
    assert claims.owner("ns", "k") is None


def test_a_first_revision_is_created_as_number_one_with_a_new_head() -> None:
    prompt = parse_prompt(prompt_body("Hello"))
    rendered = render(prompt, NOW)
    plan = plan_revision(prompt, rendered, [], [])
    assert plan.number == 1 and plan.new_head and plan.foreign == ()
    assert plan.create is not None
    assert plan.create["metadata"]["labels"] == revision_labels(prompt, 1)


def entry(name: str, revision: str, number: int, uid: str, prompt_labels: dict[str, str]) -> Entry:
    return Entry(
        name=name,
        prompt="greeter",
        revision=revision,
        number=number,
        labels={**prompt_labels, "prompts.dev/prompt-uid": uid},
    )


def test_an_unchanged_prompt_plans_no_write_and_a_stale_uid_is_deleted() -> None:
    prompt = parse_prompt(prompt_body("Hello"))
    rendered = render(prompt, NOW)
    labels = revision_labels(prompt, 1)
    mine = Entry("cm-1", "greeter", rendered.revision, 1, labels)
    left = entry("cm-old", "abc", 1, "uid-0", {})
    head = history.Record(1, rendered.revision, "t", "spec", "created")
    plan = plan_revision(prompt, rendered, [head], [mine, left])
    assert (plan.create, plan.new_head, plan.number) == (None, False, 1)
    assert plan.foreign == (left,)
    assert plan_cleanup(prompt, [head], [mine]).prune == ()
    assert plan_cleanup(prompt, [head], [mine]).relabel == ()


def body_with(limit: int, text: str = "Text", uid: str = "uid-1", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "greeter",
            "namespace": "ns",
            "uid": uid,
            "generation": 1,
            "labels": labels,
        },
        "spec": {"template": text, "revisionHistoryLimit": limit},
    }


def history_of(prompt_limit: int, last: int) -> tuple[list[history.Record], list[Entry]]:
    """Revisions 1..last of a Prompt whose history is ``prompt_limit`` long, each with
    its ConfigMap: the records kept and the ConfigMaps that exist."""
    prompt = parse_prompt(body_with(prompt_limit))
    records = [history.Record(n, f"r{n}", "t", "spec", "") for n in range(1, last + 1)]
    entries = [
        Entry(f"cm-{n}", "greeter", f"r{n}", n, revision_labels(prompt, n))
        for n in range(1, last + 1)
    ]
    return history.retained(records, None, prompt_limit), entries


def test_the_margin_is_the_limit_again_within_bounds() -> None:
    assert [prune_margin(n) for n in (1, 2, 5, 10, 20, 50, 100)] == [5, 5, 5, 10, 20, 20, 20]


def test_configmaps_beyond_the_limit_stay_until_the_margin_is_used_up() -> None:
    prompt = parse_prompt(body_with(2))
    for last in range(3, 2 + prune_margin(2) + 1):  # up to limit + margin ConfigMaps
        kept, entries = history_of(2, last)
        cleanup = plan_cleanup(prompt, kept, entries)
        assert cleanup.pruned == () and cleanup.selector is None, last


def test_one_more_prunes_everything_beyond_the_limit_in_one_request() -> None:
    prompt = parse_prompt(body_with(2))
    last = 2 + prune_margin(2) + 1  # 8 ConfigMaps, a history of 2
    kept, entries = history_of(2, last)
    cleanup = plan_cleanup(prompt, kept, entries)
    assert [e.number for e in cleanup.prune] == [1, 2, 3, 4, 5, 6]
    assert cleanup.singles == () and cleanup.relabel == ()
    assert cleanup.selector == (
        "prompts.dev/managed-by=prompt-operator,prompts.dev/prompt-uid=uid-1,"
        "prompts.dev/revision-number in (1,2,3,4,5,6)"
    )
    # The history users see is the limit, whatever exists behind it.
    assert [r.number for r in kept] == [7, 8]


def selects(selector: str, labels: dict[str, str]) -> bool:
    """A label selector of ``key=value`` and ``key in (a,b)`` terms, as the API server reads it."""
    for term in selector.split(",prompts.dev/"):
        term = term if term.startswith("prompts.dev/") else "prompts.dev/" + term
        if " in (" in term:
            key, values = term.split(" in (")
            if labels.get(key) not in values.rstrip(")").split(","):
                return False
        else:
            key, value = term.split("=")
            if labels.get(key) != value:
                return False
    return True


def test_the_selector_selects_exactly_the_pruned_and_never_the_kept_or_another_prompts() -> None:
    prompt = parse_prompt(body_with(3))
    kept, entries = history_of(3, 3 + prune_margin(3) + 1)
    # Another Prompt (its name a prefix-extension of this one's) with the same numbers.
    other_body = body_with(3, uid="uid-2")
    other_body["metadata"]["name"] = "greeter-2"
    other = parse_prompt(other_body)
    theirs = [
        Entry(f"other-{n}", "greeter-2", f"r{n}", n, revision_labels(other, n)) for n in (1, 2, 3)
    ]
    cleanup = plan_cleanup(prompt, kept, entries + theirs)
    assert cleanup.selector is not None
    selected = [e.name for e in entries + theirs if selects(cleanup.selector, e.labels)]
    assert selected == [e.name for e in cleanup.prune]
    kept_revisions = {r.revision for r in kept}
    assert not kept_revisions & {e.revision for e in cleanup.prune}
    assert kept[-1].revision == "r9"  # the current one stays


def test_a_rollback_to_a_configmap_beyond_the_limit_keeps_and_relabels_it() -> None:
    prompt = parse_prompt(body_with(2))
    last = 2 + prune_margin(2)  # the margin is full
    records = [history.Record(n, f"r{n}", "t", "spec", "") for n in range(1, last + 1)]
    _, entries = history_of(2, last)
    # Going back to revision 1's text: no new ConfigMap, its number is raised.
    back = history.Record(last + 1, "r1", "t", "spec", "")
    kept = history.retained(records, back, 2)
    cleanup = plan_cleanup(prompt, kept, entries)
    assert cleanup.pruned == ()  # 7 ConfigMaps: within the margin
    assert [(e.name, patch) for e, patch in cleanup.relabel] == [
        ("cm-1", {objects.REVISION_NUMBER_LABEL: str(last + 1)})
    ]


def test_a_number_shared_with_a_kept_configmap_is_deleted_by_name() -> None:
    prompt = parse_prompt(body_with(1))
    kept, entries = history_of(1, 1 + prune_margin(1) + 1)
    clash = Entry("cm-x", "greeter", "rx", 7, revision_labels(prompt, 7))  # same as the head
    unlabelled = Entry("cm-y", "greeter", "ry", 0, {objects.PROMPT_UID_LABEL: "uid-1"})
    cleanup = plan_cleanup(prompt, kept, [*entries, clash, unlabelled])
    assert {e.name for e in cleanup.singles} == {"cm-x", "cm-y"}
    assert [e.number for e in cleanup.prune] == [1, 2, 3, 4, 5, 6]
    assert "cm-7" not in {e.name for e in cleanup.pruned}


def test_changed_prompt_labels_prune_beyond_the_limit_now_and_relabel_what_it_keeps() -> None:
    before = parse_prompt(body_with(2, team="a"))
    records = [history.Record(n, f"r{n}", "t", "spec", "") for n in (1, 2, 3)]
    entries = [
        Entry(f"cm-{n}", "greeter", f"r{n}", n, revision_labels(before, n)) for n in (1, 2, 3)
    ]
    after = parse_prompt(body_with(2, team="b"))
    cleanup = plan_cleanup(after, history.retained(records, None, 2), entries)
    # A pod selecting team=a must not find revision 1 still labelled so: deleted,
    # in one request, rather than relabelled where nobody sees it.
    assert [e.name for e in cleanup.prune] == ["cm-1"]
    assert [(e.name, patch) for e, patch in cleanup.relabel] == [
        ("cm-2", {"team": "b"}),
        ("cm-3", {"team": "b"}),
    ]


def test_a_batch_never_takes_the_current_variants_or_the_scheduled_revision() -> None:
    body = body_with(2)
    body["spec"] = {
        "revisionHistoryLimit": 2,
        "variants": [
            {"name": "control", "weight": 90, "template": "Control"},
            {"name": "concise", "weight": 10, "template": "Concise"},
        ],
        "schedule": [{"at": "2030-01-01T00:00:00Z", "template": "Later"}],
    }
    prompt = parse_prompt(body)
    rendered = render(prompt, NOW)  # the variants: the schedule entry is still ahead
    last = 2 + prune_margin(2)
    records = [history.Record(n, f"r{n}", "t", "spec", "") for n in range(1, last)]
    # The revision before this one was a schedule entry taking effect.
    records.append(history.Record(last, f"r{last}", "t", "schedule 2026-04-01T00:00:00Z", ""))
    entries = [
        Entry(f"cm-{n}", "greeter", f"r{n}", n, revision_labels(prompt, n))
        for n in range(1, last + 1)
    ]
    plan = plan_revision(prompt, rendered, records, entries)
    assert plan.create is not None and plan.number == last + 1
    created = entry_from(plan.create["metadata"])
    head = history.Record(plan.number, rendered.revision, "t", "spec", "")
    kept = history.retained(records, head, prompt.history_limit)
    cleanup = plan_cleanup(prompt, kept, [*entries, created])
    pruned = {e.revision for e in cleanup.pruned}
    assert [e.number for e in cleanup.prune] == list(range(1, last))
    assert rendered.revision not in pruned and f"r{last}" not in pruned
    assert plan.create["data"].keys() >= {"variant.control", "variant.concise"}
