"""`prompt-operator history | diff | rollback`: a Prompt's revisions from the command line.

Also a kubectl plugin: installed as `kubectl-prompt` (the package does that),
`kubectl prompt history NAME` runs this. It talks to the cluster through
`kubectl` itself, so the user's kubeconfig, context and namespace apply as
they do everywhere else, and nothing here needs more rights than the user has.

A rollback writes the Prompt's spec, as `kubectl rollout undo` writes a
Deployment's: the old text, variables, format and key come back, and schedule
entries whose time has passed are removed (they took effect and are in the
history; left in place, the latest of them would win over the rollback).
Under GitOps that is drift, which the next sync undoes; the GitOps way back
is a revert in git. The command says so when it sees a GitOps tool's marks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from prompt_client import wire

from . import history
from .model import SpecError, parse_time


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


def rollback_patch(
    prompt: Mapping[str, Any], data: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """The merge patch that makes a Prompt serve the revision whose ConfigMap
    data is ``data`` again (exact bytes, so the same revision hash)."""
    source = json.loads(data.get(wire.SOURCE_DATA_KEY) or "{}")
    if not isinstance(source, dict) or "format" not in source:
        raise CliError("that revision's ConfigMap has no source.json; it cannot be rolled back")
    name = str((prompt.get("metadata") or {}).get("name"))
    spec: dict[str, Any] = {
        "format": source["format"],
        "key": None if source.get("key") == name else source.get("key"),
        "variables": source.get("variables") or None,
    }
    variants = source.get("variants") or []
    if variants:
        spec["template"] = None
        spec["variants"] = [
            {
                "name": v["name"],
                "weight": v["weight"],
                "template": data.get(wire.variant_data_key(v["name"]), ""),
            }
            for v in variants
        ]
    else:
        spec["template"] = data.get(wire.TEXT_DATA_KEY, "")
        spec["variants"] = None
    schedule = ((prompt.get("spec") or {}).get("schedule")) or []
    future = [e for e in schedule if _is_future(e, now)]
    if len(future) != len(schedule):
        spec["schedule"] = future or None
    return {"spec": spec}


def _is_future(entry: Any, now: datetime) -> bool:
    try:
        return parse_time(str(entry.get("at")), "at") > now
    except (SpecError, AttributeError):
        return True  # not ours to judge; the API server and operator report it


GITOPS_MARKS = {
    "argocd.argoproj.io/tracking-id": "Argo CD",
    "argocd.argoproj.io/instance": "Argo CD",
    "kustomize.toolkit.fluxcd.io/name": "Flux",
    "helm.toolkit.fluxcd.io/name": "Flux",
    "app.kubernetes.io/managed-by": "",  # "Helm" and others: named by its value
}


def gitops_owner(prompt: Mapping[str, Any]) -> str | None:
    meta = prompt.get("metadata") or {}
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    for key, tool in GITOPS_MARKS.items():
        if key in marks:
            return tool or str(marks[key])
    return None


# -- kubectl ---------------------------------------------------------------------------


class Kubectl:
    def __init__(self, namespace: str | None, context: str | None, kubeconfig: str | None):
        binary = shutil.which("kubectl")
        if binary is None:
            raise CliError("kubectl not found on PATH; install it to use this command")
        self._base = [binary]
        for flag, value in (("--namespace", namespace), ("--context", context)):
            if value:
                self._base += [flag, value]
        if kubeconfig:
            self._base += ["--kubeconfig", kubeconfig]

    def run(self, *args: str) -> str:
        done = subprocess.run([*self._base, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CliError(done.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return done.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        value = json.loads(self.run("get", *args, "-o", "json"))
        assert isinstance(value, dict)
        return value


def _revision_data(kubectl: Kubectl, name: str, record: history.Record) -> dict[str, str]:
    cm_name = wire.configmap_name(name, record.revision)
    try:
        cm = kubectl.get_json("configmap", cm_name)
    except CliError as exc:
        raise CliError(
            f"revision {record.number} of Prompt {name} is listed but its ConfigMap "
            f"{cm_name} is gone ({exc})"
        ) from None
    return dict(cm.get("data") or {})


def _snapshot(kubectl: Kubectl, name: str, record: history.Record) -> history.Snapshot:
    return history.snapshot_from_configmap(_revision_data(kubectl, name, record), name)


# -- commands --------------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
    # kubectl style: the connection flags go anywhere (`history NAME -n team`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="the Prompt's namespace (default: kubectl's)")
    common.add_argument("--context", help="kubeconfig context to use")
    common.add_argument("--kubeconfig", help="kubeconfig file to use")
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A Prompt's revisions: list them, diff two, roll back to one. "
        "Also works as `kubectl prompt ...` (installed as kubectl-prompt).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("history", parents=[common], help="list a Prompt's revisions")
    show.add_argument("name")
    diff = sub.add_parser("diff", parents=[common], help="unified diff between two revisions")
    diff.add_argument("name")
    diff.add_argument("rev1", type=int, help="revision number")
    diff.add_argument("rev2", type=int, nargs="?", help="revision number (default: current)")
    back = sub.add_parser(
        "rollback", parents=[common], help="make an earlier revision current again"
    )
    back.add_argument("name")
    back.add_argument("--to", type=int, required=True, dest="to", help="revision number")
    back.add_argument(
        "--dry-run", action="store_true", help="print the patch instead of applying it"
    )
    return parser


def run(command: str, argv: Sequence[str]) -> int:
    args = _parser("prompt-operator").parse_args([command, *argv])
    try:
        kubectl = Kubectl(args.namespace, args.context, args.kubeconfig)
        prompt = kubectl.get_json("prompt", args.name)
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
                    _snapshot(kubectl, args.name, old),
                    _snapshot(kubectl, args.name, new),
                    f"{args.name} revision {old.number}",
                    f"{args.name} revision {new.number}",
                )
            )
        else:
            record = find_record(status, args.to, args.name)
            patch = rollback_patch(
                prompt, _revision_data(kubectl, args.name, record), datetime.now(timezone.utc)
            )
            if args.dry_run:
                print(json.dumps(patch, indent=2, ensure_ascii=False))
                return 0
            owner = gitops_owner(prompt)
            kubectl.run("patch", "prompt", args.name, "--type", "merge", "-p", json.dumps(patch))
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
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
