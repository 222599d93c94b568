"""What every benchmark scenario shares: the figures it prints, and how it reads
the processes' memory and the API server's audit log."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prompt_cluster.testing import (
    OperatorProcess,
    audit_events,
    audit_line_count,
    kubectl,
    kubectl_json,
    service_account_kubeconfig,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
OPERATOR_USER = "system:serviceaccount:prompt-system:prompt-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "apply"}


@dataclass
class Figures:
    quick: bool
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, goal: str, **params: Any) -> None:
        params["mode"] = "quick" if self.quick else "full"
        self.items.append(
            {"name": name, "value": round(value, 3), "unit": unit, "params": params, "goal": goal}
        )
        print(f"  {name:<44} {value:>10.3f} {unit:<9} goal {goal}", flush=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident and peak resident size (VmRSS, VmHWM) of ``pid`` in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    return values["VmRSS"], values["VmHWM"]


def audit_counts(log: Path, since: int, user: str, verbs: set[str] | None) -> int:
    """Requests by ``user`` after line ``since`` of the audit log (``verbs``: only those)."""
    return sum(
        1
        for event in audit_events(log, since)
        if event.get("user", {}).get("username") == user
        and (verbs is None or event.get("verb") in verbs)
    )


def start_operator(kubeconfig: Path, work: Path, *args: str) -> OperatorProcess:
    """The CRDs in place, then the operator running as its own service account
    (``args``: extra flags), its log in ``work``."""
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))

    def established() -> bool:
        # Not `kubectl wait`: right after the apply the CRD may have no
        # conditions yet, which kubectl takes for an error.
        crd = kubectl_json(kubeconfig, "get", "crd", "prompts.prompts.dev")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=60, message="the Prompt CRD Established")
    operator_kc = service_account_kubeconfig(
        kubeconfig,
        "prompt-system",
        "prompt-operator",
        work / "operator.kc",
        cluster_role="cluster-admin",
    )
    operator = OperatorProcess(operator_kc, work / "operator.log", *args)
    operator.start()
    return operator


def settle(audit: Path, timeout: float = 60) -> int:
    """Wait until the audit log stops growing; its line count then."""
    last = [-1]

    def stable() -> int | None:
        now = audit_line_count(audit)
        if now == last[0]:
            return now or 1
        last[0] = now
        return None

    try:
        return int(wait_for(stable, timeout=timeout, interval=0.5, message="a quiet audit log"))
    except Exception:
        now = datetime.now(UTC).isoformat()
        print(f"  the audit log still grows at {now}: {audit_tail(audit)}", flush=True)
        raise


def audit_tail(log: Path, lines: int = 2000) -> str:
    """Who made the last ``lines`` requests, and how old the newest is: says
    whether a component is still busy or the audit writer lags behind."""
    with open(log, encoding="utf-8") as handle:
        tail = handle.readlines()[-lines:]
    kinds: Counter[str] = Counter()
    newest = ""
    for line in tail:
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        user = event.get("user", {}).get("username", "?").rsplit(":", 1)[-1]
        resource = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
        kinds[f"{user} {event.get('verb')} {resource}"] += 1
        newest = max(newest, event.get("requestReceivedTimestamp", ""))
    top = ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common(6))
    return f"last {len(tail)} events: {top}; newest received at {newest}"
