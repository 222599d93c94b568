"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Configured like a real cluster so tests mean something: RBAC authorization,
working service accounts (``kubectl create token``), an audit log, the garbage
collector and namespace controllers. There is no kubelet and no kube-proxy:

* a test that needs an app pod creates the Pod object, patches its status with
  a ``127.0.0.x`` address and ``Ready``, and runs the process (the sidecar)
  bound to that address itself (see ``prompt_cluster.testing.make_pod``);
* admission webhooks are reached by URL on loopback.
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from . import pki
from .build import KUBERNETES_VERSION, Binaries, ensure_binaries

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

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state_dir) / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

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


def _kubeconfig_text(state: ClusterState) -> str:
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
  - name: admin
    user:
      client-certificate: {pki_dir / "admin.crt"}
      client-key: {pki_dir / "admin.key"}
contexts:
  - name: local
    context: {{cluster: local, user: admin, namespace: default}}
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

    def up(self, binaries: Binaries | None = None, timeout: float = 90.0) -> ClusterState:
        """Start the cluster (or return the one already running) and wait for /readyz."""
        existing = self.running()
        if existing is not None:
            self.state = existing
            return existing
        self.down()  # clear a half-dead previous run
        binaries = binaries or ensure_binaries(helm=False)
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        pki.generate(self.state_dir / "pki")
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
        state.kubeconfig.write_text(_kubeconfig_text(state))
        state.kubeconfig.chmod(0o600)
        (self.state_dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        try:
            self._start(state, "etcd")
            self._wait_etcd(state, timeout)
            self._start(state, "kube-apiserver")
            self.wait_ready(state, timeout)
            self._start(state, "kube-controller-manager")
        except BaseException:
            state.save()
            self.down()
            raise
        state.save()
        self.state = state
        return state

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
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={state.apiserver_port}",
                f"--cert-dir={data / 'apiserver-certs'}",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={pki_dir / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
                f"--audit-log-path={state.audit_log}",
                "--audit-log-mode=batch",
                "--audit-log-batch-max-wait=100ms",
                "--profiling=false",
                # No kubelet or kube-proxy: the "kubernetes" Service endpoints would point
                # at loopback, which the reconciler refuses.
                "--endpoint-reconciler-type=none",
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
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={pki_dir / 'sa.key'}",
                f"--root-ca-file={pki_dir / 'ca.crt'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.kcm_port}",
            ]
        raise ValueError(name)

    def _start(self, state: ClusterState, name: str) -> None:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                self._command(state, name),
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
            for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
                if name in state.pids:
                    stopped |= _alive(state.pids[name], state.binaries[name])
                    self._terminate(name, state.pids[name], state.binaries[name])
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
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
            "server": state.server,
            "kubeconfig": str(state.kubeconfig),
            "stateDir": str(self.state_dir),
            "components": components,
        }


@contextlib.contextmanager
def local_cluster(state_dir: Path) -> Iterator[LocalCluster]:
    """Run a cluster for the duration of the block; always stop it afterwards."""
    cluster = LocalCluster(state_dir)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
