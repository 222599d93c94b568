"""Admission webhooks served by the operator, called by the real API server over TLS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_cluster.testing import OperatorProcess, kubectl, pod_manifest, prompt_manifest

LABEL = "prompts.dev/admission-test"


@pytest.fixture
def admitted(
    kubeconfig: Path,
    namespace: str,
    cluster: object,
    operator: OperatorProcess,
    webhook_port: int,
) -> Iterator[str]:
    """Webhook configurations pointing at the operator, limited to this test's namespace."""
    ca = base64.b64encode((cluster.state.pki_dir / "ca.crt").read_bytes()).decode()  # type: ignore[attr-defined]
    name = f"prompt-operator-{namespace}"
    base = f"https://127.0.0.1:{webhook_port}"
    kubectl(kubeconfig, "label", "namespace", namespace, f"{LABEL}=true")
    scope = {"matchLabels": {LABEL: "true"}}
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "prompts.validate.prompts.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 5,
                "namespaceSelector": scope,
                "clientConfig": {"url": f"{base}/validate-prompt", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": ["prompts.dev"],
                        "apiVersions": ["v1alpha1"],
                        "resources": ["prompts"],
                        "operations": ["CREATE", "UPDATE"],
                    }
                ],
            }
        ],
    }
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pods.inject.prompts.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "reinvocationPolicy": "Never",
                "namespaceSelector": scope,
                # Only labelled pods ever reach the webhook; the operator being down
                # never blocks anyone else's pods.
                "objectSelector": {"matchLabels": {"prompts.dev/inject": "true"}},
                "clientConfig": {"url": f"{base}/inject-sidecar", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "operations": ["CREATE"],
                    }
                ],
            }
        ],
    }
    for config in (validating, mutating):
        kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(config))
    yield namespace
    kubectl(kubeconfig, "delete", "validatingwebhookconfiguration", name, check=False)
    kubectl(kubeconfig, "delete", "mutatingwebhookconfiguration", name, check=False)


def create(kubeconfig: Path, manifest: dict[str, object]) -> dict[str, object]:
    out = kubectl(kubeconfig, "create", "-f", "-", "-o", "json", input=json.dumps(manifest))
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_bad_prompt_is_refused_at_apply_with_the_status_message(
    kubeconfig: Path, admitted: str
) -> None:
    bad = prompt_manifest("bad", "Hello {user}", namespace=admitted)
    result = kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "UndeclaredVariable" in result.stderr and "{user}" in result.stderr
    good = prompt_manifest("good", "Hello {user}", namespace=admitted, variables=["user"])
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(good))


def test_schedule_admission_refuses_the_same_instant_and_warns_about_the_past(
    kubeconfig: Path, admitted: str
) -> None:
    same_instant = prompt_manifest(
        "twice",
        "now",
        namespace=admitted,
        spec_extra={
            "schedule": [
                {"at": "2030-01-01T01:00:00+01:00", "template": "x"},
                {"at": "2030-01-01T00:00:00Z", "template": "y"},
            ]
        },
    )
    refused = kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(same_instant), check=False)
    assert refused.returncode != 0 and "InvalidSchedule" in refused.stderr, refused.stderr
    past = prompt_manifest(
        "past",
        "now",
        namespace=admitted,
        spec_extra={"schedule": [{"at": "2020-01-01T00:00:00Z", "template": "old"}]},
    )
    accepted = kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(past))
    assert "Warning: spec.schedule entry 2020-01-01T00:00:00Z is in the past" in accepted.stderr


def test_labelled_pod_is_injected_with_the_sidecar(kubeconfig: Path, admitted: str) -> None:
    manifest = pod_manifest(
        admitted,
        "app",
        labels={"prompts.dev/inject": "true"},
        annotations={"prompts.dev/selector": "team=support"},
    )
    manifest["spec"].pop("automountServiceAccountToken")  # type: ignore[index, union-attr]
    pod = create(kubeconfig, manifest)
    spec = pod["spec"]
    assert isinstance(spec, dict)
    sidecars = [c for c in spec["initContainers"] if c["name"] == "prompt-sidecar"]
    assert len(sidecars) == 1
    sidecar = sidecars[0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert {e["name"] for e in sidecar["env"]} >= {
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "PROMPT_SELECTOR",
    }
    assert spec["automountServiceAccountToken"] is False
    token_mounts = [m for m in sidecar["volumeMounts"] if "serviceaccount" in m["mountPath"]]
    assert token_mounts, "the sidecar gets the API token"
    app = spec["containers"][0]
    assert not any("serviceaccount" in m["mountPath"] for m in app.get("volumeMounts", []))
    assert {"name": "prompts", "mountPath": "/prompts", "readOnly": True} in app["volumeMounts"]
    assert {"name": "PROMPT_DIR", "value": "/prompts"} in app["env"]
    meta = pod["metadata"]
    assert isinstance(meta, dict)
    assert meta["labels"]["prompts.dev/subscribe"] == "true"
    assert meta["annotations"]["prompts.dev/selector"] == "team=support"
    assert meta["annotations"]["prompts.dev/port"] == "8470"


def test_injection_is_idempotent_and_unlabelled_pods_are_untouched(
    kubeconfig: Path, admitted: str
) -> None:
    first = create(
        kubeconfig, pod_manifest(admitted, "once", labels={"prompts.dev/inject": "true"})
    )
    again = dict(first)
    again["metadata"] = {
        "name": "twice",
        "namespace": admitted,
        "labels": first["metadata"]["labels"],  # type: ignore[index]
        "annotations": first["metadata"]["annotations"],
    }  # type: ignore[index]
    spec = dict(first["spec"])  # type: ignore[arg-type]
    spec.pop("nodeName", None)
    again["spec"] = spec
    again.pop("status", None)
    second = create(kubeconfig, again)
    names = [c["name"] for c in second["spec"]["initContainers"]]  # type: ignore[index]
    assert names.count("prompt-sidecar") == 1
    plain = create(kubeconfig, pod_manifest(admitted, "plain"))
    assert "initContainers" not in plain["spec"]  # type: ignore[operator]


def test_operator_down_never_blocks_unrelated_pods(
    kubeconfig: Path, admitted: str, operator: OperatorProcess
) -> None:
    operator.stop()
    try:
        create(kubeconfig, pod_manifest(admitted, "unrelated"))
        kubectl(
            kubeconfig,
            "apply",
            "-f",
            "-",
            input=json.dumps(prompt_manifest("while-down", "Hello {x}", namespace=admitted)),
        )  # Ignore: accepted
        labelled = kubectl(
            kubeconfig,
            "create",
            "-f",
            "-",
            check=False,
            input=json.dumps(
                pod_manifest(admitted, "needs-sidecar", labels={"prompts.dev/inject": "true"})
            ),
        )
        assert labelled.returncode != 0  # Fail: a pod that needs its prompts is not started bare
    finally:
        operator.start()
