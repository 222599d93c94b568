"""Helpers for tests and benchmarks that run against the local cluster.

There is no kubelet, so a test that needs an app pod does three things:

1. ``make_pod(...)`` creates the Pod object (with the subscription label and
   annotations it wants) and patches its status to Running and Ready with a
   loopback address such as ``127.0.0.12``, as a kubelet would;
2. it starts the process that would run in the pod (the sidecar) bound to
   that address, with ``POD_NAME``, ``POD_NAMESPACE`` and ``POD_IP`` set as
   the downward API would;
3. it stops the process and deletes the Pod object at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_BIN = Path(sys.executable).parent


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises ``WaitTimeout`` naming ``message`` when ``timeout`` seconds pass.
    Exceptions from the predicate propagate: a broken check is a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {text}")
        time.sleep(interval)


def tool(name: str) -> str:
    """Path of a console script installed beside this interpreter (kubectl, ...)."""
    candidate = _BIN / name
    return str(candidate) if candidate.exists() else name


def kubectl(
    kubeconfig: Path | str,
    *args: str,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the local cluster."""
    data = input.decode() if isinstance(input, bytes) else input
    result = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=data,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def kubectl_json(kubeconfig: Path | str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, *args, "-o", "json").stdout)


_addresses = itertools.count(10)


def next_loopback_ip() -> str:
    """A fresh ``127.x.y.z`` address for one pod, unique within this process.

    The second octet comes from the pid, so parallel test processes differ.
    """
    n = next(_addresses)
    return f"127.{1 + os.getpid() % 200}.{n // 250}.{n % 250 + 2}"


def pod_manifest(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "example.invalid/app:1"}],
        "automountServiceAccountToken": False,
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def make_pod(
    kubeconfig: Path | str,
    namespace: str,
    name: str,
    ip: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    host_network: bool = False,
    ready: bool = True,
) -> dict[str, Any]:
    """Create a Pod object and give it the status a kubelet would (Running, ``ip``)."""
    manifest = pod_manifest(
        namespace, name, labels=labels, annotations=annotations, host_network=host_network
    )
    kubectl(kubeconfig, "create", "-f", "-", input=json.dumps(manifest))
    set_pod_status(kubeconfig, namespace, name, ip, ready=ready)
    return manifest


def set_pod_status(
    kubeconfig: Path | str, namespace: str, name: str, ip: str, *, ready: bool = True
) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    flag = "True" if ready else "False"
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            ],
        }
    }
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def audit_events(audit_log: Path, since_line: int = 0) -> Iterator[dict[str, Any]]:
    """The audit log's events after its first ``since_line`` lines, in order."""
    with open(audit_log, encoding="utf-8") as handle:
        for line in itertools.islice(handle, since_line, None):
            yield json.loads(line)


def audit_writes(audit_log: Path, user: str, since_line: int = 0) -> list[dict[str, Any]]:
    """Write requests (create/update/patch/delete/apply) by ``user`` in the audit log."""
    verbs = {"create", "update", "patch", "delete", "deletecollection", "apply"}
    return [
        event
        for event in audit_events(audit_log, since_line)
        if event.get("user", {}).get("username") == user and event.get("verb") in verbs
    ]


def audit_line_count(audit_log: Path) -> int:
    try:
        with open(audit_log, encoding="utf-8") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def start_process(
    args: Sequence[str], env: Mapping[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a background process with its output in ``log`` (or discarded)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(args),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def service_account_kubeconfig(
    admin_kubeconfig: Path | str,
    namespace: str,
    name: str,
    out: Path,
    *,
    cluster_role: str | None = None,
    duration: str = "24h",
) -> Path:
    """A kubeconfig that acts as service account ``namespace/name``, for running the
    operator or a sidecar under the identity (and RBAC) it has in a real cluster."""
    import yaml

    kubectl(admin_kubeconfig, "create", "namespace", namespace, check=False)
    kubectl(admin_kubeconfig, "-n", namespace, "create", "serviceaccount", name, check=False)
    if cluster_role:
        kubectl(
            admin_kubeconfig,
            "create",
            "clusterrolebinding",
            f"{namespace}-{name}",
            f"--clusterrole={cluster_role}",
            f"--serviceaccount={namespace}:{name}",
            check=False,
        )
    token = kubectl(
        admin_kubeconfig, "-n", namespace, "create", "token", name, f"--duration={duration}"
    ).stdout.strip()
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": name, "namespace": namespace}}
        ],
        "current-context": "local",
    }
    # JSON, which every YAML reader reads too: a sidecar then runs without the YAML
    # parser, as it does in a pod (service account, no kubeconfig).
    out.write_text(json.dumps(config, indent=2))
    out.chmod(0o600)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prompt_manifest(
    name: str,
    template: str,
    *,
    namespace: str | None = None,
    variables: Sequence[str | Mapping[str, str]] = (),
    key: str | None = None,
    fmt: str | None = None,
    labels: Mapping[str, str] | None = None,
    spec_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": template, **(spec_extra or {})}
    if variables:
        spec["variables"] = [{"name": v} if isinstance(v, str) else dict(v) for v in variables]
    if key is not None:
        spec["key"] = key
    if fmt is not None:
        spec["format"] = fmt
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "prompts.dev/v1alpha1", "kind": "Prompt", "metadata": meta, "spec": spec}


