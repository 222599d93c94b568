"""Progressive rollouts on the real API server, with the real operator and a real
sidecar: weights, pauses, promotion, abort, manual actions, a restart during a
timed pause, and a Prompt without spec.rollout exactly as before."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    kubectl,
    prompt_manifest,
    sidecar_role,
    tool,
    wait_for,
)
from prompt_contract import objects
from prompt_contract.files import read_meta
from prompt_contract.variants import choose_variant

from .helpers import apply, condition, events_for, get, settle_audit, wait_prompt
from .test_operator import writes_in

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def sidecar(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[SidecarProcess]:
    role = sidecar_role(kubeconfig, namespace, tmp_path / "sidecar.kubeconfig")
    process = SidecarProcess(kubeconfig, role, namespace, "app", tmp_path)
    process.start()
    yield process
    process.stop()


def manifest(text: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return prompt_manifest("p", text, spec_extra={"rollout": {"steps": list(steps)}})


def first(kubeconfig: Path, namespace: str, text: str, *steps: dict[str, Any]) -> str:
    """The first revision: served directly, no rollout. Its hash."""
    apply(kubeconfig, manifest(text, *steps), namespace)
    obj = wait_prompt(kubeconfig, namespace, "p")
    assert "rollout" not in obj["status"]
    return str(obj["status"]["revision"])


def rollout_at(
    kubeconfig: Path, namespace: str, phase: str, timeout: float = 30, **fields: Any
) -> dict[str, Any]:
    """The Prompt once status.rollout has ``phase`` (and ``fields``)."""

    def there() -> dict[str, Any] | None:
        obj = get(kubeconfig, namespace, "prompt", "p") or {}
        rollout = (obj.get("status") or {}).get("rollout") or {}
        if rollout.get("phase") != phase:
            return None
        if any(rollout.get(k) != v for k, v in fields.items()):
            return None
        return obj

    def found() -> str:
        obj = get(kubeconfig, namespace, "prompt", "p") or {}
        return f"rollout {phase} {fields}; found {json.dumps(obj.get('status'))[:3000]}"

    return wait_for(there, timeout=timeout, interval=0.1, message=found)


def act(kubeconfig: Path, namespace: str, action: str) -> None:
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "annotate",
        "prompt",
        "p",
        f"{objects.ROLLOUT_ACTION_ANNOTATION}={action}",
        "--overwrite",
    )


def action_removed(kubeconfig: Path, namespace: str) -> bool:
    obj = get(kubeconfig, namespace, "prompt", "p") or {}
    annotations = obj["metadata"].get("annotations") or {}
    return objects.ROLLOUT_ACTION_ANNOTATION not in annotations


def reasons(kubeconfig: Path, namespace: str) -> list[str]:
    return [e["reason"] for e in events_for(kubeconfig, namespace, "p")]


def sources(obj: dict[str, Any]) -> list[str]:
    return [r["source"] for r in obj["status"]["revisions"]]


def served(sidecar: SidecarProcess) -> tuple[str | None, str | None, str | None]:
    """(text, revision, variant) of the sidecar's file for key p."""
    meta = read_meta(str(sidecar.dir), "p")
    text = sidecar.file("p")
    if meta is None or text is None:
        return None, None, None
    return text.decode(), meta.revision, meta.variant


