"""The fan-out simulation (bench/fanout_sim.py) keeps working: simulated
sidecars on loopback addresses, Pod objects without a kubelet, the real
operator signalling them and every simulated pod holding each new revision.

The figures are the bench's business; this only keeps its harness from rotting.
"""

from __future__ import annotations

from pathlib import Path

from bench import fanout_sim
from prompt_cluster.testing import OperatorProcess

PODS = 20


def test_every_simulated_pod_holds_each_edit(
    kubeconfig: Path, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    assert operator.proc is not None
    result = fanout_sim.simulate(
        kubeconfig,
        namespace,
        tmp_path,
        pods=PODS,
        edits=2,
        party_pids={"operator": [operator.proc.pid]},
        processes=2,  # the slices and the merge of their answers
        second_octet=240,  # apart from fanout_sim (201-) and signal_transport (230)
    )
    # simulate() raises unless every pod held the first revision and each edit's.
    assert len(result.edits) == 2
    for edit in result.edits:
        # Each pod got the edit from a verified signed entry or from its own GET.
        assert edit.signed + edit.gets >= PODS
        assert 0 < edit.first_ms <= edit.median_ms <= edit.all_ms
    assert result.counts.get("bad_signals", 0) == 0
