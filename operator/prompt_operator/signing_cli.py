"""`prompt-operator signing-keys status | rotate`: the operator's signing keys.

They live in one Secret in the operator's namespace (``--signing-secret`` of
`prompt-operator run`, ``keys.json``); the leader creates it and rotates it on
its own. ``rotate`` replaces the current key now, e.g. after a suspected leak:
the replicas read the Secret within 30 s and the leader publishes the new
public key to every namespace it signals. The write is a compare-and-swap on
the resourceVersion read, so it never undoes the operator's own rotation.
Talks to the API server with the user's kubeconfig, as `history` does;
reading the Secret takes RBAC on Secrets in that namespace, which namespace
admins elsewhere do not have.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from .revisions_cli import CliError
from .runtime.client import KubeApi, object_path
from .runtime.errors import ApiError, Conflict
from .runtime.kubeconfig import KubeconfigError, PluginRequired, load
from .signing import keyset
from .signing.keyset import KeysetError, SigningKey
from .signing.store import replacement

DEFAULT_NAMESPACE = "prompt-system"
DEFAULT_SECRET = "prompt-operator-signing-keys"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# -- pure parts ------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """Seconds in ``text``: 90, 90s, 15m, 1h, 2d."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 900, 15m, 1h or 2d")
    return int(found.group(1)) * _UNITS[found.group(2) or "s"]


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(key: SigningKey, signer: SigningKey | None, now: float) -> str:
    if key is signer:
        return "current: signs"
    if key.retired(now):
        return f"retired: verifies nothing; dropped at {_when(_prune_at(key))}"
    if key.retire_at is not None:
        return "retiring: verifies until it retires"
    return "verifies; a newer key signs"


def _prune_at(key: SigningKey) -> int | None:
    return None if key.retire_at is None else key.retire_at + keyset.PRUNE_AFTER_SECONDS


def status_text(where: str, keys: Sequence[SigningKey], now: float) -> str:
    signer = keyset.current(keys, now)
    rows = [("KID", "CREATED", "RETIRES", "STATE")]
    rows += [
        (k.kid, _when(k.created), _when(k.retire_at), _state(k, signer, now))
        for k in reversed(keys)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"Secret {where}: {len(keys)} key{'s' if len(keys) != 1 else ''}"]
    for row in rows:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )
    if signer is None:
        lines.append("no key signs: signals go unsigned until the operator rotates")
    return "\n".join(lines) + "\n"


# -- the Secret, through the API or kubectl ----------------------------------------


class SecretAccess(Protocol):
    def get(self) -> dict[str, Any] | None: ...

    def replace(self, body: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class ApiSecret:
    def __init__(self, kubeconfig: str | None, context: str | None, ns: str, name: str) -> None:
        target = load(kubeconfig, context)  # PluginRequired, KubeconfigError
        self._loop = asyncio.new_event_loop()
        self._api = KubeApi(target.credentials(), timeout=15.0)
        self._path = object_path("v1", "secrets", ns, name)

    def _wait(self, call: Any) -> Any:
        try:
            return self._loop.run_until_complete(call)
        except Conflict:
            raise
        except ApiError as exc:
            hint = " (RBAC decides; ask for the right)" if exc.status == 403 else ""
            raise CliError(f"{exc}{hint}") from None

    def get(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._wait(self._api.get(self._path))
        return found

    def replace(self, body: dict[str, Any]) -> None:
        self._wait(self._api.request("PUT", self._path, body=body))

    def close(self) -> None:
        self._loop.run_until_complete(self._api.close())
        self._loop.close()


class KubectlSecret:
    """For kubeconfigs whose credentials come from an exec or auth-provider plugin."""

    def __init__(self, kubeconfig: str | None, context: str | None, ns: str, name: str) -> None:
        binary = shutil.which("kubectl")
        if binary is None:
            raise CliError(
                "this kubeconfig's user gets its credentials from a plugin, which only "
                "kubectl runs: install kubectl, or use a context with a token or certificate"
            )
        self._base = [binary, "--namespace", ns]
        self._base += ["--context", context] if context else []
        self._base += ["--kubeconfig", kubeconfig] if kubeconfig else []
        self._name = name

    def _run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._base, *args], input=stdin, capture_output=True, text=True, check=False
        )

    def get(self) -> dict[str, Any] | None:
        done = self._run("get", "secret", self._name, "-o", "json", "--ignore-not-found")
        if done.returncode != 0:
            raise CliError(done.stderr.strip())
        found: dict[str, Any] | None = json.loads(done.stdout) if done.stdout.strip() else None
        return found

    def replace(self, body: dict[str, Any]) -> None:
        done = self._run("replace", "-f", "-", stdin=json.dumps(body))
        if done.returncode != 0:
            if "the object has been modified" in done.stderr:
                raise Conflict(409, "Conflict", done.stderr.strip())
            raise CliError(done.stderr.strip())

    def close(self) -> None:
        pass


