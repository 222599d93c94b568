"""P2-steady: the operator's API writes per edit of a Prompt whose history is full.

The P2 figure edits fresh Prompts, whose history never fills; this one first
edits one Prompt until its history holds its limit (the normal state of any
Prompt that is edited), then counts, in the audit log, every write the
operator makes in the scenario's own namespace over the next edits. Each edit
is waited for (its revision in status) before the next, so none coalesce.

`python -m bench.steady [--edits N] [--limit N]` runs it alone on its own
local cluster; `bench/run.py` calls ``measure`` on its own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import (
    OperatorProcess,
    audit_events,
    wait_for,
)

from .common import OPERATOR_USER, WRITE_VERBS, Figures, settle, start_operator

NAMESPACE = "bench-steady"
NAME = "steady"
FIGURE = "P2-steady API writes per edit (history full)"


def writes_in(log: Path, since: int, user: str, namespace: str) -> dict[str, int]:
    """The write requests ``user`` made in ``namespace``, counted by verb and resource."""
    counts: dict[str, int] = {}
    for event in audit_events(log, since):
        ref = event.get("objectRef") or {}
        if (
            event.get("user", {}).get("username") == user
            and event.get("verb") in WRITE_VERBS
            and ref.get("namespace") == namespace
        ):
            what = f"{event['verb']} {ref.get('resource')}"
            counts[what] = counts.get(what, 0) + 1
    return counts


def _path(namespace: str) -> str:
    return f"/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts/{NAME}"


def _edit(api: Api, namespace: str, n: int) -> None:
    """Edit the Prompt to text ``n`` and wait until its status shows revision ``n``."""
    api.request(
        "PATCH",
        _path(namespace),
        {"spec": {"template": f"steady edit {n}"}},
        "application/merge-patch+json",
    )
    _wait(api, namespace, n)


def _wait(api: Api, namespace: str, n: int) -> None:
    path = _path(namespace)

    def handled() -> bool:
        obj = api.request("GET", path)
        status = obj.get("status") or {}
        records = status.get("revisions") or []
        return (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and bool(records)
            and records[-1].get("revision") == status.get("revision")
            and records[-1].get("number") == n
        )

    wait_for(handled, timeout=60, interval=0.02, message=f"steady edit {n} in status")


def measure(
    api: Api,
    audit: Path,
    figures: Figures,
    operator_user: str = OPERATOR_USER,
    *,
    edits: int = 50,
    limit: int = 10,
    namespace: str = NAMESPACE,
) -> float:
    """Add the P2-steady figure: writes per edit over ``edits`` edits of a Prompt
    whose history is at ``limit``; returns it."""
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    api.request(
        "POST",
        f"/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts",
        {
            "apiVersion": "prompts.dev/v1alpha1",
            "kind": "Prompt",
            "metadata": {"name": NAME},
            "spec": {"template": "steady edit 1", "format": "raw", "revisionHistoryLimit": limit},
        },
    )
    _wait(api, namespace, 1)
    for n in range(2, limit + 1):  # the history is now full: `limit` revisions
        _edit(api, namespace, n)
    mark = settle(audit)
    for n in range(limit + 1, limit + 1 + edits):
        _edit(api, namespace, n)
    settle(audit)
    counts = writes_in(audit, mark, operator_user, namespace)
    writes = sum(counts.values())
    figures.add(
        FIGURE,
        writes / edits,
        "writes",
        "<= 2",
        edits=edits,
        history_limit=limit,
        writes=writes,
        **{what.replace(" ", "_"): count for what, count in sorted(counts.items())},
    )
    return writes / edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steady")
    parser.add_argument("--edits", type=int, default=50, help="edits counted (default 50)")
    parser.add_argument("--limit", type=int, default=10, help="the Prompt's history limit")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prompt-bench-steady-"))
    print(f"P2-steady on a local cluster; work dir {work}", flush=True)
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    operator: OperatorProcess | None = None
    try:
        kc = state.kubeconfig
        operator = start_operator(kc, work)
        figures = Figures(quick=False)
        measure(Api(kc), state.audit_log, figures, edits=args.edits, limit=args.limit)
        item: dict[str, Any] = figures.items[-1]
        print(json.dumps(item["params"]), flush=True)
    finally:
        if operator is not None:
            operator.stop()
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
