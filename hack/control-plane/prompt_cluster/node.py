"""The real node: containerd, kubelet, kube-scheduler and kube-proxy on this machine.

``prompt-cluster up --node`` adds it to the local control plane. Pods run in
network namespaces on a bridge the node creates (``prompt-br0``, a private
/24 without masquerade or default route), so their traffic never leaves the
machine. ``down`` stops every container, removes the bridge, the node IP on
``lo``, the mounts, kube-proxy's iptables rules and the runtime's state, and
puts ``net.ipv4.ip_forward`` back. There can be one node per machine: the
bridge, the node IP and the kubelet's port are fixed, and a claim file under
/run names the state directory that owns them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import pki
from .node_config import (
    BRIDGE,
    NODE_IP,
    NODE_NAME,
    cni_conflist,
    containerd_toml,
    corefile,
    kube_proxy_config,
    kubelet_config,
)

CLAIM = Path("/run/prompt-cluster-node.json")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# Paths the kubelet, containerd's shims and CNI use whatever they are told:
# device plugins, shim sockets, CNI result cache, container log links. Removed
# on ``down`` when ``up`` made them; otherwise only our entries in them go.
HOST_PATHS = ("/var/lib/kubelet", "/var/lib/cni", "/run/containerd", "/var/log/containers")
NODE_COMPONENTS = ("containerd", "kubelet", "kube-scheduler", "kube-proxy", "coredns")


class NodeError(RuntimeError):
    """The node could not start; the message says why and what to do."""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(state_dir: Path) -> None:
    """Take the machine's one node slot for ``state_dir`` or say who holds it."""
    if os.geteuid() != 0:
        raise NodeError(
            "the real node needs root (it creates a bridge, network namespaces and "
            "mounts); run `prompt-cluster up --node` as root, or without --node"
        )
    with contextlib.suppress(OSError, ValueError):
        holder = json.loads(CLAIM.read_text())
        other = Path(holder["stateDir"])
        if other != state_dir and other.exists() and _pid_alive(int(holder.get("pid", 0))):
            raise NodeError(
                f"a node already runs on this machine for {other}; stop it with "
                f"`prompt-cluster down --state-dir {other}` (one node per machine)"
            )
    CLAIM.write_text(json.dumps({"stateDir": str(state_dir), "pid": os.getpid()}))


def update_claim(state_dir: Path, pid: int) -> None:
    """Point the claim at a process that lives as long as the node (containerd)."""
    CLAIM.write_text(json.dumps({"stateDir": str(state_dir), "pid": pid}))


def release(state_dir: Path) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        if Path(json.loads(CLAIM.read_text())["stateDir"]) == state_dir:
            CLAIM.unlink()


def prepare(state_dir: Path, ca_pki: Path) -> dict[str, str]:
    """Certificates, config files and the node IP; returns the saved host facts."""
    node_dir = state_dir / "node"
    for sub in ("containerd/cni", "kubelet", "ipam", "pod-logs"):
        (node_dir / sub).mkdir(parents=True, exist_ok=True)
    pki.client_cert(ca_pki, "kubelet-client", f"system:node:{NODE_NAME}", "system:nodes")
    pki.serving_cert(ca_pki, ca_pki, "kubelet-serving", (NODE_IP,))
    pki.client_cert(
        ca_pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
    )
    pki.client_cert(ca_pki, "kube-scheduler", "system:kube-scheduler")
    pki.client_cert(ca_pki, "kube-proxy", "system:kube-proxy")
    pki.client_cert(ca_pki, "coredns", "system:coredns")
    (node_dir / "Corefile").write_text(corefile(node_dir / "coredns.kubeconfig"))
    containerd_dir = node_dir / "containerd"
    (containerd_dir / "config.toml").write_text(containerd_toml(containerd_dir))
    (containerd_dir / "cni" / "10-prompt-cluster.conflist").write_text(
        cni_conflist(node_dir / "ipam")
    )
    (node_dir / "kubelet" / "config.json").write_text(
        kubelet_config(
            ca_file=ca_pki / "ca.crt",
            cert_file=ca_pki / "kubelet-serving.crt",
            key_file=ca_pki / "kubelet-serving.key",
            runtime_socket=containerd_dir / "containerd.sock",
            pod_logs_dir=node_dir / "pod-logs",
        )
    )
    facts = {
        "ipForward": IP_FORWARD.read_text().strip(),
        "created": ",".join(p for p in HOST_PATHS if not os.path.lexists(p)),
    }
    if NODE_IP not in _run("ip", "-4", "addr", "show", "dev", "lo").stdout:
        _run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
    return facts


