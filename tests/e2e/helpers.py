"""Helpers for the end-to-end layer: helm, kubectl exec/logs, Prompt status."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_cluster import images
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import kubectl, kubectl_json

REPO = Path(__file__).resolve().parents[2]
RELEASE = "prompt-operator"
OPERATOR_NAMESPACE = "prompt-system"
DEMO_IMAGE = images.DEMO_APP_REF


@dataclass(frozen=True)
class Node:
    cluster: LocalCluster
    kubeconfig: Path
    helm: Path
    chart: Path  # the packaged chart `make dist` built

    def helm_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.helm), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result


def pods(kubeconfig: Path, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json(
        kubeconfig, "-n", namespace, "get", "pods", "-l", selector
    )["items"]
    return items


def wait_rollout(kubeconfig: Path, namespace: str, deployment: str, timeout: int = 180) -> None:
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "rollout",
        "status",
        f"deployment/{deployment}",
        f"--timeout={timeout}s",
        timeout=timeout + 30,
    )


def lease_holder(kubeconfig: Path) -> str:
    """The running operator replica that holds the leader Lease, or "" (none
    does, or a replica that is stopping or gone still holds it)."""
    leases = kubectl_json(kubeconfig, "-n", OPERATOR_NAMESPACE, "get", "leases")["items"]
    operators = pods(kubeconfig, OPERATOR_NAMESPACE, "app.kubernetes.io/name=prompt-operator")
    names = {p["metadata"]["name"] for p in operators if not p["metadata"].get("deletionTimestamp")}
    holders = {lease["spec"].get("holderIdentity") for lease in leases} & names
    return next(iter(holders), "")


def prompt_status(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json(kubeconfig, "-n", namespace, "get", "prompt", name).get(
        "status", {}
    )
    return status


def exec_in(
    kubeconfig: Path, namespace: str, pod: str, container: str, *command: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kubectl(
        kubeconfig, "-n", namespace, "exec", pod, "-c", container, "--", *command, check=check
    )


def logs(kubeconfig: Path, namespace: str, pod: str, container: str) -> str:
    return kubectl(kubeconfig, "-n", namespace, "logs", pod, "-c", container).stdout


def apply(kubeconfig: Path, namespace: str, manifest: dict[str, Any]) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))


def cluster_story(kubeconfig: Path, namespaces: list[str], tail: int = 40) -> str:
    """What a failed test leaves to read: every pod's phase and the last lines
    of each of its containers in ``namespaces`` (best effort: a node that is
    already broken still gives what it can)."""
    out: list[str] = []
    for namespace in namespaces:
        listed = kubectl(kubeconfig, "-n", namespace, "get", "pods", "-o", "json", check=False)
        if listed.returncode != 0:
            continue
        for pod in json.loads(listed.stdout).get("items", []):
            name = pod["metadata"]["name"]
            spec = pod.get("spec", {})
            out.append(f"--- {namespace}/{name} ({pod.get('status', {}).get('phase')})")
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                text = kubectl(
                    kubeconfig, "-n", namespace, "logs", name, "-c", container["name"],
                    f"--tail={tail}", "--timestamps", check=False,
                )  # fmt: skip
                out.append(f"[{container['name']}]\n{text.stdout}{text.stderr}")
    return "\n".join(out)
