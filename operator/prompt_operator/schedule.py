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

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from .model import Message, ModelConfig, Prompt, ScheduleEntry, Variant

SPEC_SOURCE = "spec"


@dataclass(frozen=True)
class Content:
    """What is served in effect: one text (a template or chat messages) and a
    model, or variants, each resolved to its own text and model."""

    template: str
    variants: tuple[Variant, ...]
    entry: ScheduleEntry | None  # None: from the spec's top level and spec.variants
    messages: tuple[Message, ...] | None = None  # a chat text; then ``template`` is ""
    model: ModelConfig | None = None

    @property
    def source(self) -> str:
        return SPEC_SOURCE if self.entry is None else f"schedule {self.entry.at_text}"

    @property
    def is_call(self) -> bool:
        """Served as a call document: some served text has messages or a model."""
        if self.variants:
            return any(v.messages is not None or v.model is not None for v in self.variants)
        return self.messages is not None or self.model is not None


def utc_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_text(item: Variant | ScheduleEntry) -> bool:
    return item.template is not None or item.messages is not None


def _filled(
    variant: Variant,
    template: str | None,
    messages: tuple[Message, ...] | None,
    model: ModelConfig | None,
) -> Variant:
    """``variant`` with what it leaves out (its text, its model) taken from the given."""
    if not has_text(variant):
        variant = replace(variant, template=template, messages=messages)
    return variant if variant.model is not None else replace(variant, model=model)


def spec_variants(prompt: Prompt) -> tuple[Variant, ...]:
    """spec.variants with each left-out text and model taken from the top level."""
    text = prompt.template if prompt.messages is None else None
    return tuple(_filled(v, text, prompt.messages, prompt.model) for v in prompt.variants)


def entry_variants(prompt: Prompt, entry: ScheduleEntry) -> tuple[Variant, ...]:
    """An entry's variants with each left-out part taken from spec.variants by name,
    then from the entry's or the spec's top level (a variant with no text anywhere
    keeps ``template`` None; policies report it)."""
    base = {v.name: v for v in prompt.variants}
    model = entry.model if entry.model is not None else prompt.model
    text, messages = _top_text(prompt, entry)
    result = []
    for variant in entry.variants:
        named = base.get(variant.name)
        if named is not None:
            variant = _filled(variant, named.template, named.messages, named.model)
        result.append(_filled(variant, text, messages, model))
    return tuple(result)


def _top_text(
    prompt: Prompt, entry: ScheduleEntry
) -> tuple[str | None, tuple[Message, ...] | None]:
    if has_text(entry):
        return entry.template, entry.messages
    if prompt.messages is not None:
        return None, prompt.messages
    return (prompt.template or None), None


def active_entry(prompt: Prompt, now: datetime) -> ScheduleEntry | None:
    """The latest entry whose time has passed (entries are sorted by time)."""
    passed = [entry for entry in prompt.schedule if entry.at <= now]
    return passed[-1] if passed else None


def content_at(prompt: Prompt, now: datetime) -> Content:
    entry = active_entry(prompt, now)
    if entry is None:
        if prompt.variants:
            return Content("", spec_variants(prompt), None)
        return Content(prompt.template, (), None, prompt.messages, prompt.model)
    if entry.variants:
        return Content("", entry_variants(prompt, entry), entry)
    model = entry.model if entry.model is not None else prompt.model
    if not has_text(entry) and prompt.variants:  # the entry changes the model alone
        return Content("", spec_variants(replace(prompt, model=model)), entry)
    template, messages = _top_text(prompt, entry)
    return Content(template or "", (), entry, messages, model)


def next_activation(prompt: Prompt, now: datetime) -> datetime | None:
    upcoming = [entry.at for entry in prompt.schedule if entry.at > now]
    return min(upcoming) if upcoming else None
