"""Join the processes' hop stamps (``prompt_contract.hops``) into per-edit chains
and a table of the median time each hop took.

An edit is one Prompt changed at ``accepted`` (the API call returned); the
bench waits for every pod to show it before the next edit, so the stamps for
that Prompt between this edit and the next belong to it. Per pod the chain is
accepted -> seen -> applied -> signalled -> received -> verified (a signed
revision) or fetched (a GET) -> renamed -> read; a watch-based sidecar's is
accepted -> seen -> applied -> received (its watch event) -> renamed -> read.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prompt_contract import hops

# The watch event can reach the operator a moment before the API call's answer
# reaches the bench; stamps that early still belong to the edit.
EARLY = 0.05
TOTAL = "total (accepted -> read)"


@dataclass(frozen=True)
class Stamp:
    hop: str
    at: float
    prompt: str
    pod: str


@dataclass
class Edit:
    prompt: str  # namespace/name
    accepted: float
    read: dict[str, float] = field(default_factory=dict)  # pod -> when the reader saw it


def load(path: Path) -> list[Stamp]:
    stamps: list[Stamp] = []
    if not path.exists():
        return stamps
    for line in path.read_text().splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # a line cut by a process killed mid-write
        stamps.append(Stamp(raw["hop"], raw["at"], raw["prompt"], raw.get("pod", "")))
    return stamps


def chains(edits: Sequence[Edit], stamps: Iterable[Stamp]) -> list[dict[str, float]]:
    """One chain per (edit, pod): hop -> the first stamp of it within the edit."""
    by_prompt: dict[str, list[Stamp]] = defaultdict(list)
    for stamp in stamps:
        by_prompt[stamp.prompt].append(stamp)
    for listed in by_prompt.values():
        listed.sort(key=lambda s: s.at)
    ends = [e.accepted for e in edits[1:]] + [float("inf")]
    result = []
    for edit, end in zip(edits, ends, strict=True):
        window = [s for s in by_prompt.get(edit.prompt, []) if edit.accepted - EARLY <= s.at < end]
        shared: dict[str, float] = {}
        per_pod: dict[str, dict[str, float]] = defaultdict(dict)
        for s in window:
            target = per_pod[s.pod] if s.pod else shared
            target.setdefault(s.hop, s.at)
        for pod, read in edit.read.items():
            chain = {hops.ACCEPTED: edit.accepted, **shared, **per_pod.get(pod, {})}
            chain[hops.READ] = read
            result.append(chain)
    return result


def hop_medians(found: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Median milliseconds from the previous hop present in each chain to each hop."""
    steps: dict[str, list[float]] = defaultdict(list)
    for chain in found:
        previous = None
        for hop in hops.HOPS:
            if hop not in chain:
                continue
            if previous is not None:
                steps[hop].append((chain[hop] - chain[previous]) * 1000)
            previous = hop
        if hops.READ in chain:
            steps[TOTAL].append((chain[hops.READ] - chain[hops.ACCEPTED]) * 1000)
    return {hop: statistics.median(steps[hop]) for hop in (*hops.HOPS, TOTAL) if steps.get(hop)}


def table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: one row per hop, one column per run (e.g. "ours, 5 pods")."""
    names = list(columns)
    lines = [
        "| hop (median ms since the previous one) | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for hop in (*hops.HOPS[1:], TOTAL):
        if not any(hop in columns[n] for n in names):
            continue
        cells = [f"{columns[n][hop]:.1f}" if hop in columns[n] else "" for n in names]
        lines.append(f"| {hop} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
