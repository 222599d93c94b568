"""The console's rollout panel: what it shows from status.rollout and spec.rollout, which
buttons it offers in which phase, and that every value from the cluster is escaped."""

from __future__ import annotations

import copy
from typing import Any

from prompt_operator.console import edit_form, rollout
from prompt_operator.console.rendering import environment

from ..operator.test_rollout_view import ROLLOUT, SPEC_ROLLOUT
from .test_server_guard import Console, run

EVIL = '<script>alert("x")</script>'


def prompt(raw: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "greeter", "namespace": "team"},
        "spec": {"template": "Hello", "rollout": SPEC_ROLLOUT},
        "status": {"rollout": raw, **status},
    }


def html(obj: dict[str, Any], asked: str | None = None) -> str:
    panel = rollout.panel(obj)
    assert panel is not None
    return (
        environment()
        .get_template("_rollout.html")
        .render(
            rollout=panel,
            rollout_asked=rollout.asked_notice(asked),
            namespace="team",
            row=type("Row", (), {"name": "greeter"})(),
            csrf="TOKEN",
        )
    )


def test_a_prompt_without_a_rollout_has_no_panel() -> None:
    assert rollout.panel({"metadata": {"name": "g"}, "spec": {}, "status": {}}) is None


def test_the_panel_marks_the_current_step_and_splits_stable_and_canary() -> None:
    panel = rollout.panel(prompt(ROLLOUT))
    assert panel is not None
    assert [s.state for s in panel.steps] == ["done", "current", "next", "next", "next"]
    assert (panel.stable_percent, panel.canary_percent) == (80, 20)
    assert [b.action for b in panel.buttons] == ["promote", "promote-full", "pause", "abort"]
    assert panel.spec_served is None


def test_an_aborted_rollout_says_what_is_served_and_offers_retry_only() -> None:
    raw = copy.deepcopy(ROLLOUT)
    raw.update(phase="Aborted", weight=0)
    cond = {"type": "SpecServed", "status": "False", "message": "stable 1f0e served"}
    panel = rollout.panel(prompt(raw, conditions=[cond]))
    assert panel is not None
    assert panel.spec_served == "stable 1f0e served"
    assert [b.action for b in panel.buttons] == ["retry"]
    assert [s.state for s in panel.steps][:2] == ["done", "stopped"]
    page = html(prompt(raw, conditions=[cond]))
    assert "What is served differs from the spec; a new spec clears it." in page
    assert "aborted here" in page


def test_a_weight_out_of_range_is_clamped_for_the_bar() -> None:
    raw = {**ROLLOUT, "weight": 140}
    panel = rollout.panel(prompt(raw))
    assert panel is not None and (panel.stable_percent, panel.canary_percent) == (0, 100)


def test_the_panel_shows_measured_values_against_thresholds_and_a_csrf_form() -> None:
    page = html(prompt(ROLLOUT), asked="pause")
    assert "data-compare>0.95 &gt;= 0.9<" in page
    assert "data-compare>0.8333 &lt; 0.9<" in page
    assert 'name="csrf_token" value="TOKEN"' in page
    assert 'value="abort"' in page and 'value="retry"' not in page
    assert "Asked the operator to pause the rollout" in page
    assert 'action="/ns/team/prompts/greeter/rollout"' in page


def test_every_value_from_the_cluster_is_escaped() -> None:
    raw = copy.deepcopy(ROLLOUT)
    raw.update(
        phase=EVIL,
        message=EVIL,
        stableRevision=EVIL,
        candidateRevision=EVIL,
        analysisRuns=[
            {
                "step": 0,
                "provider": EVIL,
                "phase": EVIL,
                "job": EVIL,
                "log": EVIL,
                "message": EVIL,
                "measurements": [{"at": EVIL, "phase": EVIL, "value": 1, "threshold": 0.5}],
            }
        ],
    )
    cond = {"type": "SpecServed", "status": "False", "message": EVIL}
    obj = prompt(raw, conditions=[cond])
    obj["spec"]["rollout"] = {"steps": [{"pause": {"duration": EVIL}}]}
    page = html(obj, asked=EVIL)
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") >= 10
    assert rollout.asked_notice(EVIL) is None


def test_a_rollout_action_needs_the_sessions_csrf_token_and_a_known_action() -> None:
    async def test(console: Console) -> None:
        await console.log_in()
        path = "/ns/team/prompts/x/rollout"
        forged = await console.client.post(path, data={"csrf_token": "guess", "action": "abort"})
        assert forged.status == 403
        token = await console.csrf()
        unknown = await console.client.post(path, data={"csrf_token": token, "action": "nuke"})
        assert unknown.status == 400 and "not one of promote" in await unknown.text()
        # Past every guard: the API server (nothing listens there) is asked.
        asked = await console.client.post(path, data={"csrf_token": token, "action": "abort"})
        assert asked.status == 502

    run(test)


def test_an_edit_in_the_console_keeps_spec_rollout() -> None:
    """The edit form does not show spec.rollout; saving the text must not drop it (the
    console writes the whole spec, with fields it dropped set to null)."""
    obj = prompt(ROLLOUT)
    form = edit_form.form_from_fields(
        {"template": ["Hello again"], "key": [""], "format": ["python"], "var_name": [""]}
    )
    spec = edit_form.spec_from_form(obj, form)
    assert spec["template"] == "Hello again" and spec["rollout"] == SPEC_ROLLOUT