def write_proxy_config(state_dir: Path, kubeconfig: Path, healthz: int, metrics: int) -> Path:
    path = state_dir / "node" / "kube-proxy.json"
    path.write_text(
        kube_proxy_config(kubeconfig=kubeconfig, healthz_port=healthz, metrics_port=metrics)
    )
    return path


def containerd_socket(state_dir: Path) -> Path:
    return state_dir / "node" / "containerd" / "containerd.sock"


def ctr(ctr_bin: Path, state_dir: Path, *args: str, check: bool = True) -> str:
    """Run ``ctr`` against this node's containerd, in the CRI's namespace."""
    return _run(
        str(ctr_bin),
        "--address",
        str(containerd_socket(state_dir)),
        "-n",
        "k8s.io",
        *args,
        check=check,
    ).stdout


def wait_socket(state_dir: Path, ctr_bin: Path, alive: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if callable(alive):
            alive()
        if containerd_socket(state_dir).exists() and (
            _run(
                str(ctr_bin), "--address", str(containerd_socket(state_dir)), "version", check=False
            ).returncode
            == 0
        ):
            return
        if time.monotonic() > deadline:
            raise NodeError(f"containerd did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def import_image(ctr_bin: Path, state_dir: Path, archive: Path, base_name: str | None) -> None:
    """Load an OCI archive into the node's containerd (unpacked for overlayfs).
    Without ``base_name`` the archive names its image (io.containerd.image.name)."""
    naming = ["--base-name", base_name] if base_name else []
    ctr(ctr_bin, state_dir, "images", "import", "--snapshotter", "overlayfs", *naming, str(archive))


def _remove_containers(ctr_bin: Path, state_dir: Path) -> None:
    """Kill and delete every task and container while containerd still runs, so
    the shims exit and their mounts go."""
    tasks = ctr(ctr_bin, state_dir, "tasks", "ls", "-q", check=False).split()
    if tasks:
        # -f kills what still runs; one call for all (each ctr start costs time).
        ctr(ctr_bin, state_dir, "tasks", "delete", "-f", *tasks, check=False)
    containers = ctr(ctr_bin, state_dir, "containers", "ls", "-q", check=False).split()
    if containers:
        ctr(ctr_bin, state_dir, "containers", "delete", *containers, check=False)


def _runc_leftovers(state_dir: Path) -> None:
    """Containers whose shim is gone: delete them with runc itself."""
    root = state_dir / "node" / "containerd" / "runc"
    if not root.exists():
        return
    for ns in root.iterdir():
        listing = _run("runc", "--root", str(ns), "list", "-q", check=False).stdout.split()
        for cid in listing:
            _run("runc", "--root", str(ns), "delete", "--force", cid, check=False)


def _unmount_under(path: Path) -> None:
    """Unmount everything below ``path``, deepest first (netns, tmpfs, overlays)."""
    prefix = str(path.resolve()) + "/"
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        _run("umount", "-l", point, check=False)


def _remove_pod_cgroups() -> None:
    """The kubelet's ``kubepods`` cgroups, empty once the containers are gone."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
        for cgroup in [*reversed(dirs), top]:
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _remove_kube_chains() -> None:
    """What kube-proxy's cleanup leaves: the KUBE-FIREWALL copy and canaries."""
    for tool in ("iptables", "ip6tables"):
        for chain in ("INPUT", "OUTPUT"):
            while (
                _run(
                    tool, "-t", "filter", "-D", chain, "-j", "KUBE-FIREWALL", check=False
                ).returncode
                == 0
            ):
                pass
        for table, chain in (
            ("filter", "KUBE-FIREWALL"),
            ("mangle", "KUBE-IPTABLES-HINT"),
            ("mangle", "KUBE-KUBELET-CANARY"),
            ("nat", "KUBE-KUBELET-CANARY"),
            ("filter", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-PROXY-CANARY"),
            ("nat", "KUBE-PROXY-CANARY"),
            ("filter", "KUBE-PROXY-CANARY"),
        ):
            if _run(tool, "-t", table, "-F", chain, check=False).returncode == 0:
                _run(tool, "-t", table, "-X", chain, check=False)


def _remove_host_paths(state_dir: Path, created: list[str]) -> None:
    for path in HOST_PATHS:
        if path in created:
            shutil.rmtree(path, ignore_errors=True)
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for entry in results.glob("prompt-cluster-*"):
            entry.unlink(missing_ok=True)
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(str(state_dir) + "/"):
                    link.unlink()


def leftovers(state_dir: Path, facts: dict[str, str]) -> list[str]:
    """What a stopped node would have left on the host (empty after ``down``)."""
    found = []
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"bridge {BRIDGE}")
    if NODE_IP in _run("ip", "-4", "addr", "show", "dev", "lo", check=False).stdout:
        found.append(f"{NODE_IP} on lo")
    prefix = str(state_dir.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        found += [f"mount {ln.split()[4]}" for ln in handle if ln.split()[4].startswith(prefix)]
    for tool in ("iptables-save", "ip6tables-save"):
        chains = {
            ln.split()[0]
            for ln in _run(tool, check=False).stdout.splitlines()
            if ln.startswith(":KUBE-")
        }
        found += [f"{tool}: {c[1:]}" for c in sorted(chains)]
    if facts.get("ipForward") and IP_FORWARD.read_text().strip() != facts["ipForward"]:
        found.append("net.ipv4.ip_forward not restored")
    found += [f"{p} left" for p in facts.get("created", "").split(",") if p and os.path.exists(p)]
    if any((h / "kubepods").exists() for h in Path("/sys/fs/cgroup").iterdir()):
        found.append("kubepods cgroups")
    if CLAIM.exists():
        found.append(str(CLAIM))
    return found


def teardown_runtime(ctr_bin: Path | None, state_dir: Path, containerd_running: bool) -> None:
    """First half of ``down``, after the kubelet stopped and before containerd does."""
    if ctr_bin is not None and containerd_running:
        _remove_containers(ctr_bin, state_dir)


def teardown_host(state_dir: Path, facts: dict[str, str], kube_proxy: Path | None) -> None:
    """Second half of ``down``, after every node process stopped: containers
    left by a crash, mounts, iptables rules, the bridge, the node IP, sysctls."""
    _runc_leftovers(state_dir)
    _unmount_under(state_dir)
    _remove_pod_cgroups()
    if kube_proxy is not None and kube_proxy.exists():
        # Removes the KUBE-* chains and the jumps into them from the host's tables.
        _run(str(kube_proxy), "--cleanup", "--v=0", check=False)
    _remove_kube_chains()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "delete", BRIDGE, check=False)
    if NODE_IP in _run("ip", "-4", "addr", "show", "dev", "lo", check=False).stdout:
        _run("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo", check=False)
    _remove_host_paths(state_dir, facts.get("created", "").split(","))
    forward = facts.get("ipForward")
    if forward in ("0", "1"):
        with contextlib.suppress(OSError):
            IP_FORWARD.write_text(forward)
    release(state_dir)
