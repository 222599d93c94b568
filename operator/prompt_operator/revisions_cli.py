"""`prompt-operator history | diff | rollback`: a Prompt's revisions from the command line.

Also a kubectl plugin: installed as `kubectl-prompt` (the package does that),
`kubectl prompt history NAME` runs this. It talks to the API server itself, as
the console does, with the user's kubeconfig (context, namespace, token or
client certificate), so nothing here needs `kubectl` on PATH or more rights
than the user has. A kubeconfig whose user runs an exec or auth-provider
plugin (EKS, GKE, OIDC helpers) is the one case handed to `kubectl`, which
knows how to run those plugins; the error says so when it is missing.

A rollback writes the Prompt's spec (``rollback.rollback_patch``, which the
console uses too). Under GitOps that is drift, which the next sync undoes; the GitOps way back
is a revert in git. The command says so when it sees a GitOps tool's marks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from prompt_contract import objects

from . import history
from .gitops import gitops_owner
from .prompt_api import ApiError, PromptApi, Unreachable
from .rollback import RollbackError, rollback_patch
from .runtime.client import KubeApi
from .runtime.kubeconfig import Access, KubeconfigError, PluginRequired, load


class CliError(Exception):
    """Something the user can fix; the message says what."""


# -- pure parts ------------------------------------------------------------------------


def history_table(name: str, status: Mapping[str, Any]) -> str:
    records = history.records_from(status)
    if not records:
        return f"Prompt {name} has no revisions yet (is the operator running?)\n"
    current = status.get("revision")
    rows = [("REVISION", "HASH", "TIME", "SOURCE", "SUMMARY")]
    for r in records:
        mark = " (current)" if r is records[-1] and r.revision == current else ""
        rows.append((f"{r.number}{mark}", r.revision, r.time, r.source, r.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]) + "\n")
    return "".join(lines)


def find_record(status: Mapping[str, Any], number: int, name: str) -> history.Record:
    records = history.records_from(status)
    for record in records:
        if record.number == number:
            return record
    kept = ", ".join(str(r.number) for r in records) or "none"
    raise CliError(
        f"Prompt {name} has no revision {number} (kept: {kept}); "
        "see `prompt-operator history " + name + "`"
    )


# -- talking to the cluster -----------------------------------------------------------

T = TypeVar("T")


class Cluster(Protocol):
    """The three calls these commands make, in one namespace."""

    namespace: str

    def prompt(self, name: str) -> dict[str, Any]: ...

    def configmap(self, name: str) -> dict[str, Any] | None: ...

    def merge_patch_prompt(self, name: str, patch: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class ApiCluster:
    """The API server through the one client (``KubeApi``, driven on a private event
    loop) and the one kubeconfig reader, as the console and the operator use them."""

    def __init__(self, target: Access, namespace: str | None) -> None:
        self.namespace = namespace or target.namespace
        self._loop = asyncio.new_event_loop()
        self._kube = KubeApi(target.credentials(), timeout=15.0)
        self._api = PromptApi(self._kube)

    def _wait(self, call: Coroutine[Any, Any, T], missing: str = "") -> T:
        try:
            return self._loop.run_until_complete(call)
        except Unreachable as exc:
            raise CliError(f"{exc}; check the kubeconfig's server and your network") from None
        except ApiError as exc:
            if exc.status == 404 and missing:
                raise CliError(missing) from None
            if exc.status == 403:
                raise CliError(
                    f"not allowed: {exc.message} (RBAC decides; ask for the right)"
                ) from None
            raise CliError(str(exc)) from None

    def prompt(self, name: str) -> dict[str, Any]:
        missing = (
            f"Prompt {self.namespace}/{name} not found; `kubectl get prompts -n "
            f"{self.namespace}` lists them, -n chooses another namespace"
        )
        return self._wait(self._api.prompt(self.namespace, name), missing)

    def configmap(self, name: str) -> dict[str, Any] | None:
        return self._wait(self._api.configmap(self.namespace, name))

    def merge_patch_prompt(self, name: str, patch: Mapping[str, Any]) -> None:
        self._wait(self._api.merge_patch(self.namespace, name, patch, dry_run=False))

    def close(self) -> None:
        self._loop.run_until_complete(self._kube.close())
        self._loop.close()


class KubectlCluster:
    """For kubeconfigs whose credentials come from an exec or auth-provider plugin."""

    def __init__(self, namespace: str | None, context: str | None, kubeconfig: str | None):
        binary = shutil.which("kubectl")
        if binary is None:
            raise CliError(
                "this kubeconfig's user gets its credentials from an exec or auth-provider "
                "plugin, which only kubectl runs: install kubectl (these commands then use "
                "it), or use a context with a token or client certificate"
            )
        self._base = [binary]
        for flag, value in (("--namespace", namespace), ("--context", context)):
            if value:
                self._base += [flag, value]
        if kubeconfig:
            self._base += ["--kubeconfig", kubeconfig]
        self.namespace = namespace or "(kubectl's namespace)"

    def _run(self, *args: str) -> str:
        done = subprocess.run([*self._base, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CliError(done.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return done.stdout

    def _get(self, *args: str) -> dict[str, Any]:
        value = json.loads(self._run("get", *args, "-o", "json"))
        assert isinstance(value, dict)
        return value

    def prompt(self, name: str) -> dict[str, Any]:
        return self._get("prompt", name)

    def configmap(self, name: str) -> dict[str, Any] | None:
        try:
            return self._get("configmap", name)
        except CliError:
            return None

    def merge_patch_prompt(self, name: str, patch: Mapping[str, Any]) -> None:
        self._run("patch", "prompt", name, "--type", "merge", "-p", json.dumps(patch))

    def close(self) -> None:
        pass


def connect(namespace: str | None, context: str | None, kubeconfig: str | None) -> Cluster:
    try:
        target = load(kubeconfig, context)
    except PluginRequired:
        return KubectlCluster(namespace, context, kubeconfig)
    except KubeconfigError as exc:
        raise CliError(str(exc)) from None
    return ApiCluster(target, namespace)


def _revision_data(cluster: Cluster, name: str, record: history.Record) -> dict[str, str]:
    cm_name = objects.configmap_name(name, record.revision)
    cm = cluster.configmap(cm_name)
    if cm is None:
        raise CliError(
            f"revision {record.number} of Prompt {name} is listed but its ConfigMap "
            f"{cm_name} is gone"
        )
    return dict(cm.get("data") or {})


def _snapshot(cluster: Cluster, name: str, record: history.Record) -> history.Snapshot:
    return history.snapshot_from_configmap(_revision_data(cluster, name, record), name)


# -- commands --------------------------------------------------------------------------

CONNECTION = """\
connection: your kubeconfig ($KUBECONFIG, else ~/.kube/config), its current
context and namespace unless -n/--context/--kubeconfig say otherwise; the API
server is called directly, with your own credentials and RBAC. kubectl is
needed only for a kubeconfig user that runs an exec or auth-provider plugin.
"""

HISTORY_EPILOG = (
    """\
