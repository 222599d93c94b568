"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Configured like a real cluster so tests mean something: RBAC authorization,
working service accounts (``kubectl create token``), an audit log, the garbage
collector and namespace controllers. Two shapes:

* without a node (the default, fast): a test that needs an app pod creates the
  Pod object, patches its status with a ``127.0.0.x`` address and ``Ready``,
  and runs the process (the sidecar) bound to that address itself (see
  ``prompt_cluster.testing.make_pod``); admission webhooks are reached by URL
  on loopback;
* with a real node (``node=True``, see ``prompt_cluster.node``): the API server
  listens on the node's IP, where pods reach it through the ``kubernetes``
  Service, and the controller-manager also runs the workload and node
  controllers, so Deployments, Services and taints behave as in any cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import images, pki
from . import node as node_mod
from .build import KUBERNETES_VERSION, Binaries, NodeBinaries, ensure_binaries, ensure_node_binaries
from .node_config import COREDNS_RBAC, NODE_IP, NODE_NAME, SERVICE_CIDR

STATE_FILE = "cluster.json"
# The controllers a test of this product needs: ownerReference garbage
# collection, namespace deletion, default service accounts and their tokens,
# and the kube-root-ca.crt ConfigMap every namespace gets in a real cluster.
CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
    ]
)
# With a real node: workloads, Service endpoints, and the node lifecycle
# controller, which removes the node's not-ready taint once the kubelet reports.
NODE_CONTROLLERS = ",".join(
    [
        CONTROLLERS,
        "deployment-controller",
        "replicaset-controller",
        "endpoints-controller",
        "endpointslice-controller",
        "job-controller",
        "ttl-after-finished-controller",
        "disruption-controller",
        "clusterrole-aggregation-controller",
        "node-lifecycle-controller",
        "taint-eviction-controller",
        "pod-garbage-collector-controller",
    ]
)

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: None
    users: [admin-controller-manager]
  - level: Metadata
