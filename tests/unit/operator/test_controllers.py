"""The pure parts of the controllers: key claims and the revision plan."""

from __future__ import annotations

from datetime import datetime, timezone

from prompt_operator import history
from prompt_operator.configmap import revision_labels
from prompt_operator.controllers.keyclaims import KeyClaims
from prompt_operator.controllers.revisions import plan_cleanup, plan_revision
from prompt_operator.inventory import Entry
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


def test_the_history_limit_prunes_the_oldest_and_relabels_what_it_keeps() -> None:
    prompt = parse_prompt(prompt_body("Three"))
    old = [history.Record(n, f"r{n}", "t", "spec", "") for n in (1, 2)]
    new = history.Record(3, "r3", "t", "spec", "")
    kept = history.retained(old, new, 2)  # a history of two
    entries = [
        Entry(f"cm-{n}", "greeter", f"r{n}", n, revision_labels(prompt, n)) for n in (1, 2, 3)
    ]
    stale = Entry("cm-2", "greeter", "r2", 2, {**revision_labels(prompt, 2), "team": "old"})
    cleanup = plan_cleanup(prompt, kept, [entries[0], stale, entries[2]])
    assert [e.name for e in cleanup.prune] == ["cm-1"]
    assert [(e.name, patch) for e, patch in cleanup.relabel] == [("cm-2", {"team": None})]
