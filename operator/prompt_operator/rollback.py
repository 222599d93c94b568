"""The patch that makes a Prompt serve an earlier revision again.

Shared by `prompt-operator rollback` and the console's rollback page, so both
restore the same bytes (and so the same revision hash). A rollback writes the
spec as `kubectl rollout undo` writes a Deployment's: the old text, variables,
format, key and variants come back, and schedule entries whose time has passed
are removed (they took effect and are in the history; left in place, the
latest of them would win over the rollback). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prompt_contract import objects

from .model import SpecError, parse_time


class RollbackError(ValueError):
    """The revision cannot be restored; the message says why."""


def rollback_patch(
    prompt: Mapping[str, Any], data: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """The merge patch that makes a Prompt serve the revision whose ConfigMap
    data is ``data`` again (exact bytes, so the same revision hash)."""
    source = json.loads(data.get(objects.SOURCE_DATA_KEY) or "{}")
    if not isinstance(source, dict) or "format" not in source:
        raise RollbackError(
            "that revision's ConfigMap has no source.json; it cannot be rolled back"
        )
    name = str((prompt.get("metadata") or {}).get("name"))
    spec: dict[str, Any] = {
        "format": source["format"],
        "key": None if source.get("key") == name else source.get("key"),
        "variables": source.get("variables") or None,
    }
    variants = source.get("variants") or []
    if variants:
        spec["template"] = None
        spec["variants"] = [
            {
                "name": v["name"],
                "weight": v["weight"],
                "template": data.get(objects.variant_data_key(v["name"]), ""),
            }
            for v in variants
        ]
    else:
        spec["template"] = data.get(objects.TEXT_DATA_KEY, "")
        spec["variants"] = None
    schedule = ((prompt.get("spec") or {}).get("schedule")) or []
    future = [e for e in schedule if _is_future(e, now)]
    if len(future) != len(schedule):
        spec["schedule"] = future or None
    return {"spec": spec}


def _is_future(entry: Any, now: datetime) -> bool:
    try:
        return parse_time(str(entry.get("at")), "at") > now
    except (SpecError, AttributeError):
        return True  # not ours to judge; the API server and operator report it
