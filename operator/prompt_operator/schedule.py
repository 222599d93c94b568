"""Scheduled activation: what a Prompt serves at a given moment, and when that changes.

What apps are served is a pure function of the spec and the clock: the latest
schedule entry whose time has passed, or ``spec.template`` / ``spec.variants``
before the first. So an operator that was down across an activation applies
the latest passed entry when it starts (once: the revision it renders is then
already current), and a GitOps tool re-applying the manifest changes nothing.

Nothing here keeps a timer: the Prompt controller's reconcile returns "look
again at ``next_activation``" and the runtime's delaying work queue (one heap,
one timer for the whole operator) brings the Prompt back then. No per-object
kopf timers or daemons (they need a finalizer on every Prompt) and no polling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .model import Prompt, ScheduleEntry, Variant

SPEC_SOURCE = "spec"


@dataclass(frozen=True)
class Content:
    """The text source in effect: one template, or variants (each with its text)."""

    template: str
    variants: tuple[Variant, ...]
    entry: ScheduleEntry | None  # None: from spec.template / spec.variants

    @property
    def source(self) -> str:
        return SPEC_SOURCE if self.entry is None else f"schedule {self.entry.at_text}"


def utc_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_variants(prompt: Prompt, entry: ScheduleEntry) -> tuple[Variant, ...]:
    """An entry's variants with each missing text taken from spec.variants by name
    (a variant with neither keeps ``template`` None; policies report it)."""
    base = {v.name: v.template for v in prompt.variants}
    return tuple(
        v if v.template is not None else Variant(v.name, v.weight, base.get(v.name))
        for v in entry.variants
    )


def active_entry(prompt: Prompt, now: datetime) -> ScheduleEntry | None:
    """The latest entry whose time has passed (entries are sorted by time)."""
    passed = [entry for entry in prompt.schedule if entry.at <= now]
    return passed[-1] if passed else None


def content_at(prompt: Prompt, now: datetime) -> Content:
    entry = active_entry(prompt, now)
    if entry is None:
        return Content(prompt.template, prompt.variants, None)
    if entry.variants:
        return Content("", entry_variants(prompt, entry), entry)
    return Content(entry.template or "", (), entry)


def next_activation(prompt: Prompt, now: datetime) -> datetime | None:
    upcoming = [entry.at for entry in prompt.schedule if entry.at > now]
    return min(upcoming) if upcoming else None
