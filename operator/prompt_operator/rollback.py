"""The patch that makes a Prompt serve an earlier revision again.

Shared by `prompt-operator rollback` and the console's rollback page, so both
restore the same bytes (and so the same revision hash). A rollback writes the
spec as `kubectl rollout undo` writes a Deployment's: the old text, variables,
format, key and variants come back (a call-form revision's chat messages and
model, from its call documents, too), and schedule entries whose time has passed
are removed (they took effect and are in the history; left in place, the
latest of them would win over the rollback). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prompt_contract import objects
from prompt_contract.calls import CALL_FORM

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
    meta = json.loads(data.get(objects.METADATA_DATA_KEY) or "{}")
    call = isinstance(meta, dict) and meta.get("form") == CALL_FORM
    variants = source.get("variants") or []
    if variants:
        spec.update(template=None, messages=None, model=None)
        spec["variants"] = [
            {
                "name": v["name"],
                "weight": v["weight"],
                **served_fields(data.get(objects.variant_data_key(v["name"]), ""), call),
            }
            for v in variants
        ]
    else:
        text_key = objects.CALL_DATA_KEY if call else objects.TEXT_DATA_KEY
        spec.update(template=None, messages=None, model=None)
        spec.update(served_fields(data.get(text_key, ""), call))
        spec["variants"] = None
    current = prompt.get("spec") or {}
    for field in ("messages", "model"):
        if spec.get(field) is None and field not in current:
            spec.pop(field, None)  # nothing to remove
    if isinstance(spec.get("model"), dict):
        spec["model"] = replacing(current.get("model"), spec["model"])
    schedule = current.get("schedule") or []
    future = [e for e in schedule if _is_future(e, now)]
    if len(future) != len(schedule):
        spec["schedule"] = future or None
    return {"spec": spec}


def served_fields(text: str, call: bool) -> dict[str, Any]:
    """The spec fields that serve ``text`` again: the template of a text, or the
    template or messages and the model of a call document."""
    if not call:
        return {"template": text}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RollbackError("that revision's call document is not JSON") from exc
    fields: dict[str, Any] = {}
    if "messages" in doc:
        fields["messages"] = doc["messages"]
    else:
        fields["template"] = doc.get("template", "")
    if doc.get("model"):
        fields["model"] = doc["model"]
    return fields


def replacing(current: Any, target: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of an object that gives ``target`` exactly: a merge patch
    merges objects, so each key ``current`` has and ``target`` lacks is nulled."""
    if not isinstance(current, Mapping):
        return target
    patch: dict[str, Any] = {key: None for key in current if key not in target}
    for key, value in target.items():
        inner = current.get(key)
        patch[key] = replacing(inner, value) if isinstance(value, dict) else value
    return patch


def _is_future(entry: Any, now: datetime) -> bool:
    try:
        return parse_time(str(entry.get("at")), "at") > now
    except (SpecError, AttributeError):
        return True  # not ours to judge; the API server and operator report it
