"""P2-snippet: the operator's API writes per edit of a snippet that 10 Prompts include.

An edit of an included Prompt makes a new revision of it and of every Prompt
that includes it, so its cost is the P2 cost (two writes: the ConfigMap and a
status patch) times the Prompts it changes: 2 x 11 for a snippet included by
10 Prompts, plus a batch prune now and then. Each edit is waited for (every
includer's new revision in status) before the next, so none coalesce.

`python -m bench.snippet [--edits N] [--includers N]` runs it alone on its own
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
from prompt_cluster.testing import OperatorProcess, wait_for

from .common import OPERATOR_USER, Figures, settle, start_operator
from .steady import writes_in

NAMESPACE = "bench-snippet"
SNIPPET = "safety"
FIGURE = "P2-snippet API writes per edit of a snippet included by 10 Prompts"
PROMPTS = "/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts"


def _prompt(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": {"name": name},
        "spec": spec,
    }


def _wait(api: Api, namespace: str, names: list[str], number: int) -> None:
    """Until every Prompt of ``names`` is Ready at revision ``number``."""
    base = PROMPTS.format(namespace=namespace)

    def at(name: str) -> bool:
        obj = api.request("GET", f"{base}/{name}")
        status = obj.get("status") or {}
        records = status.get("revisions") or []
        return (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and bool(records)
            and records[-1].get("revision") == status.get("revision")
            and records[-1].get("number") == number
        )

    wait_for(lambda: all(at(n) for n in names), timeout=60, interval=0.05, message=f"{number}")


def measure(
    api: Api,
    audit: Path,
    figures: Figures,
    operator_user: str = OPERATOR_USER,
    *,
    edits: int = 20,
    includers: int = 10,
    namespace: str = NAMESPACE,
) -> float:
    """Add the P2-snippet figure: writes per edit over ``edits`` edits of a snippet
    that ``includers`` Prompts include; returns it."""
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    base = PROMPTS.format(namespace=namespace)
    api.request("POST", base, _prompt(SNIPPET, {"template": "snippet edit 1"}))
    names = [f"includer-{i}" for i in range(includers)]
    for name in names:
        spec = {
            "template": f"{{safety}} {name}",
            "includes": [{"name": "safety", "prompt": SNIPPET}],
        }
        api.request("POST", base, _prompt(name, spec))
    _wait(api, namespace, [SNIPPET, *names], 1)
    mark = settle(audit)
    for n in range(2, edits + 2):
        api.request(
            "PATCH",
            f"{base}/{SNIPPET}",
            {"spec": {"template": f"snippet edit {n}"}},
            "application/merge-patch+json",
        )
        _wait(api, namespace, [SNIPPET, *names], n)
    settle(audit)
    counts = writes_in(audit, mark, operator_user, namespace)
    writes = sum(counts.values())
    figures.add(
        FIGURE,
        writes / edits,
        "writes",
        f"<= {2 * (includers + 1) + 1}",
        edits=edits,
        includers=includers,
        writes=writes,
        **{what.replace(" ", "_"): count for what, count in sorted(counts.items())},
    )
    return writes / edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snippet")
    parser.add_argument("--edits", type=int, default=20, help="snippet edits counted (default 20)")
    parser.add_argument("--includers", type=int, default=10, help="Prompts including it")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prompt-bench-snippet-"))
    print(f"P2-snippet on a local cluster; work dir {work}", flush=True)
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    operator: OperatorProcess | None = None
    try:
        kc = state.kubeconfig
        operator = start_operator(kc, work)
        figures = Figures(quick=False)
        per_edit = measure(
            Api(kc), state.audit_log, figures, edits=args.edits, includers=args.includers
        )
        print(f"{FIGURE}: {per_edit:.2f}", flush=True)
        print(json.dumps(figures.items[-1]["params"]), flush=True)
    finally:
        if operator is not None:
            operator.stop()
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
