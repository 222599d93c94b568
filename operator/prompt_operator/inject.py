"""Sidecar injection: the pure function behind the mutating admission webhook.

A Pod labelled ``prompts.dev/inject: "true"`` gets:

* the sidecar as a native sidecar (an init container with ``restartPolicy:
  Always``) whose startup probe waits for ``/readyz``, so the app starts only
  once every prompt file is written;
* a shared ``emptyDir`` mounted read-only into every app container, with
  ``PROMPT_DIR`` set; on the node's disk, or in memory (a tmpfs) of a bounded
  size that is added to the sidecar's memory limit (see ``memory_volume``);
* the downward-API environment the sidecar needs, the subscription label and
  the port and selector annotations;
* the API token in the sidecar only: the pod's automatic token mount is turned
  off and a projected token volume is mounted into the sidecar alone (all
  containers share the pod's service account).

Injecting twice changes nothing: a pod that already has the sidecar is left alone.
A pod that already uses a name or path the injection adds (a volume called
``prompts``, a mount at the prompt directory, the sidecar's ports) is refused
with a message saying what to rename: writing into the app's own volume, or
leaving its mount read-write, would be silently wrong. So is a pod on its
namespace's ``default`` service account, whose sidecar could not read its
ConfigMaps, with what to set: it would otherwise never start.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

SIDECAR_NAME = "prompt-sidecar"
PROMPTS_VOLUME = "prompts"
TOKEN_VOLUME = "prompt-sidecar-api-token"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_DIR = "/prompts"


SIDECAR_SERVICE_ACCOUNT = "prompt-sidecar"  # the chart's, in each of sidecar.namespaces
SIDECAR_MEMORY_LIMIT_KIB = 64 * 1024  # the sidecar's own memory: 30 MiB measured at 1,000 files


@dataclass(frozen=True)
class InjectionConfig:
    image: str
    port: int = objects.DEFAULT_PORT
    probe_port: int = objects.DEFAULT_PROBE_PORT
    directory: str = DEFAULT_DIR
    # Where the chart made the sidecar's service account (its sidecar.namespaces);
    # None: not known (the operator run outside the chart), so not checked.
    sidecar_namespaces: tuple[str, ...] | None = None
    # The prompt volume's size in memory, KiB; 0: the volume is on the node's disk.
    memory_volume_kib: int = 0


class InjectionRefused(ValueError):
    """The pod uses a name or path the sidecar needs; the message says what to rename."""


def kib_quantity(kib: int) -> str:
    """A Kubernetes quantity for ``kib`` KiB, in Mi when it is whole."""
    return f"{kib // 1024}Mi" if kib % 1024 == 0 else f"{kib}Ki"


def sidecar_resources(memory_volume_kib: int) -> dict[str, Any]:
    """The sidecar's requests and limits: with a memory-backed volume, its size is added
    to the memory limit.

    A tmpfs page is charged to the memory cgroup of the process that first writes
    it, and only the sidecar writes prompt files, so every file counts against the
    sidecar's limit (about 10 KiB per prompt measured, a text and a metadata file
    of a page each, with their inodes), and no reclaim can drop it. The kubelet
    sizes the tmpfs at the volume's sizeLimit: with the limit raised by as much, a
    full volume makes a write fail (the old file stays, the sidecar says why)
    before the sidecar could be OOM-killed. The request stays: it is what the
    sidecar itself uses, and most pods hold a few prompts, not a volume's worth.
    """
    limit = kib_quantity(SIDECAR_MEMORY_LIMIT_KIB + memory_volume_kib)
    return {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": limit}}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def sidecar_container(config: InjectionConfig) -> dict[str, Any]:
    return {
        "name": SIDECAR_NAME,
        "image": config.image,
        "command": ["prompt-sidecar"],
        "args": [
            f"--dir={config.directory}",
            f"--port={config.port}",
            f"--probe-port={config.probe_port}",
        ],
        "restartPolicy": "Always",
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_IP", "status.podIP"),
            _field_env("PROMPT_SELECTOR", f"metadata.annotations['{objects.SELECTOR_ANNOTATION}']"),
        ],
        "ports": [
            {"name": "prompt-signal", "containerPort": config.port},
            {"name": "prompt-probes", "containerPort": config.probe_port},
        ],
        # Probes on their own listener: a flood on the signal port (open to the
        # operator only when the NetworkPolicy is on) never makes the pod NotReady.
        "startupProbe": {
            "httpGet": {"path": "/readyz", "port": config.probe_port},
            "periodSeconds": 1,
            "failureThreshold": 300,
        },
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": config.probe_port}},
        "resources": sidecar_resources(config.memory_volume_kib),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": PROMPTS_VOLUME, "mountPath": config.directory},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True},
        ],
    }


def prompts_volume(memory_volume_kib: int) -> dict[str, Any]:
    """The shared prompt directory: the node's disk, or a tmpfs of ``memory_volume_kib``.

    In memory, replacing a file costs no write-out to disk (ext4 writes the new
    file's data out on a rename over an old one): a third of the CPU per write.
    """
    if not memory_volume_kib:
        return {"name": PROMPTS_VOLUME, "emptyDir": {}}
    size = kib_quantity(memory_volume_kib)
    return {"name": PROMPTS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def _volumes(config: InjectionConfig) -> list[dict[str, Any]]:
    return [
        prompts_volume(config.memory_volume_kib),
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                ]
            },
        },
    ]


def _is_automatic_token(volume: Mapping[str, Any]) -> bool:
    """The token volume the ServiceAccount admission plugin adds (kube-api-access-*)."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return str(volume.get("name", "")).startswith("kube-api-access-") and any(
        "serviceAccountToken" in s for s in sources
    )


