"""`prompt-cluster`: start, stop, inspect or build the local cluster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .build import BuildError, ensure_binaries, ensure_node_binaries
from .cluster import ClusterError, LocalCluster
from .images import ImageError
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
        "--state-dir",
        type=Path,
        default=None,
        help="where data, logs, certificates and the kubeconfig live "
        "(default: $XDG_STATE_HOME/prompt-operator/cluster)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cluster = LocalCluster(args.state_dir)
    try:
        if args.action == "build":
            paths = list(vars(ensure_binaries()).values())
            if args.node:
                paths += list(vars(ensure_node_binaries()).values())
            for path in paths:
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
