"""Draw the cost curve of a bench run as a PNG next to its JSON.

`python -m bench.plot [bench/results/latest.json]` writes latest.png: edit
latency (p50 and p99, ours and the watch-based sidecar) and the operator's CPU
and API requests per edit, against the number of subscribed pods. Needs the
bench's own extra: `pip install -e '.[bench]'` (`make bench` installs it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def series(
    curve: Sequence[Mapping[str, Any]], kind: str, field: str
) -> tuple[list[int], list[float]]:
    rows = sorted((row for row in curve if row["kind"] == kind), key=lambda row: row["pods"])
    return [row["pods"] for row in rows], [float(row[field]) for row in rows]


def plot(results: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    data = json.loads(results.read_text())
    curve = data["curve"]
    machine = data["machine"]
    fig, (latency, cost) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for kind, label, color in (
        ("ours", "ours (signal)", "tab:blue"),
        ("watch", "watch-based", "tab:gray"),
    ):
        pods, p50 = series(curve, kind, "p50_ms")
        _, p99 = series(curve, kind, "p99_ms")
        latency.plot(pods, p50, "o-", color=color, label=f"{label} p50")
        latency.plot(pods, p99, "s--", color=color, alpha=0.6, label=f"{label} p99")
    latency.axhline(100, color="tab:green", linewidth=0.8, linestyle=":", label="goal p50 100 ms")
    latency.set(
        xscale="log",
        xlabel="subscribed pods",
        ylabel="edit -> every pod's file (ms)",
        title="Propagation",
    )
    latency.legend(fontsize=8)
    pods, cpu = series(curve, "ours", "operator_cpu_ms_per_edit")
    _, requests = series(curve, "ours", "operator_requests_per_edit")
    _, reads = series(curve, "ours", "sidecar_requests_per_edit")
    cost.plot(pods, cpu, "o-", color="tab:red", label="operator CPU ms/edit")
    for kind, style, label in (("ours", "-", "ours"), ("watch", "--", "watch-based")):
        x, sidecars = series(curve, kind, "pods_cpu_ms_per_edit")
        _, control = series(curve, kind, "control_plane_cpu_ms_per_edit")
        cost.plot(
            x, sidecars, "d" + style, color="tab:green", label=f"{label}: sidecars' CPU ms/edit"
        )
        cost.plot(x, control, "x" + style, color="tab:brown", label=f"{label}: control plane CPU")
    cost.set(
        xscale="log", xlabel="subscribed pods", ylabel="CPU ms per edit", title="Cost per edit"
    )
    api = cost.twinx()
    api.plot(pods, requests, "^-", color="tab:purple", label="operator API requests/edit")
    api.plot(pods, reads, "v-", color="tab:orange", label="sidecars' API requests/edit")
    api.set_ylabel("API requests per edit")
    lines = cost.get_lines() + api.get_lines()
    cost.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper left")
    fig.suptitle(
        f"prompt-operator {data['mode']} bench: {machine['cores']} cores, "
        f"load {machine['loadavg_at_start'][0]:.2f} at start",
        fontsize=10,
    )
    out = results.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(path: str = "bench/results/latest.json") -> None:
    print(f"wrote {plot(Path(path))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