"""


class ClusterError(RuntimeError):
    """The local cluster could not start or answer; the message says why."""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "prompt-operator" / "cluster"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ClusterState:
    """What ``up`` started; saved as JSON in the state directory."""

    state_dir: str
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    kcm_port: int
    pids: dict[str, int]
    binaries: dict[str, str]
    # The real node (``up(node=True)``): the API server's address, the node's
    # ports and what ``down`` must put back on the host.
    node: bool = False
    host: str = "127.0.0.1"
    scheduler_port: int = 0
    proxy_healthz_port: int = 0
    proxy_metrics_port: int = 0
    host_facts: dict[str, str] | None = None

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state_dir) / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def audit_log(self) -> Path:
        return Path(self.state_dir) / "logs" / "audit.log"

    @property
    def pki_dir(self) -> Path:
        return Path(self.state_dir) / "pki"

    def save(self) -> None:
        (Path(self.state_dir) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState | None:
        try:
            return cls(**json.loads((state_dir / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _alive(pid: int, binary: str) -> bool:
    """True when ``pid`` runs ``binary`` (a recycled pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited; only its parent has not reaped it yet.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and os.path.basename(cmdline) == os.path.basename(binary)


def _ssl_context(state: ClusterState) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(state.pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(state.pki_dir / "admin.crt"), str(state.pki_dir / "admin.key"))
    return ctx


def api_get(state: ClusterState, path: str, timeout: float = 5.0) -> bytes:
    """GET ``path`` from the API server as admin (for health and metrics)."""
    request = urllib.request.Request(state.server + path)
    with urllib.request.urlopen(request, context=_ssl_context(state), timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def api_create(state: ClusterState, body: Mapping[str, Any]) -> None:
    """Create an object as admin; one that already exists is left as it is."""
    kind = str(body["kind"])
    group = str(body["apiVersion"])
    path = f"/apis/{group}/{kind.lower()}s" if "/" in group else f"/api/{group}/{kind.lower()}s"
    request = urllib.request.Request(
        state.server + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=_ssl_context(state), timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise ClusterError(f"creating {kind} failed: {exc.read()[:300]!r}") from exc


def _kubeconfig_text(state: ClusterState, user: str = "admin", cert: str = "admin") -> str:
    pki_dir = state.pki_dir
    return f"""\
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: {state.server}
      certificate-authority: {pki_dir / "ca.crt"}
users:
  - name: {user}
    user:
      client-certificate: {pki_dir / f"{cert}.crt"}
      client-key: {pki_dir / f"{cert}.key"}
contexts:
  - name: local
    context: {{cluster: local, user: {user}, namespace: default}}
current-context: local
"""


class LocalCluster:
    """Start, inspect and stop the local control plane in one state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).resolve()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state: ClusterState | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    # -- lifecycle ---------------------------------------------------------

    def running(self) -> ClusterState | None:
        """The state of a cluster already running in this directory, if any."""
        state = ClusterState.load(self.state_dir)
        if state is None:
            return None
        alive = all(_alive(pid, state.binaries[name]) for name, pid in state.pids.items())
        return state if alive else None

    def up(
        self, binaries: Binaries | None = None, timeout: float = 90.0, *, node: bool = False
    ) -> ClusterState:
        """Start the cluster (or return the one already running) and wait for /readyz.

        With ``node`` also start the real node and wait until it is Ready and
        untainted (see ``prompt_cluster.node``)."""
        existing = self.running()
        if existing is not None:
            if node and not existing.node:
                raise ClusterError(
                    f"a cluster without a node already runs in {self.state_dir}; "
                    "run `prompt-cluster down` first, then `up --node`"
                )
            self.state = existing
            return existing
        self.down()  # clear a half-dead previous run
        binaries = binaries or ensure_binaries(helm=False)
        node_binaries = ensure_node_binaries() if node else None
        pause = images.pause_archive(node_binaries.pause) if node_binaries else None
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if node:
            node_mod.claim(self.state_dir)
        pki.generate(self.state_dir / "pki", (NODE_IP,) if node else ())
        state = ClusterState(
            state_dir=str(self.state_dir),
            etcd_port=_free_port(),
            etcd_peer_port=_free_port(),
            apiserver_port=_free_port(),
            kcm_port=_free_port(),
            pids={},
            binaries={
                "etcd": str(binaries.etcd),
                "kube-apiserver": str(binaries.kube_apiserver),
                "kube-controller-manager": str(binaries.kube_controller_manager),
            },
        )
        if node_binaries is not None:
            state.node = True
            state.host = NODE_IP
            state.scheduler_port = _free_port()
            state.proxy_healthz_port, state.proxy_metrics_port = _free_port(), _free_port()
            state.binaries.update(
                {
                    "containerd": str(node_binaries.containerd),
                    "kubelet": str(node_binaries.kubelet),
                    "kube-scheduler": str(node_binaries.kube_scheduler),
                    "kube-proxy": str(node_binaries.kube_proxy),
                    "ctr": str(node_binaries.ctr),
                    "coredns": str(node_binaries.coredns),
                }
            )
        state.kubeconfig.write_text(_kubeconfig_text(state))
        state.kubeconfig.chmod(0o600)
        (self.state_dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        try:
            if node_binaries is not None:
                state.host_facts = node_mod.prepare(self.state_dir, state.pki_dir)
                state.save()
            self._start(state, "etcd")
            self._wait_etcd(state, timeout)
            self._start(state, "kube-apiserver")
            self.wait_ready(state, timeout)
            self._start(state, "kube-controller-manager")
            if node_binaries is not None and pause is not None:
                self._start_node(state, node_binaries, pause, timeout)
        except BaseException:
            state.save()
            self.down()
            raise
        state.save()
        self.state = state
        return state

    def _start_node(
        self, state: ClusterState, binaries: NodeBinaries, pause: Path, timeout: float
    ) -> None:
        for name, cert in (
            ("kubelet", "kubelet-client"),
            ("kube-scheduler", "kube-scheduler"),
            ("kube-proxy", "kube-proxy"),
            ("coredns", "coredns"),
        ):
            path = self.state_dir / "node" / f"{name}.kubeconfig"
            path.write_text(_kubeconfig_text(state, user=name, cert=cert))
            path.chmod(0o600)
        self._start(state, "containerd")
        node_mod.update_claim(self.state_dir, state.pids["containerd"])
        node_mod.wait_socket(
            self.state_dir, binaries.ctr, lambda: self._check_alive(state, "containerd"), timeout
        )
        node_mod.import_image(binaries.ctr, self.state_dir, pause, images.PAUSE_BASE_NAME)
        state.save()
        for body in COREDNS_RBAC:
            api_create(state, body)
        for name in ("kubelet", "kube-scheduler", "kube-proxy", "coredns"):
            self._start(state, name)
        state.save()
        self.wait_node_ready(state, timeout)

    def wait_node_ready(self, state: ClusterState, timeout: float = 90.0) -> None:
        """Wait until the node is Ready and the lifecycle controller lifted its taints."""
        deadline = time.monotonic() + timeout
        last = "no Node object yet"
        while True:
            for name in node_mod.NODE_COMPONENTS:
                self._check_alive(state, name)
            with contextlib.suppress(urllib.error.HTTPError, OSError, ValueError):
                body = json.loads(api_get(state, f"/api/v1/nodes/{NODE_NAME}", timeout=2))
                ready = [
                    c
                    for c in body.get("status", {}).get("conditions", [])
                    if c.get("type") == "Ready"
                ]
                taints = body.get("spec", {}).get("taints", [])
                if ready and ready[0].get("status") == "True" and not taints:
                    return
                last = f"Ready={ready[0] if ready else None}, taints={taints}"
            if time.monotonic() > deadline:
                raise ClusterError(f"node {NODE_NAME} not ready within {timeout:.0f}s: {last}")
            time.sleep(0.2)

    def _command(self, state: ClusterState, name: str) -> list[str]:
        pki_dir, data = state.pki_dir, self.state_dir / "data"
        if name == "etcd":
            peer = f"http://127.0.0.1:{state.etcd_peer_port}"
            client = f"http://127.0.0.1:{state.etcd_port}"
            return [
                state.binaries["etcd"],
                "--name=local",
                f"--data-dir={data / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                # Test data does not outlive the run; fsync only slows it down.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        if name == "kube-apiserver":
            return [
                state.binaries["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
                f"--bind-address={state.host}",
                f"--advertise-address={state.host}",
                f"--secure-port={state.apiserver_port}",
                f"--cert-dir={data / 'apiserver-certs'}",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={pki_dir / 'ca.crt'}",
                "--authorization-mode=Node,RBAC" if state.node else "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
                f"--audit-log-path={state.audit_log}",
                "--audit-log-mode=batch",
                "--audit-log-batch-max-wait=100ms",
                "--profiling=false",
                *(
                    self._apiserver_node_flags()
                    if state.node
                    # No node: the "kubernetes" Service endpoints would point at
                    # loopback, which the reconciler refuses.
                    else ["--endpoint-reconciler-type=none"]
                ),
            ]
        if name == "kube-controller-manager":
            kcm_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
            kcm_kubeconfig.write_text(
                _kubeconfig_text(state)
                .replace("name: admin", "name: admin-controller-manager")
                .replace("user: admin,", "user: admin-controller-manager,")
            )
            return [
                state.binaries["kube-controller-manager"],
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--leader-elect=false",
                f"--controllers={NODE_CONTROLLERS if state.node else CONTROLLERS}",
                f"--service-account-private-key-file={pki_dir / 'sa.key'}",
                f"--root-ca-file={pki_dir / 'ca.crt'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.kcm_port}",
            ]
        return self._node_command(state, name)

    def _apiserver_node_flags(self) -> list[str]:
        pki_dir = self.state_dir / "pki"
        return [
            # The Node authorizer and NodeRestriction keep the kubelet to its own pods.
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki_dir / 'ca.crt'}",
            # The node has no DNS name; logs and exec go to its IP.
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _node_command(self, state: ClusterState, name: str) -> list[str]:
        node_dir = self.state_dir / "node"
        if name == "containerd":
            return [
                state.binaries["containerd"],
                f"--config={node_dir / 'containerd' / 'config.toml'}",
                "--log-level=warn",
            ]
        if name == "kubelet":
            return [
                state.binaries["kubelet"],
                f"--config={node_dir / 'kubelet' / 'config.json'}",
                f"--kubeconfig={node_dir / 'kubelet.kubeconfig'}",
                f"--root-dir={node_dir / 'kubelet' / 'root'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ]
        if name == "kube-scheduler":
            kubeconfig = node_dir / "kube-scheduler.kubeconfig"
            return [
                state.binaries["kube-scheduler"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.scheduler_port}",
            ]
        if name == "kube-proxy":
            config = node_mod.write_proxy_config(
                self.state_dir,
                node_dir / "kube-proxy.kubeconfig",
                state.proxy_healthz_port,
                state.proxy_metrics_port,
            )
            return [state.binaries["kube-proxy"], f"--config={config}", "--v=1"]
        if name == "coredns":
            return [state.binaries["coredns"], "-conf", str(node_dir / "Corefile")]
        raise ValueError(name)

    def _start(self, state: ClusterState, name: str) -> None:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        env = None
        if name == "containerd":
            # containerd finds its runc shim on PATH, next to itself.
            shim_dir = os.path.dirname(state.binaries["containerd"])
            env = dict(os.environ, PATH=f"{shim_dir}:{os.environ.get('PATH', '/usr/bin')}")
        with log:
            proc = subprocess.Popen(
                self._command(state, name),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: `cluster up` returns while the control plane runs on,
                # and a Ctrl-C in the shell does not reach it.
                start_new_session=True,
            )
        self._procs[name] = proc
        state.pids[name] = proc.pid

    def _check_alive(self, state: ClusterState, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            tail = (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def _wait_etcd(self, state: ClusterState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{state.etcd_port}/health"
        while True:
            self._check_alive(state, "etcd")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                if json.loads(resp.read()).get("health") == "true":
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"etcd did not become healthy within {timeout:.0f}s")
            time.sleep(0.1)

    def wait_ready(self, state: ClusterState, timeout: float = 90.0) -> None:
        """Wait until the API server answers /readyz with ok."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self._check_alive(state, "kube-apiserver")
            try:
                if api_get(state, "/readyz", timeout=2).strip() == b"ok":
                    return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[-2000:]
            except OSError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise ClusterError(f"kube-apiserver not ready within {timeout:.0f}s: {last}")
            time.sleep(0.2)

    # -- fault injection for tests -------------------------------------------

    def stop_component(self, name: str) -> None:
        """Stop one component (its data stays), as a crash or an outage would."""
        state = ClusterState.load(self.state_dir)
        if state is None or name not in state.pids:
            raise ClusterError(f"{name} is not running")
        self._terminate(name, state.pids[name], state.binaries[name])

    def start_component(self, name: str, timeout: float = 90.0) -> None:
        """Start a component stopped with ``stop_component`` on its old ports."""
        state = ClusterState.load(self.state_dir)
        if state is None:
            raise ClusterError("no cluster state; run up first")
        self._start(state, name)
        state.save()
        if name == "etcd":
            self._wait_etcd(state, timeout)
        elif name == "kube-apiserver":
            self.wait_ready(state, timeout)

    # -- teardown ------------------------------------------------------------

    def _terminate(self, name: str, pid: int, binary: str, grace: float = 10.0) -> None:
        proc = self._procs.pop(name, None)
        if not _alive(pid, binary):
            if proc is not None:
                proc.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid, binary) and time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.05)
        if _alive(pid, binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait()

    def down(self) -> bool:
        """Stop what ``up`` started and remove the state directory. True if anything ran."""
        state = ClusterState.load(self.state_dir)
        stopped = False
        if state is not None:
            stopped = self._stop_node(state)
            for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
                if name in state.pids:
                    stopped |= _alive(state.pids[name], state.binaries[name])
                    self._terminate(name, state.pids[name], state.binaries[name])
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    def _stop_node(self, state: ClusterState) -> bool:
        """Stop the node's processes and undo what it did to the host."""
        if not state.node:
            return False
        stopped = False
        # The kubelet first, so it restarts nothing; then the containers, while
        # containerd can still stop their shims; then the rest.
        for name in ("coredns", "kube-scheduler", "kube-proxy", "kubelet"):
            if name in state.pids:
                stopped |= _alive(state.pids[name], state.binaries[name])
                self._terminate(name, state.pids[name], state.binaries[name])
        containerd_alive = "containerd" in state.pids and _alive(
            state.pids["containerd"], state.binaries["containerd"]
        )
        ctr_bin = Path(state.binaries["ctr"]) if "ctr" in state.binaries else None
        node_mod.teardown_runtime(ctr_bin, self.state_dir, containerd_alive)
        if "containerd" in state.pids:
            stopped |= containerd_alive
            self._terminate("containerd", state.pids["containerd"], state.binaries["containerd"])
        proxy = Path(state.binaries["kube-proxy"]) if "kube-proxy" in state.binaries else None
        node_mod.teardown_host(self.state_dir, state.host_facts or {}, proxy)
        return stopped

    def status(self) -> dict[str, object]:
        state = ClusterState.load(self.state_dir)
        if state is None:
            return {"running": False, "stateDir": str(self.state_dir)}
        components = {
            name: {"pid": pid, "alive": _alive(pid, state.binaries[name])}
            for name, pid in state.pids.items()
        }
        ready = False
        with contextlib.suppress(OSError, ClusterError):
            ready = api_get(state, "/readyz", timeout=2).strip() == b"ok"
        return {
            "running": all(c["alive"] for c in components.values()),
            "ready": ready,
            "version": KUBERNETES_VERSION,
            "node": NODE_NAME if state.node else None,
            "server": state.server,
            "kubeconfig": str(state.kubeconfig),
            "stateDir": str(self.state_dir),
            "components": components,
        }


@contextlib.contextmanager
def local_cluster(state_dir: Path, *, node: bool = False) -> Iterator[LocalCluster]:
    """Run a cluster for the duration of the block; always stop it afterwards."""
    cluster = LocalCluster(state_dir)
    try:
        cluster.up(node=node)
        yield cluster
    finally:
        cluster.down()
