"""The Prompt's status, computed as a pure function and written only when it changed.

Conditions follow the Kubernetes API conventions: ``type``, ``status``,
``reason`` (CamelCase), ``message``, ``lastTransitionTime`` (kept while the
status value stays the same) and ``observedGeneration``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects
from prompt_contract.variants import choose_variant


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str

    @classmethod
    def from_status(cls, cond: Mapping[str, Any]) -> Condition:
        """The condition as written in a status, to write it again unchanged."""
        return cls(
            str(cond.get("type")),
            cond.get("status") == "True",
            str(cond.get("reason")),
            str(cond.get("message")),
        )


def ready_condition(prompt: str, revision: str, number: int) -> Condition:
    """``Ready``: the revision is in place, and where."""
    name = objects.configmap_name(prompt, revision)
    return Condition(
        "Ready", True, "Rendered", f"revision {number} ({revision}) is in ConfigMap {name}"
    )


SPEC_SERVED = "SpecServed"


def spec_served_condition(rollout: Mapping[str, Any]) -> Condition:
    """``SpecServed`` while a Prompt has a rollout (``status.rollout``): whether apps
    are served the spec's own render, and if not, what they are served and what
    clears it. Ready stays True meanwhile: what is served is healthy."""
    phase = rollout.get("phase")
    candidate, stable = rollout.get("candidateRevision"), rollout.get("stableRevision")
    if phase == "Promoted":
        return Condition(
            SPEC_SERVED, True, "RolloutPromoted", f"every pod and user is served {candidate}"
        )
    if phase == "Aborted":
        return Condition(
            SPEC_SERVED,
            False,
            "RolloutAborted",
            f"the rollout of {candidate} was aborted ({rollout.get('message')}); apps are "
            f"served the stable revision {stable}, not the spec. A new spec, or "
            "`prompt-operator rollout retry NAME`, clears it",
        )
    return Condition(
        SPEC_SERVED,
        False,
        "RolloutProgressing",
        f"{rollout.get('weight', 0)}% of pods and users are served the spec ({candidate}), "
        f"the rest the stable revision {stable}: {rollout.get('message')}",
    )


def _status_word(value: bool) -> str:
    return "True" if value else "False"


def build_conditions(
    wanted: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]],
    generation: int,
    now: str,
    dropped: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Condition dicts for ``wanted``; a condition whose status did not change
    keeps its ``lastTransitionTime``. Conditions we don't manage are kept, but
    those of a type in ``dropped``."""
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    managed = {c.type for c in wanted}
    result: list[dict[str, Any]] = []
    for cond in wanted:
        word = _status_word(cond.status)
        old = before.get(cond.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == word else None
        result.append(
            {
                "type": cond.type,
                "status": word,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    result.extend(dict(c) for t, c in before.items() if t not in managed and t not in dropped)
    return result


# Fields kept as they were unless ``extra`` sets them (None in ``extra`` removes one):
# a failed edit must not lose the history, the delivery counts or the schedule.
KEPT = ("delivery", "revisions", "variants", "activeSchedule", "nextActivation", "rollout")


def build_status(
    previous: Mapping[str, Any],
    *,
    generation: int,
    conditions: Sequence[Condition],
    revision: str | None,
    key: str | None,
    now: str,
    extra: Mapping[str, Any] | None = None,
    dropped: Collection[str] = (),
) -> dict[str, Any]:
    """The full status the operator wants; ``revision`` None keeps the last good one,
    and the fields in ``KEPT`` stay unless ``extra`` says otherwise; conditions of a
    type in ``dropped`` go."""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": build_conditions(
            conditions, previous.get("conditions") or [], generation, now, dropped
        ),
    }
    last_revision = previous.get("revision")
    if revision is not None and revision != last_revision:
        status["revision"] = revision
        status["lastUpdateTime"] = now
    else:
        if last_revision is not None:
            status["revision"] = last_revision
        if previous.get("lastUpdateTime"):
            status["lastUpdateTime"] = previous["lastUpdateTime"]
    if key is not None:
        status["key"] = key
    elif previous.get("key"):
        status["key"] = previous["key"]
    for name in KEPT:
        if name in previous:
            status[name] = previous[name]
    for name, value in (extra or {}).items():
        if value is None:
            status.pop(name, None)
        else:
            status[name] = value
    return status


def status_patch(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning ``previous`` into ``desired``; empty when equal.

    Fields the operator no longer sets are removed with ``None`` (merge-patch null),
    inside an object too (status.rollout's pauseUntil): a merge patch merges objects,
    so an object written whole would keep the fields it no longer has.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = previous.get(key)
        if old == value:
            continue
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            patch[key] = status_patch(old, value)
        else:
            patch[key] = value
    for field in previous:
        if field not in desired:
            patch[field] = None
    return patch


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None


# -- delivery: what the subscribed pods serve --------------------------------------


@dataclass(frozen=True)
class DeliveryCount:
    updated: int
    subscribed: int
    missing: tuple[str, ...]


def delivered_condition(count: DeliveryCount, revision: str) -> Condition:
    """The ``Delivered`` condition, separate from ``Ready``: do the pods have it?"""
    if count.subscribed == 0:
        return Condition(
            "Delivered", True, "NoSubscribers", "no subscribed pod selects this Prompt"
        )
    if count.updated == count.subscribed:
        return Condition(
            "Delivered",
            True,
            "AllPodsUpdated",
            f"{count.updated}/{count.subscribed} subscribed pods serve revision {revision}",
        )
    waiting = ", ".join(count.missing[:5]) + (" ..." if len(count.missing) > 5 else "")
    return Condition(
        "Delivered",
        False,
        "PodsPending",
        f"{count.updated}/{count.subscribed} subscribed pods serve revision {revision}; "
        f"waiting for {waiting}",
    )


def delivery_field(count: DeliveryCount) -> dict[str, Any]:
    """``status.delivery``; ``summary`` feeds the printer column (e.g. ``3/3``)."""
    return {
        "updated": count.updated,
        "subscribed": count.subscribed,
        "summary": f"{count.updated}/{count.subscribed}",
    }


def variants_field(
    prompt: str, variants: tuple[tuple[str, int, str], ...], pods: list[str]
) -> list[dict[str, Any]] | None:
    """``status.variants``: how many of ``pods`` each variant goes to (None: no variants).

    The same function the sidecars use (``choose_variant`` on the pod's name), so
    the count is what the pods serve once they have the revision.
    """
    if not variants:
        return None
    weights = [(name, weight) for name, weight, _ in variants]
    counts = dict.fromkeys((name for name, _ in weights), 0)
    for pod in pods:
        chosen = choose_variant(pod, prompt, weights)
        if chosen is not None:
            counts[chosen] += 1
    return [{"name": n, "weight": w, "pods": counts[n]} for n, w in weights]
