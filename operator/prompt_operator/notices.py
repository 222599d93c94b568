"""Warnings that refuse nothing: said at `kubectl apply` and by `validate`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .model import SpecError, parse_prompt


def admission_warnings(body: Any, now: datetime) -> list[str]:
    """Warnings `kubectl apply` prints without refusing: schedule entries already in
    the past (a GitOps tool re-applies old manifests long after their time)."""
    try:
        prompt = parse_prompt(body)
    except SpecError:
        return []
    return [
        f"spec.schedule entry {entry.at_text} is in the past; it applies now if it is the "
        "latest one that has passed"
        for entry in prompt.schedule
        if entry.at <= now
    ]