def collision(pod: Mapping[str, Any], config: InjectionConfig) -> str | None:
    """What in ``pod`` collides with what injection adds, and what to rename; None: nothing."""
    spec = pod.get("spec") or {}
    for volume in spec.get("volumes") or []:
        name = volume.get("name")
        if name in (PROMPTS_VOLUME, TOKEN_VOLUME):
            return (
                f"the pod already has a volume named {name!r}, which the prompt sidecar adds "
                f"for its own use: rename that volume (and its volumeMounts) in the pod spec"
            )
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    directory = config.directory.rstrip("/") or "/"
    for container in containers:
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath") or "").rstrip("/") or "/"
            if path == directory:
                return (
                    f"container {container.get('name')!r} already mounts volume "
                    f"{mount.get('name')!r} at {config.directory}, where the prompt sidecar "
                    f"mounts the prompt directory: move that mount to another mountPath"
                )
        for port in container.get("ports") or []:
            if port.get("containerPort") in (config.port, config.probe_port):
                return (
                    f"container {container.get('name')!r} already uses port "
                    f"{port.get('containerPort')}, which the prompt sidecar listens on "
                    f"(ports {config.port} and {config.probe_port}): change that port, or "
                    "the chart's sidecar.port / sidecar.probePort"
                )
    return None


def service_account_problem(pod: Mapping[str, Any], config: InjectionConfig) -> str | None:
    """Why the sidecar of ``pod`` could not read its prompts, and what to set; None: it can.

    All containers share the pod's service account, so the sidecar lists
    ConfigMaps as that account. A pod on its namespace's ``default`` account
    would wait for its sidecar's first sync (a 403 every second) and never
    start. An account that does not exist never gets here: the API server's
    own ServiceAccount admission refuses the pod first, naming the account.
    """
    if config.sidecar_namespaces is None:
        return None
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    spec = pod.get("spec") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    if account != "default":
        return None  # the chart's, or the app's own: its RoleBinding is the owner's business
    listed = list(config.sidecar_namespaces)
    message = (
        f"the pod runs as service account 'default', and the sidecar reads the pod's prompts "
        f"as the pod's service account: set spec.serviceAccountName: {SIDECAR_SERVICE_ACCOUNT} "
        f"in the pod template (the chart's account that may only get and list ConfigMaps)"
    )
    if namespace in listed:
        return message
    wanted = ",".join([*listed, namespace])
    return (
        f"{message}; the chart creates it only in its sidecar.namespaces "
        f"({', '.join(listed) or 'none'}): add {namespace} with `helm upgrade <release> <chart> "
        f"--reuse-values --set 'sidecar.namespaces={{{wanted}}}'`"
    )


def injected(pod: Mapping[str, Any], config: InjectionConfig) -> dict[str, Any] | None:
    """The pod with the sidecar added, or None when it already has one.

    Raises ``InjectionRefused`` when the pod uses a name or path injection adds.
    """
    spec = pod.get("spec") or {}
    if any(c.get("name") == SIDECAR_NAME for c in spec.get("initContainers") or []):
        return None
    problem = collision(pod, config) or service_account_problem(pod, config)
    if problem is not None:
        raise InjectionRefused(problem)
    result = copy.deepcopy(dict(pod))
    meta = result.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels[objects.SUBSCRIBE_LABEL] = "true"
    meta["labels"] = labels
    annotations = meta.get("annotations") or {}
    annotations[objects.PORT_ANNOTATION] = str(config.port)
    annotations.setdefault(objects.SELECTOR_ANNOTATION, "")
    meta["annotations"] = annotations
    spec = result.setdefault("spec", {})
    # All containers share the service account; only the sidecar gets its token.
    # The API server's ServiceAccount admission has already mounted the token into
    # every container by the time webhooks run, so that mount is taken back out.
    spec["automountServiceAccountToken"] = False
    automatic = {v.get("name") for v in spec.get("volumes") or [] if _is_automatic_token(v)}
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in automatic]
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if "volumeMounts" in container:
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] if m.get("name") not in automatic
            ]
    spec["volumes"] = list(spec.get("volumes") or []) + _volumes(config)
    spec["initContainers"] = [*(spec.get("initContainers") or []), sidecar_container(config)]
    for container in spec.get("containers") or []:
        mounts = container.setdefault("volumeMounts", [])
        mounts.append({"name": PROMPTS_VOLUME, "mountPath": config.directory, "readOnly": True})
        env = container.setdefault("env", [])
        if not any(e.get("name") == "PROMPT_DIR" for e in env):
            env.append({"name": "PROMPT_DIR", "value": config.directory})
    return result
