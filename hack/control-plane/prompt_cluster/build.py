"""Build the control-plane binaries from their Go modules and cache them.

No package ships kube-apiserver for every machine, so the project builds
kube-apiserver, kube-controller-manager, etcd and helm from the pinned Go
modules under ``hack/control-plane/{kube,etcd,helm}`` and keeps them in a
cache keyed by version (``$XDG_CACHE_HOME/prompt-operator/bin/...``). A second
run rebuilds nothing. The real node adds kubelet, kube-scheduler and
kube-proxy (same module and pins as the API server), containerd v2 with its
runc shim (``hack/control-plane/containerd``), CoreDNS
(``hack/control-plane/coredns``) and a pause binary
(``hack/control-plane/pause``); ``ensure_node_binaries`` builds them.
``ensure_prometheus`` builds Prometheus (``hack/control-plane/prometheus``)
for the rollout tests.
``KUBEBUILDER_ASSETS`` (envtest's convention) supplies kube-apiserver and
etcd when it points at existing binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v4.3.1"
CONTAINERD_VERSION = "v2.4.2"
COREDNS_VERSION = "v1.15.0"
PAUSE_VERSION = "1"  # bump when hack/control-plane/pause changes
# Prometheus's Go module numbers release 3.y.z as v0.3yy.z.
PROMETHEUS_VERSION = "v0.316.0"

MODULES_DIR = Path(__file__).resolve().parent.parent  # hack/control-plane


class BuildError(RuntimeError):
    """A binary could not be built; the message says what to do."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    etcd: Path
    helm: Path


@dataclass(frozen=True)
class _Target:
    name: str  # cache folder name, e.g. "kube-v1.37.2"
    module: str  # folder under hack/control-plane
    packages: tuple[str, ...]
    outputs: tuple[str, ...]  # binary names go build produces
    ldflags: str
    tags: str = ""


# Without these the binaries report v0.0.0-master and clients complain.
_KUBE_LDFLAGS = " ".join(
    [
        "-s -w",
        f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
        "-X k8s.io/component-base/version.gitMajor=" + KUBERNETES_VERSION.lstrip("v").split(".")[0],
        "-X k8s.io/component-base/version.gitMinor=" + KUBERNETES_VERSION.split(".")[1],
        "-X k8s.io/component-base/version.gitTreeState=clean",
    ]
)
_KUBE = _Target(
    name=f"kube-{KUBERNETES_VERSION}",
    module="kube",
    packages=(
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ),
    outputs=("kube-apiserver", "kube-controller-manager"),
    ldflags=_KUBE_LDFLAGS,
)
# A folder of its own, so building the node never replaces the control-plane
# folder that running clusters use.
_NODE = _Target(
    name=f"node-{KUBERNETES_VERSION}",
    module="kube",
    packages=(
        "k8s.io/kubernetes/cmd/kubelet",
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes/cmd/kube-proxy",
    ),
    outputs=("kubelet", "kube-scheduler", "kube-proxy"),
    ldflags=_KUBE_LDFLAGS,
)
_CONTAINERD = _Target(
    name=f"containerd-{CONTAINERD_VERSION}",
    module="containerd",
    packages=(
        "github.com/containerd/containerd/v2/cmd/containerd",
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
        "github.com/containerd/containerd/v2/cmd/ctr",
    ),
    outputs=("containerd", "containerd-shim-runc-v2", "ctr"),
    ldflags=f"-s -w -X github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION}",
    # btrfs needs cgo and headers; the node uses overlayfs.
    tags="no_btrfs",
)
_COREDNS = _Target(
    name=f"coredns-{COREDNS_VERSION}",
    module="coredns",
    packages=("github.com/coredns/coredns",),
    outputs=("coredns",),
    ldflags="-s -w",
)
_PAUSE = _Target(
    name=f"pause-{PAUSE_VERSION}",
    module="pause",
    packages=("prompt-operator/hack/control-plane/pause",),
    outputs=("pause",),
    ldflags="-s -w",
)
_ETCD = _Target(
    name=f"etcd-{ETCD_VERSION}",
    module="etcd",
    packages=("go.etcd.io/etcd/server/v3",),
    outputs=("server",),  # go drops the /v3 suffix and names it after the module
    ldflags="-s -w",
)
_HELM = _Target(
    name=f"helm-{HELM_VERSION}",
    module="helm",
    packages=("helm.sh/helm/v4/cmd/helm",),
    outputs=("helm",),
    ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
)


