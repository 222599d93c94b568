"""`prompt-cluster`: start, stop, inspect or build the local cluster."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from .build import BuildError, ensure_binaries, ensure_node_binaries, ensure_prometheus
from .cluster import ClusterError, LocalCluster
from .images import ImageError, demo_app_image, operator_image
from .node import NodeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prompt-cluster",
        description="A local Kubernetes cluster (etcd, kube-apiserver, "
        "kube-controller-manager; with --node also containerd, kubelet, "
        "kube-scheduler and kube-proxy) built from Go modules on first use.",
    )
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument(
        "--node",
        action="store_true",
        help="up: also start a real node that runs pods (needs root; one per machine); "
        "build: also build the node's binaries",
    )
    parser.add_argument(
        "--images",
        action="store_true",
        help="build: also build the product and demo images (Debian base, buildah), "
        "alongside the Go builds",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where data, logs, certificates and the kubeconfig live "
        "(default: $XDG_STATE_HOME/prompt-operator/cluster)",
    )
    return parser


def _build(*, node: bool, with_images: bool) -> list[Path]:
    """Go builds in this thread; the images (network and dpkg bound, they need
    no Go binary) at the same time in another, which saves their minutes on a
    cold machine."""
    built: list[Path] = []
    failure: list[BaseException] = []

    def build_images() -> None:
        try:
            built.extend(archive for archive, _ in (operator_image(), demo_app_image()))
        except BaseException as exc:  # reported after the Go builds finish
            failure.append(exc)

    worker = threading.Thread(target=build_images, daemon=True) if with_images else None
    if worker is not None:
        worker.start()
    paths = list(vars(ensure_binaries()).values())
    paths.append(ensure_prometheus())  # the rollout tests' analysis scrapes and queries it
    if node:
        paths += list(vars(ensure_node_binaries()).values())
    if worker is not None:
        worker.join()
        if failure:
            raise failure[0]
    return paths + built


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cluster = LocalCluster(args.state_dir)
    try:
        if args.action == "build":
            for path in _build(node=args.node, with_images=args.images):
                print(path)
        elif args.action == "up":
            already = cluster.running() is not None
            state = cluster.up(node=args.node)
            word = "already running" if already else "ready"
            node = " with node prompt-node" if state.node else ""
            print(
                f"cluster {word}{node}: {state.server} (logs in {cluster.state_dir / 'logs'})",
                file=sys.stderr,
            )
            print(f"export KUBECONFIG={state.kubeconfig}")
        elif args.action == "down":
            stopped = cluster.down()
            print("cluster stopped" if stopped else "no cluster was running", file=sys.stderr)
        else:
            status = cluster.status()
            print(json.dumps(status, indent=2))
            return 0 if status.get("running") else 3
    except (BuildError, ClusterError, NodeError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
