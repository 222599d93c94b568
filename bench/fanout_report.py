"""What one run of bench/fanout_sim.py measured, and how it is printed and kept."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Edit:
    all_ms: float  # until every pod held it
    median_ms: float  # until half the pods held it
    first_ms: float
    cpu_s: dict[str, float]  # per party, the edit's window less that party's idle rate
    gets: int
    signed: int
    cached_gets: int  # of ``gets``, from the watch cache
    operator_open_files: int  # once every pod held it


@dataclass
class Fanout:
    """What one run measured (``summary`` makes it JSON)."""

    pods: int
    processes: int
    create_s: float = 0.0
    first_delivery_s: float = 0.0
    edits: list[Edit] = field(default_factory=list)
    idle_cpu_per_s: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        if any(e.signed for e in self.edits):
            return "signed"
        # The sidecar before the watch-cache reads GETs every hint from etcd.
        return "hint-cached" if any(e.cached_gets for e in self.edits) else "hint"


def summary(result: Fanout) -> dict[str, Any]:
    def per_edit(value: Callable[[Edit], float]) -> dict[str, float]:
        values = [value(e) for e in result.edits]
        return {"p50": round(statistics.median(values), 1), "max": round(max(values), 1)}

    parties = result.edits[0].cpu_s if result.edits else {}
    return {
        "mode": result.mode,
        "pods": result.pods,
        "simulator_processes": result.processes,
        "edits": len(result.edits),
        "create_pods_s": round(result.create_s, 1),
        "first_delivery_s": round(result.first_delivery_s, 1),
        "every_pod_ms": per_edit(lambda e: e.all_ms),
        "half_the_pods_ms": per_edit(lambda e: e.median_ms),
        "cpu_ms_per_edit": {
            party: per_edit(lambda e, party=party: e.cpu_s[party] * 1000) for party in parties
        },
        "gets_per_edit": per_edit(lambda e: e.gets),
        "signed_per_edit": per_edit(lambda e: e.signed),
        "cached_gets_per_edit": per_edit(lambda e: e.cached_gets),
        "operator_open_files": per_edit(lambda e: e.operator_open_files),
        "idle_cpu_ms_per_s": {p: round(v * 1000, 1) for p, v in result.idle_cpu_per_s.items()},
        "rss_mib": {p: round(v, 1) for p, v in result.rss_mib.items()},
        "simulator_counts": result.counts,
    }


def table(results: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| mode | pods | edits | every pod p50 / max ms | CPU ms/edit p50: operator "
        "| API server | etcd | simulator | GETs/edit | signed/edit | operator peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cpu = r["cpu_ms_per_edit"]
        lines.append(
            f"| {r['mode']} | {r['pods']} | {r['edits']} | {r['every_pod_ms']['p50']:.0f} / "
            f"{r['every_pod_ms']['max']:.0f} | {cpu['operator']['p50']:.0f} "
            f"| {cpu['kube-apiserver']['p50']:.0f} | {cpu['etcd']['p50']:.0f} "
            f"| {cpu['simulator']['p50']:.0f} | {r['gets_per_edit']['p50']:.0f} "
            f"| {r['signed_per_edit']['p50']:.0f} "
            f"| {r['rss_mib']['operator_peak']:.0f} |"
        )
    return "\n".join(lines)


def save(record: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Keep ``record`` in ``out`` (one per mode and pod count: a run replaces the
    last of its kind); every run kept."""
    runs = json.loads(out.read_text())["runs"] if out.exists() else {}
    runs[f"{record['mode']}-{record['pods']}"] = record
    out.write_text(json.dumps({"runs": runs}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return list(runs.values())
