"""The operator against a real API server: Prompt -> ConfigMap, status, events, write budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    audit_writes,
    kubectl,
    prompt_manifest,
    wait_for,
)
from tests.reliability.report import Observed

from .conftest import OPERATOR_USER
from .helpers import (
    apply,
    condition,
    configmap_text,
    current_configmap,
    events_for,
    get,
    settle_audit,
    wait_prompt,
)

pytestmark = pytest.mark.usefixtures("operator")


def writes_in(audit_log: Path, since: int, namespace: str | None = None) -> list[dict]:
    events = audit_writes(audit_log, OPERATOR_USER, since)
    if namespace is not None:
        events = [e for e in events if (e.get("objectRef") or {}).get("namespace") == namespace]
    return events


@pytest.mark.parametrize(
    "text",
    [
        "Hello, {name}!\n\n\n",
        "Grüße aus Köln 🚀 — ünïcödé {name}\r\nline two\r\n",
    ],
    ids=["trailing-newlines", "unicode-crlf"],
)
def test_prompt_text_reaches_configmap_byte_for_byte(
    kubeconfig: Path, namespace: str, text: str
) -> None:
    apply(kubeconfig, prompt_manifest("greeter", text, variables=["name"]), namespace)
    obj = wait_prompt(kubeconfig, namespace, "greeter")
    assert configmap_text(kubeconfig, namespace, "greeter") == text
    cm = current_configmap(kubeconfig, namespace, "greeter")
    assert cm is not None
    assert cm["metadata"]["annotations"]["prompts.dev/revision"] == obj["status"]["revision"]
    assert cm["metadata"]["annotations"]["prompts.dev/key"] == "greeter"
    assert cm["metadata"]["labels"]["prompts.dev/managed-by"] == "prompt-operator"
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Prompt", "greeter", True)
    assert owner["uid"] == obj["metadata"]["uid"]


def test_kubectl_wait_for_ready_works(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("waitable", "plain text"), namespace)
    result = kubectl(
        kubeconfig,
        "-n",
        namespace,
        "wait",
        "--for=condition=Ready",
        "prompt/waitable",
        "--timeout=30s",
    )
    assert "condition met" in result.stdout


@pytest.mark.slow
def test_900_kib_prompt_applied_server_side(kubeconfig: Path, namespace: str) -> None:
    text = ("Ünïcode line with {{braces}} and text.\n" * 24000)[: 900 * 1024]
    apply(kubeconfig, prompt_manifest("huge", text, fmt="raw"), namespace, server_side=True)
    obj = wait_prompt(kubeconfig, namespace, "huge", timeout=60)
    assert configmap_text(kubeconfig, namespace, "huge") == text
    annotations = obj["metadata"].get("annotations") or {}
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 1024, annotations.keys()


def test_edit_gives_new_revision_and_revert_gives_old(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("p", "version A"), namespace)
    rev_a = wait_prompt(kubeconfig, namespace, "p")["status"]["revision"]
    apply(kubeconfig, prompt_manifest("p", "version B"), namespace)
    rev_b = wait_prompt(kubeconfig, namespace, "p")["status"]["revision"]
    assert rev_b != rev_a
    assert configmap_text(kubeconfig, namespace, "p") == "version B"
    apply(kubeconfig, prompt_manifest("p", "version A"), namespace)
    assert wait_prompt(kubeconfig, namespace, "p")["status"]["revision"] == rev_a
    assert configmap_text(kubeconfig, namespace, "p") == "version A"


@pytest.mark.reliability(
    case="S-template operator",
    did="apply a Prompt whose template is bad, after a good one",
)
@pytest.mark.parametrize(
    ("template", "variables", "reason", "needle"),
    [
        ("Hi {user}, about {order}", ["user"], "UndeclaredVariable", "{order}"),
        ("Unbalanced { brace", [], "MalformedTemplate", "malformed braces"),
        ("Reach {user.__class__}", ["user"], "ForbiddenPlaceholder", "attribute or index"),
        ("Index {items[0]}", ["items"], "ForbiddenPlaceholder", "attribute or index"),
        ("Repr {user!r}", ["user"], "ForbiddenPlaceholder", "conversion"),
    ],
)
def test_bad_template_is_not_ready_and_keeps_last_good_configmap(
    kubeconfig: Path,
    namespace: str,
    template: str,
    variables: list[str],
    reason: str,
    needle: str,
    observed: Observed,
) -> None:
    apply(kubeconfig, prompt_manifest("p", "good {user}", variables=["user"]), namespace)
    good = wait_prompt(kubeconfig, namespace, "p")
    apply(kubeconfig, prompt_manifest("p", template, variables=variables), namespace)
    bad = wait_prompt(kubeconfig, namespace, "p", ready=False, reason=reason)
    ready = condition(bad, "Ready")
    assert ready is not None and needle in ready["message"]
    assert bad["status"]["revision"] == good["status"]["revision"]
    observed(f"Ready=False {reason}: {ready['message']}; the last good revision stays served")
    assert configmap_text(kubeconfig, namespace, "p") == "good {user}"
    wait_for(
        lambda: any(
            e["reason"] == reason and e["type"] == "Warning"
            for e in events_for(kubeconfig, namespace, "p")
        ),
        timeout=10,
        message=f"a Warning event {reason}",
    )


def test_unused_variable_is_ready_with_a_warning_event(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("p", "Hello {name}", variables=["name", "unused"]), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    events = wait_for(
        lambda: [
            e for e in events_for(kubeconfig, namespace, "p") if e["reason"] == "UnusedVariable"
        ],
        timeout=10,
        message="UnusedVariable event",
    )
    assert events[0]["type"] == "Warning" and "unused" in events[0]["message"]


def test_raw_format_serves_braces_as_is(kubeconfig: Path, namespace: str) -> None:
    text = '{"schema": {"type": "object"}} {not a placeholder} }{ {{ }}'
    apply(kubeconfig, prompt_manifest("raw", text, fmt="raw"), namespace)
    wait_prompt(kubeconfig, namespace, "raw")
    assert configmap_text(kubeconfig, namespace, "raw") == text


def test_second_prompt_with_same_key_gets_key_conflict(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("first", "one", key="shared"), namespace)
    wait_prompt(kubeconfig, namespace, "first")
    apply(kubeconfig, prompt_manifest("second", "two", key="shared"), namespace)
    second = wait_prompt(kubeconfig, namespace, "second", ready=False, reason="KeyConflict")
    assert "first" in condition(second, "Ready")["message"]  # type: ignore[index]
    assert current_configmap(kubeconfig, namespace, "second") is None
    # When the owner goes, the other one takes the key over.
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "first")
    wait_prompt(kubeconfig, namespace, "second")
    assert configmap_text(kubeconfig, namespace, "second") == "two"


def test_deleted_prompt_removes_configmap_and_recreate_works(
    kubeconfig: Path, namespace: str, operator: OperatorProcess
) -> None:
    apply(kubeconfig, prompt_manifest("gone", "text"), namespace)
    wait_prompt(kubeconfig, namespace, "gone")
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "gone", "--timeout=20s")
    wait_for(
        lambda: current_configmap(kubeconfig, namespace, "gone") is None,
        timeout=30,
        message="ConfigMap removed",
    )
    apply(kubeconfig, prompt_manifest("gone", "text again"), namespace)
    wait_prompt(kubeconfig, namespace, "gone")
    assert configmap_text(kubeconfig, namespace, "gone") == "text again"
    errors = [r for r in operator.log_records() if r.get("levelname") in ("ERROR", "CRITICAL")]
    assert not errors, errors


def test_configmap_deleted_by_hand_is_written_again(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("p", "keep me"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    cm = current_configmap(kubeconfig, namespace, "p")
    assert cm is not None
    kubectl(kubeconfig, "-n", namespace, "delete", "configmap", cm["metadata"]["name"])
    wait_for(
        lambda: configmap_text(kubeconfig, namespace, "p") == "keep me",
        timeout=30,
        message="ConfigMap written again",
    )


def test_prompt_has_no_finalizer_and_no_operator_annotations(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, prompt_manifest("p", "text"), namespace, server_side=True)
    obj = wait_prompt(kubeconfig, namespace, "p")
    assert not obj["metadata"].get("finalizers")
    assert not any(
        k.startswith(("prompts.dev/", "kopf.zalando.org/"))
        for k in (obj["metadata"].get("annotations") or {})
    )
    diff = kubectl(
        kubeconfig,
        "-n",
        namespace,
        "diff",
        "--server-side",
        "-f",
        "-",
        input=json.dumps(prompt_manifest("p", "text")),
        check=False,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_edit_costs_at_most_two_writes(kubeconfig: Path, namespace: str, audit_log: Path) -> None:
    apply(kubeconfig, prompt_manifest("p", "first {x}", variables=["x"]), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    start = settle_audit(audit_log)
    apply(kubeconfig, prompt_manifest("p", "second {x}", variables=["x"]), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    wait_for(lambda: configmap_text(kubeconfig, namespace, "p") == "second {x}", timeout=10)
    settle_audit(audit_log)
    writes = writes_in(audit_log, start, namespace)
    assert 1 <= len(writes) <= 2, [(w["verb"], w["objectRef"]) for w in writes]


def test_reapplying_identical_manifest_writes_nothing(
    kubeconfig: Path, namespace: str, audit_log: Path
) -> None:
    manifest = prompt_manifest("p", "same text")
    apply(kubeconfig, manifest, namespace)
    wait_prompt(kubeconfig, namespace, "p")
    start = settle_audit(audit_log)
    for _ in range(3):
        apply(kubeconfig, manifest, namespace)
    # A marker edit in another Prompt proves the operator processed what came before.
    apply(kubeconfig, prompt_manifest("marker", "m"), namespace)
    wait_prompt(kubeconfig, namespace, "marker")
    settle_audit(audit_log)
    writes = [
        w
        for w in writes_in(audit_log, start, namespace)
        if w["objectRef"].get("name") == "p"
        or w["objectRef"].get("name", "").startswith("prompt-p-")
    ]
    assert writes == []


def test_operator_restart_writes_nothing(
    kubeconfig: Path, namespace: str, audit_log: Path, operator: OperatorProcess
) -> None:
    for i in range(5):
        apply(kubeconfig, prompt_manifest(f"p{i}", f"text {i}"), namespace)
    for i in range(5):
        wait_prompt(kubeconfig, namespace, f"p{i}")
    operator.stop()
    start = settle_audit(audit_log)
    operator.start()
    apply(kubeconfig, prompt_manifest("marker", "m"), namespace)
    wait_prompt(kubeconfig, namespace, "marker")
    settle_audit(audit_log)
    live = set(
        kubectl(
            kubeconfig, "get", "namespaces", "--field-selector=status.phase=Active", "-o", "name"
        )
        .stdout.replace("namespace/", "")
        .split()
    )
    writes = [
        w
        for w in writes_in(audit_log, start)
        if not str(w["objectRef"].get("name", "")).startswith(("marker", "prompt-marker-"))
        and w["objectRef"].get("namespace") in live
    ]
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]


@pytest.mark.slow
def test_200_prompts_in_5_namespaces_converge(
    kubeconfig: Path, request: pytest.FixtureRequest
) -> None:
    namespaces = [f"bulk-{i}-{int(time.time() * 1000) % 100000}" for i in range(5)]
    items = []
    for ns in namespaces:
        kubectl(kubeconfig, "create", "namespace", ns)
        items += [
            dict(
                prompt_manifest(f"p{i}", f"text {i} in {ns}"),
                metadata={"name": f"p{i}", "namespace": ns},
            )
            for i in range(40)
        ]
    request.addfinalizer(
        lambda: [
            kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false", check=False)
            for ns in namespaces
        ]
    )
    kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )

    def all_ready() -> bool:
        data = json.loads(kubectl(kubeconfig, "get", "prompts", "-A", "-o", "json").stdout)
        mine = [p for p in data["items"] if p["metadata"]["namespace"] in namespaces]
        return len(mine) == 200 and all(
            (condition(p, "Ready") or {}).get("status") == "True" for p in mine
        )

    wait_for(all_ready, timeout=120, interval=0.5, message="200 Prompts Ready")


def test_operator_limited_to_one_namespace_touches_nothing_elsewhere(
    kubeconfig: Path,
    operator_kubeconfig: Path,
    operator: OperatorProcess,
    audit_log: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    watched, other = (
        f"watched-{int(time.time() * 1000) % 100000}",
        f"other-{int(time.time() * 1000) % 100000}",
    )
    for ns in (watched, other):
        kubectl(kubeconfig, "create", "namespace", ns)
        request.addfinalizer(
            lambda ns=ns: kubectl(
                kubeconfig, "delete", "namespace", ns, "--wait=false", check=False
            )
        )
    operator.stop()
    request.addfinalizer(operator.start)
    limited = OperatorProcess(
        operator_kubeconfig, tmp_path / "limited.log", f"--namespace={watched}"
    )
    limited.start()
    request.addfinalizer(limited.stop)
    start = settle_audit(audit_log)
    apply(kubeconfig, prompt_manifest("p", "text"), other)
    apply(kubeconfig, prompt_manifest("p", "text"), watched)
    wait_prompt(kubeconfig, watched, "p")
    settle_audit(audit_log)
    assert (get(kubeconfig, other, "prompt", "p") or {}).get("status") is None
    assert current_configmap(kubeconfig, other, "p") is None
    elsewhere = [
        w
        for w in writes_in(audit_log, start)
        if (w.get("objectRef") or {}).get("namespace") != watched
    ]
    assert elsewhere == []
