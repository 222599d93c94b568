"""The bench's join of hop stamps into per-pod chains and per-hop medians."""

from __future__ import annotations

import json
from pathlib import Path

from bench import trace
from prompt_contract import hops


def stamp(hop: str, at: float, prompt: str = "ns/a", pod: str = "") -> trace.Stamp:
    return trace.Stamp(hop, at, prompt, pod)


def test_a_chain_per_pod_with_the_shared_operator_hops() -> None:
    edit = trace.Edit("ns/a", accepted=10.0, read={"app-0": 10.030, "app-1": 10.040})
    stamps = [
        stamp(hops.SEEN, 10.002),
        stamp(hops.APPLIED, 10.010),
        stamp(hops.SIGNALLED, 10.011, pod="app-0"),
        stamp(hops.SIGNALLED, 10.012, pod="app-1"),
        stamp(hops.RECEIVED, 10.013, pod="app-0"),
        stamp(hops.RENAMED, 10.025, pod="app-0"),
        stamp(hops.SEEN, 10.020, prompt="ns/other"),  # another Prompt: not this edit's
    ]
    chains = trace.chains([edit], stamps)
    assert len(chains) == 2
    first = chains[0]
    assert first[hops.SEEN] == 10.002 and first[hops.SIGNALLED] == 10.011
    assert first[hops.READ] == 10.030
    assert chains[1][hops.SIGNALLED] == 10.012 and hops.RECEIVED not in chains[1]


def test_stamps_belong_to_the_edit_they_fall_in() -> None:
    edits = [
        trace.Edit("ns/a", accepted=10.0, read={"p": 10.05}),
        trace.Edit("ns/a", accepted=20.0, read={"p": 20.05}),
    ]
    stamps = [stamp(hops.SEEN, 10.001), stamp(hops.SEEN, 10.5), stamp(hops.SEEN, 20.003)]
    chains = trace.chains(edits, stamps)
    assert chains[0][hops.SEEN] == 10.001  # the first of its window
    assert chains[1][hops.SEEN] == 20.003


def test_medians_measure_each_hop_from_the_previous_one_present() -> None:
    chains = [
        {hops.ACCEPTED: 0.0, hops.SEEN: 0.002, hops.RENAMED: 0.010, hops.READ: 0.012},
        {hops.ACCEPTED: 0.0, hops.SEEN: 0.004, hops.RENAMED: 0.010, hops.READ: 0.016},
    ]
    medians = trace.hop_medians(chains)
    assert round(medians[hops.SEEN], 3) == 3.0
    assert round(medians[hops.RENAMED], 3) == 7.0  # from seen: applied is missing
    assert round(medians[trace.TOTAL], 3) == 14.0
    table = trace.table({"ours, 1 pods": medians})
    assert "| seen | 3.0 |" in table and "| total (accepted -> read) | 14.0 |" in table


def test_load_skips_a_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "hops.jsonl"
    good = {"hop": "seen", "at": 1.5, "prompt": "ns/a", "revision": "", "pod": ""}
    path.write_text(json.dumps(good) + "\n" + '{"hop": "rena')
    assert trace.load(path) == [trace.Stamp("seen", 1.5, "ns/a", "")]
