"""What a Prompt asks for at one moment: parsed, rendered and judged once.

A reconcile turns the body into this typed value at its start and every
controller after it reads from it; nothing parses or renders the Prompt a
second time. ``settled`` is the pure check that lets an operator restart with
thousands of Prompts queue none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from .. import history
from ..configmap import revision_labels
from ..includes import Resolved
from ..inventory import Entry
from ..model import Prompt
from ..policies import Problem, Verdict, evaluate
from ..render import Rendered, render
from ..schedule import next_activation, utc_text
from ..status import condition


@dataclass(frozen=True)
class Desired:
    prompt: Prompt
    rendered: Rendered
    now: datetime
    upcoming: datetime | None  # the next schedule entry's time
    include_warnings: tuple[Problem, ...] = ()  # from expanding spec.includes
    cause: str | None = None  # why a new revision, when not the Prompt's own spec

    @cached_property  # judged only by a reconcile; the intake's settled check needs none
    def verdict(self) -> Verdict:
        verdict = evaluate(self.prompt, self.rendered)
        if verdict.ok and self.include_warnings:
            return dataclasses.replace(verdict, warnings=verdict.warnings + self.include_warnings)
        return verdict

    @property
    def next_activation(self) -> str | None:
        return utc_text(self.upcoming) if self.upcoming else None

    @property
    def active_schedule(self) -> str | None:
        source = self.rendered.source
        return source.removeprefix("schedule ") if source.startswith("schedule ") else None

    def seconds_to_next_entry(self) -> float | None:
        """When to look at this Prompt again for its schedule; None: never."""
        if self.upcoming is None:
            return None
        return max(0.001, (self.upcoming - self.now).total_seconds())


def desired_at(
    prompt: Prompt,
    now: datetime,
    *,
    include_warnings: tuple[Problem, ...] = (),
    cause: str | None = None,
) -> Desired:
    """``prompt`` (its includes already expanded) as it stands at ``now``."""
    rendered = render(prompt, now)
    return Desired(prompt, rendered, now, next_activation(prompt, now), include_warnings, cause)


def include_cause(resolved: tuple[Resolved, ...], changed: Collection[str]) -> str | None:
    """The history's reason for a new revision when included Prompts changed:
    ``changed`` names the Prompts whose spec changed since the last reconcile."""
    parts = []
    for include in resolved:
        through = [name for name in include.reaches if name in changed]
        if not through:
            continue
        via = [name for name in through if name != include.prompt]
        parts.append(
            f"include {include.name} -> {include.prompt} changed"
            + (f" (through {', '.join(via)})" if via else "")
        )
    return "; ".join(parts) or None


def known_delivery(status: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(updated, subscribed)`` as the status has them, when it has both."""
    delivery = status.get("delivery") or {}
    updated, subscribed = delivery.get("updated"), delivery.get("subscribed")
    if isinstance(updated, int) and isinstance(subscribed, int):
        return (updated, subscribed)
    return None


def settled(desired: Desired, status: Mapping[str, Any], current: Entry | None) -> bool:
    """True when the cluster already matches ``desired``: ``current`` (the ConfigMap
    of its revision) exists with the right labels, and the status describes this
    generation as Ready with that revision, a delivery count and the next
    activation."""
    prompt, revision = desired.prompt, desired.rendered.revision
    ready = condition(status, "Ready")
    if (
        ready is None
        or ready.get("status") != "True"
        or status.get("observedGeneration") != prompt.generation
        or known_delivery(status) is None
        or status.get("revision") != revision
        or status.get("nextActivation") != desired.next_activation
    ):
        return False
    records = history.records_from(status)
    head = records[-1] if records else None
    if head is None or head.revision != revision:
        return False
    return current is not None and current.labels == revision_labels(prompt, head.number)