_PROMETHEUS_RELEASE = "3.{}.{}".format(
    int(PROMETHEUS_VERSION.split(".")[1]) - 300, PROMETHEUS_VERSION.split(".")[2]
)
_PROMETHEUS = _Target(
    name=f"prometheus-{PROMETHEUS_VERSION}",
    module="prometheus",
    packages=("github.com/prometheus/prometheus/cmd/prometheus",),
    outputs=("prometheus",),
    ldflags=f"-s -w -X github.com/prometheus/common/version.Version={_PROMETHEUS_RELEASE}",
    # Static and file targets only: the cloud service discoveries triple the build.
    tags="remove_all_sd",
)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "prompt-operator" / "bin"


def _log(message: str) -> None:
    print(f"[control-plane] {message}", file=sys.stderr, flush=True)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is not installed (no `go` on PATH). The local control plane is built "
            "from Go modules: install Go 1.26 or newer, or point KUBEBUILDER_ASSETS "
            "at a folder holding kube-apiserver and etcd."
        )
    return go


def _build(target: _Target) -> Path:
    """Build ``target`` into its cache folder unless it is already there."""
    dest = cache_root() / target.name
    final_names = ["etcd" if out == "server" else out for out in target.outputs]
    if all((dest / name).is_file() for name in final_names):
        return dest
    go = _go()
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=dest.parent))
    _log(
        f"building {', '.join(final_names)} ({target.name}) from Go modules; "
        "a cold build takes several minutes"
    )
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            _log(f"  still building {target.name}: {time.monotonic() - started:.0f}s")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        # One invocation for all packages, so shared packages compile once.
        result = subprocess.run(
            [
                go,
                "build",
                "-trimpath",
                *(["-tags", target.tags] if target.tags else []),
                "-ldflags",
                target.ldflags,
                "-o",
                str(staging) + os.sep,
                *target.packages,
            ],
            cwd=MODULES_DIR / target.module,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    finally:
        done.set()
    try:
        if result.returncode != 0:
            raise BuildError(f"building {target.name} failed:\n{result.stdout[-4000:]}")
        for out, final in zip(target.outputs, final_names, strict=True):
            (staging / out).rename(staging / final)
        staging.chmod(0o755)
        # Publish the whole folder at once: a half-built cache never looks complete.
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _log(f"built {target.name} in {time.monotonic() - started:.0f}s -> {dest}")
    return dest


def _from_kubebuilder_assets() -> tuple[Path, Path] | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    apiserver, etcd = Path(assets) / "kube-apiserver", Path(assets) / "etcd"
    if apiserver.is_file() and etcd.is_file():
        return apiserver, etcd
    _log(f"KUBEBUILDER_ASSETS={assets} lacks kube-apiserver or etcd; building them instead")
    return None


def ensure_binaries(*, helm: bool = True) -> Binaries:
    """Return the control-plane binaries, building what is missing."""
    assets = _from_kubebuilder_assets()
    kube = _build(_KUBE)
    if assets is not None:
        apiserver, etcd = assets
    else:
        apiserver, etcd = kube / "kube-apiserver", _build(_ETCD) / "etcd"
    helm_bin = _build(_HELM) / "helm" if helm else cache_root() / _HELM.name / "helm"
    return Binaries(
        kube_apiserver=apiserver,
        kube_controller_manager=kube / "kube-controller-manager",
        etcd=etcd,
        helm=helm_bin,
    )


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_scheduler: Path
    kube_proxy: Path
    containerd: Path
    containerd_shim: Path
    ctr: Path
    pause: Path
    coredns: Path


def ensure_helm() -> Path:
    """Only helm (`make dist` packages the chart without a cluster)."""
    return _build(_HELM) / "helm"


def ensure_prometheus() -> Path:
    """Prometheus, for the rollout tests' analysis (``prompt_cluster.prometheus``)."""
    return _build(_PROMETHEUS) / "prometheus"


def ensure_node_binaries() -> NodeBinaries:
    """Return the real node's binaries, building what is missing."""
    node, containerd, pause = _build(_NODE), _build(_CONTAINERD), _build(_PAUSE)
    return NodeBinaries(
        kubelet=node / "kubelet",
        kube_scheduler=node / "kube-scheduler",
        kube_proxy=node / "kube-proxy",
        containerd=containerd / "containerd",
        containerd_shim=containerd / "containerd-shim-runc-v2",
        ctr=containerd / "ctr",
        pause=pause / "pause",
        coredns=_build(_COREDNS) / "coredns",
    )


def main() -> int:
    try:
        binaries = ensure_binaries()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in (
        binaries.kube_apiserver,
        binaries.kube_controller_manager,
        binaries.etcd,
        binaries.helm,
    ):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