example:
  prompt-operator history support-agent -n team-a
  kubectl prompt history support-agent -n team-a   # the same, as a kubectl plugin

"""
    + CONNECTION
)

DIFF_EPILOG = (
    """\
example:
  prompt-operator diff support-agent 3 4    # revision 3 against revision 4
  prompt-operator diff support-agent 3      # revision 3 against the current one

"""
    + CONNECTION
)

ROLLBACK_EPILOG = (
    """\
example:
  prompt-operator rollback support-agent --to 3 --dry-run   # show the patch
  prompt-operator rollback support-agent --to 3

The old bytes come back under the same hash, as the next revision number.
Under Argo CD or Flux this is drift that the next sync undoes: revert in git.

"""
    + CONNECTION
)


def connection_flags() -> argparse.ArgumentParser:
    """-n, --context, --kubeconfig: a parent parser for every command that reads a Prompt."""
    # kubectl style: the connection flags go anywhere (`history NAME -n team`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-n", "--namespace", help="the Prompt's namespace (default: the context's namespace)"
    )
    common.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    common.add_argument(
        "--kubeconfig",
        help="kubeconfig file to use (env: KUBECONFIG; default: ~/.kube/config)",
    )
    return common


def _parser(prog: str) -> argparse.ArgumentParser:
    common = connection_flags()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A Prompt's revisions: list them, diff two, roll back to one. "
        "Also works as `kubectl prompt ...` (installed as kubectl-prompt).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    show = sub.add_parser(
        "history",
        parents=[common],
        help="list a Prompt's revisions",
        description="List a Prompt's retained revisions: number, content hash, time, "
        "source (spec or a schedule entry) and a one-line summary; the current one is "
        "marked.",
        epilog=HISTORY_EPILOG,
        formatter_class=raw,
    )
    show.add_argument("name", help="the Prompt's name (metadata.name)")
    diff = sub.add_parser(
        "diff",
        parents=[common],
        help="unified diff between two revisions",
        description="Print a unified diff between two retained revisions of a Prompt "
        "(text, variables, variants), read from their immutable ConfigMaps.",
        epilog=DIFF_EPILOG,
        formatter_class=raw,
    )
    diff.add_argument("name", help="the Prompt's name (metadata.name)")
    diff.add_argument("rev1", type=int, help="revision number (from `history`)")
    diff.add_argument("rev2", type=int, nargs="?", help="revision number (default: current)")
    back = sub.add_parser(
        "rollback",
        parents=[common],
        help="make an earlier revision current again",
        description="Make an earlier revision current again: patch the Prompt's spec "
        "with that revision's exact text, variables, format, key and variants; "
        "schedule entries already past are removed.",
        epilog=ROLLBACK_EPILOG,
        formatter_class=raw,
    )
    back.add_argument("name", help="the Prompt's name (metadata.name)")
    back.add_argument(
        "--to", type=int, required=True, dest="to", help="revision number (from `history`)"
    )
    back.add_argument(
        "--dry-run", action="store_true", help="print the patch instead of applying it"
    )
    return parser


def run(command: str, argv: Sequence[str]) -> int:
    args = _parser("prompt-operator").parse_args([command, *argv])
    try:
        cluster = connect(args.namespace, args.context, args.kubeconfig)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        _command(cluster, args)
    except (CliError, RollbackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    return 0


def _command(cluster: Cluster, args: argparse.Namespace) -> None:
    prompt = cluster.prompt(args.name)
    status = prompt.get("status") or {}
    if args.command == "history":
        sys.stdout.write(history_table(args.name, status))
    elif args.command == "diff":
        records = history.records_from(status)
        old = find_record(status, args.rev1, args.name)
        new = (
            find_record(status, args.rev2, args.name)
            if args.rev2 is not None
            else (records[-1] if records else old)
        )
        sys.stdout.write(
            history.unified_diff(
                _snapshot(cluster, args.name, old),
                _snapshot(cluster, args.name, new),
                f"{args.name} revision {old.number}",
                f"{args.name} revision {new.number}",
            )
        )
    else:
        record = find_record(status, args.to, args.name)
        patch = rollback_patch(
            prompt, _revision_data(cluster, args.name, record), datetime.now(timezone.utc)
        )
        if args.dry_run:
            print(json.dumps(patch, indent=2, ensure_ascii=False))
            return
        owner = gitops_owner(prompt)
        cluster.merge_patch_prompt(args.name, patch)
        print(
            f"prompt/{args.name} rolled back to revision {record.number} "
            f"({record.revision}); it becomes the next revision number"
        )
        if owner:
            print(
                f"warning: Prompt {args.name} is managed by {owner}; this rollback is "
                "drift that its next sync undoes. To stay rolled back, revert the "
                "change in git.",
                file=sys.stderr,
            )