def test_weights_and_a_timed_pause_then_promotion(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    steps = ({"setWeight": 50}, {"pause": {"duration": "2s"}}, {"setWeight": 100})
    stable = first(kubeconfig, namespace, "stable text", *steps)
    apply(kubeconfig, manifest("candidate text", *steps), namespace)
    obj = rollout_at(kubeconfig, namespace, "Promoted", step=3)
    status, rollout = obj["status"], obj["status"]["rollout"]
    candidate = rollout["candidateRevision"]
    assert (rollout["stableRevision"], rollout["weight"]) == (stable, 100)
    assert status["revision"] == candidate
    prefix = f"rollout {candidate[:8]}"
    assert sources(obj) == [
        "spec",
        f"{prefix} step 1/3: canary 50%",
        f"{prefix} step 3/3: canary 100%",
        "spec",
    ]
    composites = [r["revision"] for r in status["revisions"][1:3]]
    assert rollout["revisions"] == composites
    cond = condition(obj, "SpecServed")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "RolloutPromoted")
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
    # The 50% revision paused for its 2 s: its record and the next are >= 2 s apart.
    times = [datetime.fromisoformat(r["time"]) for r in status["revisions"]]
    assert (times[2] - times[1]).total_seconds() >= 2
    # Its ConfigMap held both texts as the stable and canary variants.
    cm = kubectl(
        kubeconfig,
        "-n",
        namespace,
        "get",
        "configmap",
        objects.configmap_name("p", composites[0]),
        "-o",
        "json",
    )
    data = json.loads(cm.stdout)["data"]
    assert data["variant.stable"] == "stable text" and data["variant.canary"] == "candidate text"
    assert json.loads(data["metadata.json"])["variants"] == [
        {"name": "stable", "weight": 50},
        {"name": "canary", "weight": 50},
    ]
    wait_for(lambda: served(sidecar) == ("candidate text", candidate, None), timeout=10)
    for reason in ("RolloutStarted", "RolloutPaused", "RolloutStepAdvanced", "RolloutPromoted"):
        assert reason in reasons(kubeconfig, namespace)


def test_pause_until_promoted_pause_resume_and_the_sidecar_follows(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    steps = ({"setWeight": 50}, {"pause": {}}, {"setWeight": 100})
    first(kubeconfig, namespace, "one", *steps)
    apply(kubeconfig, manifest("two", *steps), namespace)
    obj = rollout_at(kubeconfig, namespace, "Paused", step=1, weight=50)
    composite = obj["status"]["revision"]
    assert obj["status"]["rollout"].get("pauseUntil") is None
    # The pod's share follows choose_variant on its name, as the status counts it.
    variant = choose_variant("app", "p", [("stable", 50), ("canary", 50)])
    text = "two" if variant == "canary" else "one"
    wait_for(lambda: served(sidecar) == (text, composite, variant), timeout=10)
    counts = {v["name"]: v["pods"] for v in obj["status"]["variants"]}
    assert sum(counts.values()) <= 1
    cond = condition(obj, "SpecServed")
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "RolloutProgressing")
    # Paused by hand, then resumed: still at the open-ended pause.
    act(kubeconfig, namespace, "pause")
    rollout_at(kubeconfig, namespace, "Paused", step=1, pausedByUser=True)
    wait_for(lambda: action_removed(kubeconfig, namespace), timeout=10)
    act(kubeconfig, namespace, "resume")
    rollout_at(kubeconfig, namespace, "Paused", step=1, pausedByUser=None)
    wait_for(lambda: action_removed(kubeconfig, namespace), timeout=10)
    assert obj["status"]["revision"] == composite
    act(kubeconfig, namespace, "promote")
    promoted = rollout_at(kubeconfig, namespace, "Promoted")
    wait_for(lambda: action_removed(kubeconfig, namespace), timeout=10)
    wait_for(lambda: served(sidecar)[0] == "two" and served(sidecar)[2] is None, timeout=10)
    assert promoted["status"]["revision"] == promoted["status"]["rollout"]["candidateRevision"]
    found = reasons(kubeconfig, namespace)
    assert found.count("RolloutPaused") >= 2 and "RolloutResumed" in found


