"""Small helpers over the real kubectl for integration tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_cluster.testing import SidecarProcess, audit_line_count, kubectl, wait_for
from prompt_contract import objects, signals

SidecarFactory = Callable[..., SidecarProcess]
"""``sidecars(name, start=True, **SidecarProcess options)``: an app pod with a sidecar."""


def apply(
    kubeconfig: Path, manifest: dict[str, Any], namespace: str, *, server_side: bool = False
) -> None:
    args = ["-n", namespace, "apply", "-f", "-"]
    if server_side:
        args.insert(3, "--server-side")
    kubectl(kubeconfig, *args, input=json.dumps(manifest, ensure_ascii=False))


def get(kubeconfig: Path, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = kubectl(kubeconfig, "-n", namespace, "get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def wait_prompt(
    kubeconfig: Path,
    namespace: str,
    name: str,
    *,
    ready: bool = True,
    reason: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Wait until the Prompt's status describes its current generation with Ready=ready."""

    def settled() -> dict[str, Any] | None:
        obj = get(kubeconfig, namespace, "prompt", name)
        if obj is None:
            return None
        status = obj.get("status") or {}
        cond = condition(obj, "Ready")
        if status.get("observedGeneration") != obj["metadata"]["generation"] or cond is None:
            return None
        if cond["status"] != ("True" if ready else "False"):
            return None
        if reason is not None and cond["reason"] != reason:
            return None
        return obj

    return wait_for(settled, timeout=timeout, message=f"Prompt {namespace}/{name} ready={ready}")


def revision_configmaps(kubeconfig: Path, namespace: str, prompt: str) -> list[dict[str, Any]]:
    """The Prompt's revision ConfigMaps, by revision number (the last is current)."""
    listed = json.loads(
        kubectl(
            kubeconfig,
            "-n",
            namespace,
            "get",
            "configmaps",
            "-l",
            f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}",
            "-o",
            "json",
        ).stdout
    )
    mine = [cm for cm in listed["items"] if objects.prompt_name_of(cm) == prompt]
    return sorted(mine, key=objects.revision_number_of)


def current_configmap(kubeconfig: Path, namespace: str, prompt: str) -> dict[str, Any] | None:
    revisions = revision_configmaps(kubeconfig, namespace, prompt)
    return revisions[-1] if revisions else None


def configmap_text(kubeconfig: Path, namespace: str, prompt: str) -> str | None:
    cm = current_configmap(kubeconfig, namespace, prompt)
    return None if cm is None else str(cm["data"]["prompt"])


def events_for(kubeconfig: Path, namespace: str, name: str) -> list[dict[str, Any]]:
    data = json.loads(
        kubectl(
            kubeconfig,
            "-n",
            namespace,
            "get",
            "events",
            "-o",
            "json",
            f"--field-selector=involvedObject.name={name}",
        ).stdout
    )
    return list(data["items"])


def post_signal(
    sidecar: SidecarProcess, body: bytes, ctype: str = "application/json", timeout: float = 5
) -> tuple[int, bytes]:
    """POST ``body`` to the sidecar's signal endpoint as anyone on the pod network could."""
    request = urllib.request.Request(
        sidecar.url + signals.SIGNAL_PATH, data=body, method="POST", headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def settle_audit(audit_log: Path) -> int:
    """Line count once the batched audit backend has flushed (the count stops moving)."""
    last = -1

    def stable() -> int | None:
        nonlocal last
        now = audit_line_count(audit_log)
        if now == last:
            return now or 1
        last = now
        return None

    return wait_for(stable, timeout=10, interval=0.3, message="audit log to settle")


def metric(base_url: str, sample: str, default: float | None = None) -> float:
    """One sample of a process's Prometheus ``/metrics`` (``sample`` may carry its
    labels, as in ``name{label="value"}``); ``default`` when it is not there yet."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
    if default is None:
        raise AssertionError(f"{sample} not in {base_url}/metrics")
    return default
