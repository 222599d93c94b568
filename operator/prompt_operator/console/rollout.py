"""The rollout panel of a Prompt's page, from ``rollouts.view`` (the CLI reads the same
values, so the two never disagree): steps with the current one marked, the stable and
canary shares, analysis runs against their thresholds, the actions that make sense now.
Pure; the page prints it, the service writes the action asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

from ..rollouts import view
from ..rollouts.view import Rollout

# The buttons, in the order shown, and what each does (their title).
BUTTONS = (
    ("promote", "Promote", "finish the current pause or analysis step and go on"),
    ("promote-full", "Promote fully", "skip the remaining steps: the candidate becomes stable"),
    ("pause", "Pause", "stay at the current step until resumed"),
    ("resume", "Resume", "go on from the pause"),
    ("retry", "Retry", "start the aborted rollout again from the first step"),
    ("abort", "Abort", "serve the stable revision alone again, to every pod and user"),
)
ASKED = "Asked the operator to {action} the rollout; it acts once and removes the annotation."


@dataclass(frozen=True)
class StepRow:
    number: int  # counted from 1
    text: str
    state: str  # done | current | stopped | next


@dataclass(frozen=True)
class Button:
    action: str  # the annotation's value
    label: str
    title: str


@dataclass(frozen=True)
class Panel:
    rollout: Rollout
    steps: tuple[StepRow, ...]
    stable_percent: int
    canary_percent: int
    spec_served: str | None  # set while what is served differs from the spec
    buttons: tuple[Button, ...]


def panel(obj: Mapping[str, Any]) -> Panel | None:
    """The panel of the Prompt ``obj``; None when it has had no rollout."""
    status = obj.get("status") or {}
    rollout = view.rollout_of(status)
    if rollout is None:
        return None
    name = str((obj.get("metadata") or {}).get("name") or "")
    steps = view.steps_of(obj.get("spec"))
    states = view.step_states(len(steps), rollout)
    canary = min(max(rollout.weight or 0, 0), 100)
    served = view.spec_served_message(status)
    if served is None and rollout.phase == view.ABORTED:
        served = view.ABORTED_DEFAULT
    return Panel(
        rollout=rollout,
        steps=tuple(
            StepRow(i + 1, s.text, state)
            for i, (s, state) in enumerate(zip(steps, states, strict=True))
        ),
        stable_percent=100 - canary,
        canary_percent=canary,
        spec_served=served,
        buttons=tuple(
            Button(action, label, title)
            for action, label, title in BUTTONS
            if view.action_problem(rollout, action, name) is None
        ),
    )


def asked_notice(value: str | None) -> str | None:
    """The notice after an action was written (``?rollout=ACTION`` on the page)."""
    if value not in objects.ROLLOUT_ACTIONS:
        return None
    return ASKED.format(action="fully promote" if value == "promote-full" else value)