def open_secret(args: argparse.Namespace) -> SecretAccess:
    try:
        return ApiSecret(args.kubeconfig, args.context, args.namespace, args.secret)
    except PluginRequired:
        return KubectlSecret(args.kubeconfig, args.context, args.namespace, args.secret)
    except KubeconfigError as exc:
        raise CliError(str(exc)) from None


# -- the command -------------------------------------------------------------------------

EPILOG = f"""\
example:
  prompt-operator signing-keys status -n prompt-system
  prompt-operator signing-keys rotate --overlap 1h
  prompt-operator signing-keys rotate --revoke     # after a leak: old keys verify nothing

The overlap is how long the keys replaced keep verifying: signals already
signed with them stay good until then, so no sidecar falls back to reading the
API server meanwhile. At least {keyset.MIN_OVERLAP_SECONDS} s (a signed signal's
validity and the clock skew allowed). --revoke retires them at once: a signal
signed with them, and not yet used, becomes a hint (one bounded read), nothing worse.

connection: your kubeconfig ($KUBECONFIG, else ~/.kube/config) and its current
context unless --context/--kubeconfig say otherwise; reading the keys takes get
(and rotate, update) on that Secret in the operator's namespace.
"""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-n",
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"the operator's namespace (default: {DEFAULT_NAMESPACE})",
    )
    common.add_argument(
        "--secret",
        default=DEFAULT_SECRET,
        help="the Secret's name: the operator's --signing-secret, the chart's "
        f"<release fullname>-signing-keys (default: {DEFAULT_SECRET})",
    )
    common.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    common.add_argument("--kubeconfig", help="kubeconfig file (env: KUBECONFIG)")
    raw = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog="prompt-operator signing-keys",
        description="The keys the operator signs signals with (Ed25519): list them, or "
        "rotate to a new one now.",
        epilog=EPILOG,
        formatter_class=raw,
    )
    sub = top.add_subparsers(dest="command", required=True, help="what to show or do")
    sub.add_parser(
        "status",
        parents=[common],
        help="every key: id, created, retire time, which one signs",
        epilog=EPILOG,
        formatter_class=raw,
    )
    rotate = sub.add_parser(
        "rotate",
        parents=[common],
        help="a new key signs from now on; the older ones retire after --overlap",
        epilog=EPILOG,
        formatter_class=raw,
    )
    group = rotate.add_mutually_exclusive_group()
    group.add_argument(
        "--overlap",
        type=parse_duration,
        default=keyset.DEFAULT_OVERLAP_SECONDS,
        help="how long the replaced keys keep verifying what they signed: 900, 15m, 1h "
        f"(default: 1h; at least {keyset.MIN_OVERLAP_SECONDS} s)",
    )
    group.add_argument(
        "--revoke",
        action="store_true",
        help="retire the replaced keys now (a suspected leak); signals they signed become hints",
    )
    return top


def run(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        secret = open_secret(args)
        try:
            _command(secret, args, time.time())
        finally:
            secret.close()
    except (CliError, KeysetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _command(access: SecretAccess, args: argparse.Namespace, now: float) -> None:
    where = f"{args.namespace}/{args.secret}"
    secret = access.get()
    if secret is None:
        raise CliError(
            f"Secret {where} not found: the operator's leader creates it at start (is the "
            "operator running there, with signing on? --namespace and --secret choose)"
        )
    keys = keyset.parse_secret(secret)
    if args.command == "status":
        sys.stdout.write(status_text(where, keys, now))
        return
    rotated = keyset.revoke(keys, now) if args.revoke else keyset.rotate(keys, now, args.overlap)
    try:
        access.replace(replacement(secret, rotated))
    except Conflict:
        raise CliError(
            f"Secret {where} changed while rotating (the operator?): run again"
        ) from None
    print(
        f"rotated: {rotated[-1].kid} signs now; the operator's replicas read it within 30 s "
        "and publish it to every namespace they signal."
    )
    sys.stdout.write(status_text(where, rotated, now))
