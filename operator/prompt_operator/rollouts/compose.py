"""The composite revision a rollout serves: the stable and the candidate as two variants.

Pure. The stable revision's ``Rendered`` is read back from its ConfigMap (the
hash must come out the same, or it is not used); the candidate is the spec's
own render. Both must be served the same way (key, format, text or call) and
agree on every variable's default, since one file carries both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from prompt_contract import objects

from ..policies import Problem
from ..render import Rendered

STABLE = "stable"
CANARY = "canary"
FIX = "drop spec.rollout for this change (it is then served at once), and add it back after"


def rendered_from_configmap(data: Mapping[str, str], key: str) -> Rendered | None:
    """The ``Rendered`` a revision ConfigMap holds (None when its data is not one)."""
    try:
        meta = json.loads(data.get(objects.METADATA_DATA_KEY) or "")
        source = json.loads(data.get(objects.SOURCE_DATA_KEY) or "{}")
    except ValueError:
        return None
    if not isinstance(meta, dict) or not isinstance(source, dict):
        return None
    form = str(meta.get("form") or "")
    variants = tuple(
        (
            str(v.get("name")),
            int(v.get("weight") or 0),
            data.get(objects.variant_data_key(str(v.get("name"))), ""),
        )
        for v in meta.get("variants") or []
        if isinstance(v, Mapping)
    )
    text_key = objects.CALL_DATA_KEY if form else objects.TEXT_DATA_KEY
    declared = source.get("variables")
    return Rendered(
        key=key,
        text="" if variants else data.get(text_key, ""),
        format=str(meta.get("format") or "python"),
        variables=tuple(str(v) for v in meta.get("variables") or []),
        defaults={str(k): str(v) for k, v in (meta.get("defaults") or {}).items()},
        variants=variants,
        source=str(source.get("source") or "spec"),
        descriptions=_descriptions(declared),
        form=form,
    )


def _descriptions(declared: Any) -> dict[str, str]:
    if not isinstance(declared, list):
        return {}
    return {
        str(v["name"]): str(v["description"])
        for v in declared
        if isinstance(v, Mapping) and "name" in v and v.get("description")
    }


def mismatch(stable: Rendered, candidate: Rendered) -> Problem | None:
    """Why the two cannot be served as variants of one revision, or None."""
    why = None
    if stable.variants:
        why = "the stable revision has variants"
    elif stable.key != candidate.key:
        why = f"the key changes ({stable.key!r} -> {candidate.key!r})"
    elif stable.format != candidate.format:
        why = f"the format changes ({stable.format} -> {candidate.format})"
    elif stable.form != candidate.form:
        before, after = stable.form or "text", candidate.form or "text"
        why = f"the form changes ({before} -> {after}: messages or a model make a call)"
    else:
        clash = [
            name
            for name in stable.defaults
            if name in candidate.defaults and stable.defaults[name] != candidate.defaults[name]
        ]
        if clash:
            why = f"the default of variable {clash[0]!r} changes"
    if why is None:
        return None
    return Problem(
        "InvalidRollout",
        f"this change cannot be rolled out progressively: {why}, and one file serves the "
        f"stable and the candidate as two variants; {FIX}",
    )


def compose(stable: Rendered, candidate: Rendered, weight: int, source: str) -> Rendered:
    """The stable revision for ``100 - weight`` percent and the candidate for
    ``weight`` (check ``mismatch`` first). Variables are the union of both."""
    variables = stable.variables + tuple(
        v for v in candidate.variables if v not in stable.variables
    )
    return Rendered(
        key=candidate.key,
        text="",
        format=candidate.format,
        variables=variables,
        defaults={**stable.defaults, **candidate.defaults},
        variants=((STABLE, 100 - weight, stable.text), (CANARY, weight, candidate.text)),
        source=source,
        descriptions={**stable.descriptions, **candidate.descriptions},
        form=candidate.form,
    )


def step_source(candidate: str, step: int, steps: int, weight: int) -> str:
    """The history's source of a composite revision (``step`` 0-based)."""
    return f"rollout {candidate[:8]} step {step + 1}/{steps}: canary {weight}%"
