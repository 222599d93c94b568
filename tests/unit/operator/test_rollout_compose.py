"""The composite revision: the stable and the candidate as two weighted variants."""

from __future__ import annotations

from typing import Any

from prompt_contract.variants import choose_variant
from prompt_operator.configmap import configmap_data
from prompt_operator.model import parse_prompt
from prompt_operator.render import Rendered, render
from prompt_operator.rollouts.compose import (
    CANARY,
    STABLE,
    compose,
    mismatch,
    rendered_from_configmap,
    step_source,
)


def rendered(spec: dict[str, Any]) -> Rendered:
    return render(parse_prompt({"metadata": {"name": "p", "namespace": "n"}, "spec": spec}))


STABLE_SPEC = {"template": "Hi {user}", "variables": [{"name": "user", "default": "you"}]}
CANDIDATE_SPEC = {
    "template": "Hello {user} {tone}",
    "variables": [{"name": "user", "default": "you"}, {"name": "tone", "description": "how"}],
}


def test_a_revision_is_read_back_from_its_configmap_with_the_same_hash() -> None:
    for spec in (
        STABLE_SPEC,
        CANDIDATE_SPEC,
        {"messages": [{"role": "system", "content": "Be brief"}], "model": {"name": "m"}},
        {"variants": [{"name": "a", "weight": 1, "template": "A"}]},
    ):
        original = rendered(spec)
        back = rendered_from_configmap(configmap_data(original), original.key)
        assert back is not None
        assert back.revision == original.revision
        assert back.texts == original.texts and back.descriptions == original.descriptions


def test_garbled_data_is_not_a_revision() -> None:
    assert rendered_from_configmap({"metadata.json": "{"}, "p") is None


def test_composite_serves_both_texts_by_weight_with_the_union_of_variables() -> None:
    stable, candidate = rendered(STABLE_SPEC), rendered(CANDIDATE_SPEC)
    composite = compose(stable, candidate, 20, step_source(candidate.revision, 0, 3, 20))
    assert composite.variants == ((STABLE, 80, stable.text), (CANARY, 20, candidate.text))
    assert composite.variables == ("user", "tone")
    assert composite.defaults == {"user": "you"}
    assert composite.source == f"rollout {candidate.revision[:8]} step 1/3: canary 20%"
    assert composite.revision not in (stable.revision, candidate.revision)
    assert compose(stable, candidate, 50, "x").revision != composite.revision


def test_what_cannot_be_served_as_two_variants_is_said() -> None:
    stable = rendered(STABLE_SPEC)
    call = rendered({"messages": [{"role": "system", "content": "Hi {user}"}], **_vars()})
    problem = mismatch(stable, call)
    assert problem is not None and problem.reason == "InvalidRollout"
    assert "form changes (text -> call" in problem.message
    assert "drop spec.rollout for this change" in problem.message
    raw = rendered({"template": "x", "format": "raw"})
    assert "format changes" in (mismatch(rendered({"template": "x"}), raw) or _none()).message
    other = rendered({"template": "Hi {user}", "variables": [{"name": "user", "default": "me"}]})
    assert "default of variable 'user'" in (mismatch(stable, other) or _none()).message
    ab = rendered({"variants": [{"name": "a", "weight": 1, "template": "A"}]})
    assert "stable revision has variants" in (mismatch(ab, stable) or _none()).message
    assert mismatch(stable, rendered(CANDIDATE_SPEC)) is None


def _vars() -> dict[str, Any]:
    return {"variables": [{"name": "user", "default": "you"}]}


def _none() -> Any:
    raise AssertionError("expected a mismatch")


def test_stickiness_a_user_only_moves_from_stable_to_canary() -> None:
    """Over 10,000 user ids, as the weight grows through the steps no id goes back
    from canary to stable, and the share served canary is near the weight."""
    users = [f"user-{i}" for i in range(10_000)]
    on_canary: set[str] = set()
    for weight in (0, 5, 20, 50, 80, 100):
        weights = [(STABLE, 100 - weight), (CANARY, weight)]
        chosen = {u for u in users if choose_variant(u, "greeting", weights) == CANARY}
        assert on_canary <= chosen, f"{len(on_canary - chosen)} users moved back at {weight}%"
        share = len(chosen) / len(users)
        assert abs(share - weight / 100) < 0.02, (weight, share)
        on_canary = chosen