def test_abort_serves_the_stable_text_and_a_new_spec_clears_it(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    steps = ({"setWeight": 100}, {"pause": {}})
    stable = first(kubeconfig, namespace, "old text", *steps)
    apply(kubeconfig, manifest("new text", *steps), namespace)
    rollout_at(kubeconfig, namespace, "Paused", step=1)
    wait_for(lambda: served(sidecar)[0] == "new text", timeout=10)
    act(kubeconfig, namespace, "abort")
    obj = rollout_at(kubeconfig, namespace, "Aborted")
    assert obj["status"]["revision"] == stable
    wait_for(lambda: served(sidecar) == ("old text", stable, None), timeout=10)
    wait_for(lambda: action_removed(kubeconfig, namespace), timeout=10)
    cond = condition(obj, "SpecServed")
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "RolloutAborted")
    assert stable in cond["message"] and "retry" in cond["message"]
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
    assert "RolloutAborted" in reasons(kubeconfig, namespace)
    # The candidate stays in history; the stable revision is served again (a new number).
    assert sources(obj)[-1].endswith("aborted: stable")
    # A new spec rolls out from the stable revision toward it.
    apply(kubeconfig, manifest("newer text", *steps), namespace)
    again = rollout_at(kubeconfig, namespace, "Paused", step=1)
    assert again["status"]["rollout"]["stableRevision"] == stable
    wait_for(lambda: served(sidecar)[0] == "newer text", timeout=10)
    assert condition(again, "SpecServed")["reason"] == "RolloutProgressing"  # type: ignore[index]


def test_a_restart_during_a_timed_pause_keeps_its_deadline(
    kubeconfig: Path, namespace: str, operator: OperatorProcess
) -> None:
    steps = ({"setWeight": 50}, {"pause": {"duration": "5s"}}, {"setWeight": 100})
    first(kubeconfig, namespace, "before", *steps)
    apply(kubeconfig, manifest("after", *steps), namespace)
    paused = rollout_at(kubeconfig, namespace, "Paused", step=1)
    deadline = paused["status"]["rollout"]["pauseUntil"]
    operator.stop()
    operator.start()
    obj = rollout_at(kubeconfig, namespace, "Promoted", timeout=60)
    records = obj["status"]["revisions"]
    candidate = obj["status"]["rollout"]["candidateRevision"]
    # No step repeated (one 50% revision), none skipped (the 100% one is there), and
    # the pause ended no sooner than the deadline written before the restart.
    assert sources(obj) == [
        "spec",
        f"rollout {candidate[:8]} step 1/3: canary 50%",
        f"rollout {candidate[:8]} step 3/3: canary 100%",
        "spec",
    ]
    assert datetime.fromisoformat(records[2]["time"]) >= datetime.fromisoformat(deadline)


def test_without_rollout_an_edit_is_exactly_as_before(
    kubeconfig: Path, namespace: str, audit_log: Path
) -> None:
    apply(kubeconfig, prompt_manifest("p", "first"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    start = settle_audit(audit_log)
    apply(kubeconfig, prompt_manifest("p", "second"), namespace)
    obj = wait_for(
        lambda: (
            (o := wait_prompt(kubeconfig, namespace, "p"))["status"]["revisions"][-1]["number"] == 2
            and o
        ),
        timeout=30,
    )
    settle_audit(audit_log)
    writes = [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("subresource"))
        for w in writes_in(audit_log, start, namespace)
    ]
    assert sorted(writes) == [("create", "configmaps", None), ("patch", "prompts", "status")]
    assert "rollout" not in obj["status"] and condition(obj, "SpecServed") is None
    assert [r["source"] for r in obj["status"]["revisions"]] == ["spec", "spec"]


def test_rollout_with_variants_is_refused_and_a_form_change_is_not_ready(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    bad = prompt_manifest("q", "x", spec_extra={"rollout": {"steps": [{"setWeight": 10}]}})
    del bad["spec"]["template"]
    bad["spec"]["variants"] = [{"name": "a", "weight": 1, "template": "A"}]
    refused = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
        input=json.dumps(bad),
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "spec.rollout cannot be combined with spec.variants" in refused.stderr
    steps = ({"setWeight": 50},)
    stable = first(kubeconfig, namespace, "plain text", *steps)
    chat = manifest("unused", *steps)
    del chat["spec"]["template"]
    chat["spec"]["messages"] = [{"role": "system", "content": "a chat now"}]
    apply(kubeconfig, chat, namespace)
    obj = wait_prompt(kubeconfig, namespace, "p", ready=False, reason="InvalidRollout")
    message = condition(obj, "Ready")["message"]  # type: ignore[index]
    assert "form changes (text -> call" in message and "drop spec.rollout" in message
    assert obj["status"]["revision"] == stable
    assert served(sidecar)[0] == "plain text"