class _Managed:
    """A background process a test starts, stops (SIGTERM) or kills (SIGKILL)."""

    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class OperatorProcess(_Managed):
    """`prompt-operator run` as a real process, with its log in a file."""

    def __init__(
        self, kubeconfig: Path, log: Path, *extra_args: str, metrics: bool = False
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.extra_args = extra_args
        self.health_port = free_port()
        self.metrics_port = free_port() if metrics else 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, timeout: float = 60.0) -> None:
        import urllib.request

        self.proc = start_process(
            [
                tool("prompt-operator"),
                "run",
                f"--kubeconfig={self.kubeconfig}",
                "--health-host=127.0.0.1",
                f"--health-port={self.health_port}",
                f"--metrics-port={self.metrics_port}",
                "--log-format=json",
                *self.extra_args,
                *args,
            ],
            log=self.log,
        )

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
                ) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        wait_for(healthy, timeout=timeout, interval=0.1, message="operator /healthz")

    def restart(self, *args: str) -> None:
        self.stop()
        self.start(*args)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"message": line, "levelname": "RAW"})
        return records


def sidecar_role(admin_kubeconfig: Path | str, namespace: str, out: Path) -> Path:
    """Least privilege for a sidecar: get/list ConfigMaps in its own namespace, as a
    kubeconfig for the ``prompt-sidecar`` service account of that namespace."""
    kubectl(
        admin_kubeconfig,
        "-n",
        namespace,
        "create",
        "role",
        "prompt-sidecar",
        "--verb=get,list",
        "--resource=configmaps",
        check=False,
    )
    kubectl(
        admin_kubeconfig,
        "-n",
        namespace,
        "create",
        "rolebinding",
        "prompt-sidecar",
        "--role=prompt-sidecar",
        f"--serviceaccount={namespace}:prompt-sidecar",
        check=False,
    )
    return service_account_kubeconfig(admin_kubeconfig, namespace, "prompt-sidecar", out)


class SidecarProcess(_Managed):
    """An app pod without a kubelet: the Pod object (subscribed, Running, with a
    loopback IP) plus `prompt-sidecar` as a real process bound to that IP."""

    def __init__(
        self,
        admin_kubeconfig: Path,
        sidecar_kubeconfig: Path,
        namespace: str,
        name: str,
        workdir: Path,
        *,
        selector: str = "",
        resync: float = 300.0,
        ext: str = ".txt",
        create_pod: bool = True,
    ) -> None:
        self.admin_kubeconfig = admin_kubeconfig
        self.kubeconfig = sidecar_kubeconfig
        self.namespace = namespace
        self.name = name
        self.ip = next_loopback_ip()
        self.port = 8470
        self.dir = workdir / name / "prompts"
        self.log = workdir / name / "sidecar.log"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.selector = selector
        self.resync = resync
        self.ext = ext
        self.proc: subprocess.Popen[bytes] | None = None
        if create_pod:
            make_pod(
                admin_kubeconfig,
                namespace,
                name,
                self.ip,
                labels={"prompts.dev/subscribe": "true"},
                annotations={"prompts.dev/port": str(self.port), "prompts.dev/selector": selector},
            )

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        self.proc = start_process(
            [
                tool("prompt-sidecar"),
                f"--dir={self.dir}",
                f"--port={self.port}",
                f"--resync={self.resync}",
                f"--ext={self.ext}",
                f"--kubeconfig={self.kubeconfig}",
                "--log-format=json",
            ],
            env={
                "POD_NAME": self.name,
                "POD_NAMESPACE": self.namespace,
                "POD_IP": self.ip,
                "PROMPT_SELECTOR": self.selector,
            },
            log=self.log,
        )
        if wait_ready:
            wait_for(
                self.ready,
                timeout=timeout,
                interval=0.05,
                message=lambda: f"sidecar {self.name} ready; log:\n{self.log.read_text()[-2000:]}",
            )

    def ready(self) -> bool:
        import urllib.request

        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"sidecar exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def file(self, key: str) -> bytes | None:
        try:
            return (self.dir / f"{key}{self.ext}").read_bytes()
        except FileNotFoundError:
            return None
