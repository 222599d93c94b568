"""Print bench/results/latest.json as the Markdown table the README shows."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str = "bench/results/latest.json") -> None:
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


if __name__ == "__main__":
    main(*sys.argv[1:])
