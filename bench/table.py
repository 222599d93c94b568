"""Print bench/results/latest.json as the Markdown tables the README shows."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str = "bench/results/latest.json") -> None:
    from bench import trace
    from bench.run import curve_table

    data = json.loads(Path(path).read_text())
    machine = data["machine"]
    print(
        f"Latest {data['mode']} run: {machine['cores']} cores, load "
        f"{machine['loadavg_at_start'][0]:.2f} at start.\n"
    )
    print("| figure | value | goal | sizes |")
    print("|---|---|---|---|")
    for fig in data["figures"]:
        params = ", ".join(f"{k}={v}" for k, v in fig["params"].items() if k != "mode")
        print(f"| {fig['name']} | {fig['value']:g} {fig['unit']} | {fig['goal']} | {params} |")
    if data.get("curve"):
        print("\nThe cost curve (ours and the watch-based sidecar, one step at a time):\n")
        print(curve_table(data["curve"]))
    if data.get("hops_ms"):
        print("\nWhere an edit's time goes (each process's own stamps):\n")
        print(trace.table(data["hops_ms"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
