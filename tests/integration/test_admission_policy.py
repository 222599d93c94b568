"""Only the operator writes ConfigMaps that sidecars serve: the chart's
ValidatingAdmissionPolicy on a real API server (bound to this test's namespace
only, so other tests may still stage such ConfigMaps as the admin)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prompt_client import wire
from prompt_cluster.build import ensure_binaries
from prompt_cluster.testing import SidecarProcess, kubectl, prompt_manifest, wait_for
from tests.reliability.report import Observed

from .helpers import SidecarFactory, apply, configmap_text, current_configmap, wait_prompt

pytestmark = pytest.mark.usefixtures("operator")

CHART = Path(__file__).resolve().parents[2] / "charts" / "prompt-operator"
USER = "mallory"  # a namespace user with every ConfigMap right


def policy_objects(namespace: str) -> list[dict[str, Any]]:
    """The chart's policy and binding as installed in prompt-system, the binding
    narrowed to ``namespace`` and both renamed after it."""
    rendered = subprocess.run(
        [
            str(ensure_binaries().helm),
            "template",
            "prompt-operator",
            str(CHART),
            "-n",
            "prompt-system",
            "--show-only",
            "templates/admissionpolicy.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert [d["kind"] for d in docs] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    policy, binding = docs
    policy["metadata"]["name"] += f"-{namespace}"
    binding["metadata"]["name"] += f"-{namespace}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    return docs


@pytest.fixture
def guarded(kubeconfig: Path, namespace: str) -> Iterator[str]:
    """The policy in force for ``namespace``, and USER holding every ConfigMap right there."""
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "role",
        "configmap-admin",
        "--verb=*",
        "--resource=configmaps",
    )
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "rolebinding",
        "configmap-admin",
        "--role=configmap-admin",
        f"--user={USER}",
    )
    docs = policy_objects(namespace)
    kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": docs}),
    )
    try:
        yield namespace
    finally:
        for doc in reversed(docs):
            kubectl(kubeconfig, "delete", doc["kind"], doc["metadata"]["name"], check=False)


def as_user(
    kubeconfig: Path, namespace: str, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, f"--as={USER}", "-n", namespace, *args, input=input, check=False)


@pytest.mark.reliability(
    case="S-configmap forged",
    did="as a namespace user with every ConfigMap right: create a ConfigMap with the "
    "managed-by label, the real Prompt's uid label and a higher revision number; label "
    "one of its own; renumber and unlabel the operator's; then edit the Prompt",
)
def test_only_the_operator_writes_managed_configmaps(
    kubeconfig: Path,
    namespace: str,
    guarded: str,
    sidecars: SidecarFactory,
    observed: Observed,
) -> None:
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app: SidecarProcess = sidecars("app")
    real = current_configmap(kubeconfig, namespace, "p")
    assert real is not None
    labels = real["metadata"]["labels"]
    forged = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": wire.configmap_name("p", "f0rged"),
            "labels": {**labels, wire.REVISION_NUMBER_LABEL: "99"},
            "annotations": {**real["metadata"]["annotations"], wire.REVISION_ANNOTATION: "f0rged"},
        },
        "data": {**real["data"], wire.TEXT_DATA_KEY: "forged text"},
    }

    def refused(result: subprocess.CompletedProcess[str]) -> bool:
        return result.returncode != 0 and "written by prompt-operator" in result.stderr

    # The policy takes a moment to be in force: try until the forged create is refused.
    def attempt() -> subprocess.CompletedProcess[str] | None:
        result = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(forged))
        if refused(result):
            return result
        if result.returncode == 0:  # not in force yet: take it away and try again
            kubectl(kubeconfig, "-n", namespace, "delete", "configmap", forged["metadata"]["name"])
        return None

    create = wait_for(attempt, timeout=30, message="the policy refuses the forged ConfigMap")
    assert refused(create), create.stderr
    # Its own ConfigMap is fine until it carries the label.
    assert (
        as_user(
            kubeconfig, namespace, "create", "configmap", "mine", "--from-literal=a=b"
        ).returncode
        == 0
    )
    label = as_user(
        kubeconfig,
        namespace,
        "label",
        "configmap",
        "mine",
        f"{wire.MANAGED_BY_LABEL}={wire.MANAGED_BY_VALUE}",
    )
    change = as_user(
        kubeconfig,
        namespace,
        "patch",
        "configmap",
        real["metadata"]["name"],
        "--type=merge",
        "-p",
        # Its data is immutable, but a revision number picks what pods serve.
        json.dumps({"metadata": {"labels": {wire.REVISION_NUMBER_LABEL: "99"}}}),
    )
    unlabel = as_user(
        kubeconfig,
        namespace,
        "label",
        "configmap",
        real["metadata"]["name"],
        f"{wire.MANAGED_BY_LABEL}-",
    )
    assert refused(label), label.stderr
    assert refused(change), change.stderr
    assert refused(unlabel), unlabel.stderr
    # The operator still writes, and pods serve only its text.
    apply(kubeconfig, prompt_manifest("p", "edited"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    assert configmap_text(kubeconfig, namespace, "p") == "edited"
    wait_for(lambda: app.file("p") == b"edited", timeout=15)
    said = create.stderr.strip().split("denied request: ")[-1][:200]
    observed(
        f"create refused ({said}); labelling its own ConfigMap, renumbering the operator's "
        "and removing its label: refused; the operator's edit served 'edited'"
    )
