"""The one `prompt-operator` command. Each subcommand imports its part lazily,
so `prompt-operator sidecar` never loads kopf and `cluster` never loads either."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_USAGE = """\
prompt-operator <command> [options]

commands:
  run        run the operator (watches Prompts, writes ConfigMaps, signals sidecars)
  sidecar    run the sidecar beside an app (writes prompt files into a shared volume)
  validate   check Prompt manifests offline, for CI pipelines
  history    list a Prompt's revisions (number, hash, time, source, summary)
  diff       unified diff between two revisions of a Prompt
  rollback   make an earlier revision current again (--to NUMBER)
  console    a local web console for Prompts (browse, diff, edit, roll back)
  cluster    start, stop or inspect a local control plane for demos and tests

`prompt-operator <command> --help` describes each command.
"""


def _cluster(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prompt-operator cluster",
        description="A local Kubernetes control plane (etcd, kube-apiserver, "
        "kube-controller-manager) built from Go modules on first use.",
    )
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where data, logs, certificates and the kubeconfig live "
        "(default: $XDG_STATE_HOME/prompt-operator/cluster)",
    )
    args = parser.parse_args(argv)

    from prompt_cluster.build import BuildError, ensure_binaries
    from prompt_cluster.cluster import ClusterError, LocalCluster

    cluster = LocalCluster(args.state_dir)
    try:
        if args.action == "build":
            binaries = ensure_binaries()
            for path in vars(binaries).values():
                print(path)
        elif args.action == "up":
            already = cluster.running() is not None
            state = cluster.up()
            word = "already running" if already else "ready"
            print(
                f"cluster {word}: {state.server} (logs in {cluster.state_dir / 'logs'})",
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
    except (BuildError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "cluster":
        return _cluster(rest)
    if command == "sidecar":
        from prompt_sidecar.main import run as run_sidecar

        return run_sidecar(rest)
    if command == "run":
        from prompt_operator.runner import run as run_operator

        return run_operator(rest)
    if command in ("history", "diff", "rollback"):
        from prompt_operator.revisions_cli import run as run_revisions

        return run_revisions(command, rest)
    if command == "console":
        from prompt_operator.console.command import run as run_console

        return run_console(rest)
    if command == "validate":
        from prompt_operator.validate import main as run_validate

        return run_validate(rest)
    print(f"prompt-operator: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
