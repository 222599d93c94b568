"""The Argo CD health check in docs/gitops.md, run as written: the Lua is taken from
the page and run in Lua 5.1 (the language of Argo CD's gopher-lua) on Prompts in
each state, a rollout's phases included."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
KEY = "resource.customizations.health.prompts.dev_Prompt"


def health_check() -> str:
    page = (REPO / "docs" / "gitops.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```yaml\n(.*?)^```", page, re.MULTILINE | re.DOTALL):
        if KEY in block:
            return str(yaml.safe_load(block)["data"][KEY])
    raise AssertionError(f"docs/gitops.md has no {KEY}")


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(health_check())
    return str(hs["status"]), str(hs["message"])


def prompt(*conditions: dict[str, str], rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 2, "conditions": list(conditions)}
    if rollout is not None:
        status["rollout"] = rollout
    return {"metadata": {"generation": 2}, "status": status}


READY = {"type": "Ready", "status": "True", "reason": "Rendered", "message": "revision 3"}
NOT_READY = {"type": "Ready", "status": "False", "reason": "UndeclaredVariable", "message": "m"}
ABORTED = {
    "type": "SpecServed",
    "status": "False",
    "reason": "RolloutAborted",
    "message": "serving stable 1f0e, not the spec's 9a8b; a new spec clears it",
}


def rollout(phase: str, **more: Any) -> dict[str, Any]:
    return {"phase": phase, "step": 1, "steps": 4, "weight": 20, "message": "m", **more}


def test_without_a_rollout_health_is_readiness_as_before() -> None:
    assert health({"metadata": {"generation": 1}}) == ("Progressing", "Waiting for the operator")
    stale = prompt(READY)
    stale["metadata"]["generation"] = 3
    assert health(stale)[0] == "Progressing"
    assert health(prompt(READY)) == ("Healthy", "Rendered: revision 3")
    assert health(prompt(NOT_READY)) == ("Degraded", "UndeclaredVariable: m")


def test_a_rollout_in_progress_is_progressing_with_its_step_and_weight() -> None:
    assert health(prompt(READY, rollout=rollout("Progressing"))) == (
        "Progressing",
        "Rollout at step 2/4, canary 20%: m",
    )


def test_a_paused_rollout_is_suspended() -> None:
    assert health(prompt(READY, rollout=rollout("Paused"))) == (
        "Suspended",
        "Rollout paused at step 2/4: m",
    )


def test_an_aborted_rollout_is_degraded_with_what_is_served() -> None:
    status, message = health(prompt(READY, ABORTED, rollout=rollout("Aborted", weight=0)))
    assert (status, message) == ("Degraded", "RolloutAborted: " + ABORTED["message"])
    no_condition = health(prompt(READY, rollout=rollout("Aborted", message="stable served")))
    assert no_condition == ("Degraded", "RolloutAborted: stable served")


def test_a_promoted_rollout_is_healthy_and_a_bad_spec_stays_degraded() -> None:
    assert health(prompt(READY, rollout=rollout("Promoted", step=4)))[0] == "Healthy"
    assert health(prompt(NOT_READY, rollout=rollout("Progressing")))[0] == "Degraded"
