"""Scheduled activation: what a Prompt serves at a given moment, and one timer for all.

What apps are served is a pure function of the spec and the clock: the latest
schedule entry whose time has passed, or ``spec.template`` / ``spec.variants``
before the first. So an operator that was down across an activation applies
the latest passed entry when it starts (once: the revision it renders is then
already current), and a GitOps tool re-applying the manifest changes nothing.

``Scheduler`` is the one timer of the whole operator: a heap of (time, Prompt)
and a single task that sleeps until the earliest and then asks the reconciler
to look at that Prompt again. No per-object kopf timers or daemons (they need
a finalizer on every Prompt) and no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from .logs import about
from .model import Prompt, PromptRef, ScheduleEntry, Variant

logger = logging.getLogger(__name__)

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


class Scheduler:
    """Wakes the reconciler for a Prompt when its next schedule entry is due."""

    def __init__(
        self,
        wake: Callable[[PromptRef], None],
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._wake = wake
        self._clock = clock
        self._due: dict[PromptRef, datetime] = {}
        self._heap: list[tuple[datetime, str, str]] = []
        self._changed = asyncio.Event()

    def set(self, ref: PromptRef, when: datetime | None) -> None:
        """Wake ``ref`` at ``when`` (None: never); replaces any earlier timer."""
        if when is None:
            self._due.pop(ref, None)  # its heap entry is skipped when it comes up
            return
        if self._due.get(ref) == when:
            return
        self._due[ref] = when
        heapq.heappush(self._heap, (when, ref.namespace, ref.name))
        self._changed.set()

    def due(self, ref: PromptRef) -> datetime | None:
        return self._due.get(ref)

    def __len__(self) -> int:
        return len(self._due)

    def pop_due(self, now: datetime) -> list[PromptRef]:
        """Remove and return every Prompt whose time has come."""
        woken = []
        while self._heap and self._heap[0][0] <= now:
            when, namespace, name = heapq.heappop(self._heap)
            ref = PromptRef(namespace, name)
            if self._due.get(ref) == when:  # not replaced or cancelled since
                del self._due[ref]
                woken.append(ref)
        return woken

    async def run(self) -> None:
        while True:
            for ref in self.pop_due(self._clock()):
                logger.info("Prompt %s: a schedule entry is due", ref, extra=about(ref))
                self._wake(ref)
            self._changed.clear()
            delay = None
            if self._heap:
                delay = max(0.0, (self._heap[0][0] - self._clock()).total_seconds())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=delay)
