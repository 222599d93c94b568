"""A Prompt author cannot stall the operator: the costliest edit the CRD allows for
the history summary (ten variants of ~98 KB of random short lines, old and new
drawn independently; bench/history_cost.py measures its CPU) is reconciled while
another Prompt's edit still becomes Ready and the leader keeps renewing its Lease.

Before issue 23 the summary's line diff took ~4.5 s of CPU a variant on the
event loop, ~40 s for this edit, longer than the renew deadline: the fence then
refused the big Prompt's status write, each retry ran the diff again, and the
Prompt never became Ready (the small one waited ~40 s behind it).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import OperatorProcess, kubectl, prompt_manifest, wait_for
from tests.reliability.report import Observed

from .helpers import apply, condition, get, wait_prompt

pytestmark = pytest.mark.slow

LEASE = "prompt-operator-history"
VARIANTS = 10
BYTES_PER_TEXT = 98_000  # ten of them fit the CRD's 1,000,000 bytes
DISTINCT = 120


def random_lines(rng: random.Random) -> str:
    values = [format(i, "x") for i in range(DISTINCT)]
    lines: list[str] = []
    size = 0
    while size < BYTES_PER_TEXT:
        lines.append(rng.choice(values))
        size += len(lines[-1]) + 1
    return "\n".join(lines)


def worst_case(rng: random.Random) -> dict[str, Any]:
    manifest: dict[str, Any] = prompt_manifest("big", "unused")
    spec = manifest["spec"]
    del spec["template"]
    spec["variants"] = [
        {"name": f"v{i}", "weight": 1, "template": random_lines(rng)} for i in range(VARIANTS)
    ]
    return manifest


def renew_time(kubeconfig: Path, namespace: str) -> datetime | None:
    result = kubectl(kubeconfig, "-n", namespace, "get", "lease", LEASE, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    spec = json.loads(result.stdout).get("spec") or {}
    if spec.get("holderIdentity") != "replica-h" or not spec.get("renewTime"):
        return None
    return datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))


@pytest.fixture
def leader(
    operator: OperatorProcess, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """One leader-elected replica with the chart's timings on this namespace only,
    in place of the session's operator (which comes back after)."""
    operator.stop()
    replica = OperatorProcess(
        operator_kubeconfig,
        tmp_path / "replica.log",
        "--leader-elect",
        "--identity=replica-h",
        f"--leader-election-namespace={namespace}",
        f"--leader-election-id={LEASE}",
        f"--namespace={namespace}",
        "--lease-duration=10",
        "--renew-deadline=7",
        "--retry-period=2",
    )
    try:
        replica.start()
        yield replica
    finally:
        replica.stop()
        operator.start()


@pytest.mark.reliability(
    case="R-history-worstcase",
    did=f"a Prompt of {VARIANTS} variants, each ~98 KB of random lines from {DISTINCT} "
    "values, edited to new random texts (the history summary's worst case within the "
    "CRD's limits); right after it, a small Prompt is edited; the leader runs with the "
    "chart's Lease timings (renew deadline 7 s)",
)
def test_the_costliest_history_summary_stalls_neither_other_edits_nor_the_lease(
    kubeconfig: Path,
    namespace: str,
    leader: OperatorProcess,
    observed: Observed,
) -> None:
    rng = random.Random(23)
    apply(kubeconfig, worst_case(rng), namespace, server_side=True)
    apply(kubeconfig, prompt_manifest("small", "v0"), namespace)
    wait_prompt(kubeconfig, namespace, "big", timeout=120)
    wait_prompt(kubeconfig, namespace, "small")
    wait_for(lambda: renew_time(kubeconfig, namespace), timeout=30, message="the Lease held")

    renewals: set[datetime] = set()

    def note_renewal() -> None:
        when = renew_time(kubeconfig, namespace)
        if when is not None:
            renewals.add(when)

    note_renewal()
    edit = worst_case(rng)
    started = time.monotonic()
    apply(kubeconfig, edit, namespace, server_side=True)
    apply(kubeconfig, prompt_manifest("small", "v1"), namespace)

    def small_ready() -> bool:
        note_renewal()
        obj = get(kubeconfig, namespace, "prompt", "small")
        ready = condition(obj, "Ready") if obj else None
        return bool(
            obj
            and ready
            and ready["status"] == "True"
            and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        )

    # Generous: the assertion is that it happens while the big edit is reconciled.
    wait_for(small_ready, timeout=60, interval=0.2, message="the small Prompt's edit Ready")
    small_after = time.monotonic() - started
    big = wait_prompt(kubeconfig, namespace, "big", timeout=120)
    big_after = time.monotonic() - started
    first = max(renewals) if renewals else None

    def renewed_twice_more() -> bool:
        note_renewal()
        return len([r for r in renewals if first and r > first]) >= 2

    # The Lease keeps being renewed (every retry period, 2 s): wait for two more.
    wait_for(
        renewed_twice_more,
        timeout=30,
        interval=0.5,
        message="the leader renews its Lease",
    )
    ordered = sorted(renewals)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    summary = big["status"]["revisions"][-1]["summary"]
    assert leader.proc is not None and leader.proc.poll() is None, leader.log.read_text()[-2000:]
    lost = "lost the lease" in leader.log.read_text()
    observed(
        f"small Prompt Ready {small_after:.1f} s after both edits, the big one "
        f"{big_after:.1f} s; Lease renewals seen {len(ordered)}, largest gap between "
        f"them {max(gaps, default=0):.1f} s (retry period 2 s, renew deadline 7 s); "
        f"lease lost: {'yes' if lost else 'no'}; summary: {summary[:80]}..."
    )
    assert not lost
    assert "variant v0 +" in summary
