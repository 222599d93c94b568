"""Run every benchmark scenario against a fresh local cluster and print the figures.

`python -m bench [--quick]`; writes bench/results/latest.json (one object per
figure: name, value, unit, params, goal; the cost curve per pod count; the
median time of every hop of an edit) plus the machine's cores and load.
Figures are measured from outside our code: the clock starts when the API
server has accepted an edit (the API call returned) and stops when a separate
reader process sees the new bytes in a pod's file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import (
    OperatorProcess,
    kubectl,
    sidecar_role,
    wait_for,
)
from prompt_contract import objects

from . import propagation, snippet, soak, steady, trace
from .common import (
    OPERATOR_USER,
    REPO,
    WRITE_VERBS,
    Figures,
    audit_counts,
    rss_kib,
    settle,
    sha,
    start_operator,
)
from .restart_memory import RssSampler

NS = "bench"
SIDECAR_USER = f"system:serviceaccount:{NS}:prompt-sidecar"
# Goals for ours against the watch-based sidecar at the same pod count (ratio of p50s).
RATIO_GOALS = {5: "<= 1", 50: "<= 1", 100: "<= 1"}


def operator_quiet(audit: Path) -> None:
    """New pods move every Prompt's delivery count, which the operator rewrites at
    a bounded rate: wait until it has, so an edit's cost is only the edit's."""
    quiet_since = settle(audit)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(5)  # longer than the refresh interval
        now = settle(audit)
        if audit_counts(audit, quiet_since, OPERATOR_USER, WRITE_VERBS) == 0:
            return
        quiet_since = now


def curve_table(curve: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| sidecar | pods | edits | p50 ms | p99 ms | CPU ms/edit: operator | pods "
        "| control plane | operator requests/edit | sidecar requests/edit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in curve:
        lines.append(
            f"| {row['kind']} | {row['pods']} | {row['edits']} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['operator_cpu_ms_per_edit']:.1f} "
            f"| {row['pods_cpu_ms_per_edit']:.1f} | {row['control_plane_cpu_ms_per_edit']:.1f} "
            f"| {row['operator_requests_per_edit']:g} | {row['sidecar_requests_per_edit']:g} |"
        )
    return "\n".join(lines)


def pid_of(process: Any) -> int:
    """The pid of a running OperatorProcess or SidecarProcess."""
    assert process.proc is not None, "not running"
    return int(process.proc.pid)


PROMPTS = f"/apis/prompts.dev/v1alpha1/namespaces/{NS}/prompts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 5 minutes")
    args = parser.parse_args(argv)
    quick = args.quick
    prompts = 100 if quick else 1000
    counts = [1, 5] if quick else [1, 5, 10, 50, 100]
    headline = counts[-1] if quick else 50

    def edits_at(count: int) -> int:
        if quick:
            return 30
        return 200 if count in (5, headline) else 100  # the headline steps get more edits

    restart_prompts = 1000 if quick else 10000
    figures = Figures(quick)
    work = Path(tempfile.mkdtemp(prefix="prompt-bench-"))
    load = os.getloadavg()
    print(
        f"prompt-operator benchmarks ({'quick' if quick else 'full'}): {os.cpu_count()} cores, "
        f"load {load[0]:.2f}; work dir {work}",
        flush=True,
    )
    # Every process of ours (and the watch-based sidecars) stamps the hops of
    # each edit into one file: see prompt_contract.hops and bench/trace.py.
    trace_file = work / "hops.jsonl"
    os.environ["PROMPT_TRACE_FILE"] = os.environ["PROMPT_OPERATOR_TRACE_FILE"] = str(trace_file)
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    kc = state.kubeconfig
    operator: OperatorProcess | None = None
    pod_sets: list[propagation.Pods] = []
    try:
        # Delivery counts refresh every 2 s here (10 s by default), so the rollout's
        # count updates are over before P2 starts counting.
        operator = start_operator(kc, work, "--delivery-refresh=2")
        kubectl(kc, "create", "namespace", NS)
        api = Api(kc)
        sc_kc = sidecar_role(kc, NS, work / "sidecar.kc")

        # The operator has started (its boot is P4's business): one Prompt through.
        api.create_prompt(NS, "warm-up", "warm up")
        wait_for(
            lambda: any(
                p["metadata"]["name"] == "warm-up" and p.get("status", {}).get("revision")
                for p in api.prompts(NS)
            ),
            timeout=60,
            interval=0.05,
        )
        api.request("DELETE", f"/apis/prompts.dev/v1alpha1/namespaces/{NS}/prompts/warm-up")

        # -- P3: cold convergence ------------------------------------------------------
        texts = {f"p{i}": f"prompt {i} v0 " + "x" * 2000 for i in range(prompts)}
        started = time.monotonic()
        client_time = 0.0
        for name, text in texts.items():
            t = time.monotonic()
            api.create_prompt(NS, name, text)
            client_time += time.monotonic() - t

        def all_ready() -> bool:
            return (
                sum(
                    1
                    for p in api.prompts(NS)
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (p.get("status") or {}).get("conditions", [])
                    )
                )
                == prompts
            )

        wait_for(all_ready, timeout=600, interval=0.1, message="all Prompts Ready")
        ready_s = time.monotonic() - started
        figures.add(
            "P3 cold convergence (create -> all Ready)",
            prompts / ready_s,
            "prompts/s",
            ">= 100",
            prompts=prompts,
            seconds=round(ready_s, 2),
            client_seconds=round(client_time, 2),
        )
        names = list(texts)
        audit = state.audit_log

        def cpu_now(pods: propagation.Pods) -> tuple[float, float, float]:
            """CPU seconds so far of the operator, the pods and the control plane."""
            return (
                propagation.cpu_seconds(pid_of(operator)),
                sum(map(propagation.cpu_seconds, pods.pids())),
                sum(map(propagation.cpu_seconds, state.pids.values())),
            )

        def cpu_spent(
            step: propagation.Step, before: Sequence[float], after: Sequence[float]
        ) -> None:
            spent = [(b - a) / step.edits for a, b in zip(before, after, strict=True)]
            step.cpu_per_edit, step.pods_cpu_per_edit, step.control_plane_cpu_per_edit = spent

        # -- the watch-based baseline at every pod count -----------------------------------
        watchers = propagation.Pods("watch", file_of=lambda prompt: f"prompt-{prompt}.txt")
        pod_sets.append(watchers)
        watch_steps: dict[int, propagation.Step] = {}
        for count in counts:
            propagation.grow_watchers(watchers, count, kc, NS, work)
            operator_quiet(audit)
            cpu = cpu_now(watchers)
            step = propagation.run_edits(
                api, NS, watchers, names, edits_at(count), trace_file, f"w{count}"
            )
            cpu_spent(step, cpu, cpu_now(watchers))
            watch_steps[count] = step
            print(f"    watch-based, {count} pods: p50 {step.p50:.1f} ms, p99 {step.p99:.1f} ms")
        watch_rss = statistics.median(rss_kib(p.pid)[0] for p in watchers.procs) / 1024
        watchers.stop()

        # -- ours at every pod count: P1, P2, P6, the cost curve and the trace --------------
        ours = propagation.Pods("ours")
        pod_sets.append(ours)
        our_steps: dict[int, propagation.Step] = {}
        for count in counts:
            before = len(ours.procs)
            started_s = propagation.grow_ours(ours, count, kc, sc_kc, NS, work)
            if count == headline:
                figures.add(
                    "P3 pods' first sync (start -> ready)",
                    started_s,
                    "s",
                    "n/a",
                    pods=count - before,
                    files_per_pod=prompts,
                )
            operator_quiet(audit)
            mark = settle(audit)
            cpu = cpu_now(ours)
            step = propagation.run_edits(
                api, NS, ours, names, edits_at(count), trace_file, f"o{count}"
            )
            cpu_spent(step, cpu, cpu_now(ours))
            settle(audit)
            step.operator_requests = audit_counts(audit, mark, OPERATOR_USER, None)
            step.operator_writes = audit_counts(audit, mark, OPERATOR_USER, WRITE_VERBS)
            step.sidecar_requests = audit_counts(audit, mark, SIDECAR_USER, None)
            our_steps[count] = step
            print(f"    ours, {count} pods: p50 {step.p50:.1f} ms, p99 {step.p99:.1f} ms")

        head = our_steps[headline]
        common = dict(prompts=prompts, pods=headline, edits=head.edits)
        figures.add(
            "P1 propagation p50 (apply -> every pod's file)", head.p50, "ms", "<= 100", **common
        )
        figures.add("P1 propagation p99", head.p99, "ms", "<= 300", **common)
        figures.add("P1 propagation max", max(head.latencies_ms), "ms", "n/a", **common)
        figures.add(
            "P1 per-pod file latency p50", statistics.median(head.per_pod_ms), "ms", "n/a", **common
        )
        for count in counts:
            mine, theirs = our_steps[count], watch_steps[count]
            figures.add(
                f"ours/watch-based p50 at {count} pods",
                mine.p50 / theirs.p50,
                "x",
                RATIO_GOALS.get(count, "n/a"),
                ours_ms=round(mine.p50, 1),
                watch_ms=round(theirs.p50, 1),
                edits=mine.edits,
            )
        if not quick:
            top = our_steps[counts[-1]]
            figures.add(
                f"P1 propagation p99 at {counts[-1]} pods",
                top.p99,
                "ms",
                "<= 300",
                pods=counts[-1],
                edits=top.edits,
            )
        figures.add(
            "P2 API writes per edit (operator)",
            head.operator_writes / head.edits,
            "writes",
            "<= 2",
            edits=head.edits,
            writes=head.operator_writes,
        )
        figures.add(
            "P6 API reads per edit per pod (sidecars)",
            head.sidecar_requests / (head.edits * headline),
            "reads",
            "0 when signed",
            edits=head.edits,
            pods=headline,
            reads=head.sidecar_requests,
        )
        curve = [
            {
                "kind": step.kind,
                "pods": step.pods,
                "edits": step.edits,
                "p50_ms": round(step.p50, 2),
                "p99_ms": round(step.p99, 2),
                "operator_cpu_ms_per_edit": round(step.cpu_per_edit * 1000, 2),
                "pods_cpu_ms_per_edit": round(step.pods_cpu_per_edit * 1000, 2),
                "control_plane_cpu_ms_per_edit": round(step.control_plane_cpu_per_edit * 1000, 2),
                "operator_requests_per_edit": round(step.operator_requests / step.edits, 2),
                "sidecar_requests_per_edit": round(step.sidecar_requests / step.edits, 2),
                "hops_ms": {hop: round(ms, 2) for hop, ms in step.hop_ms.items()},
            }
            for step in [*watch_steps.values(), *our_steps.values()]
        ]
        print(curve_table(curve))
        traced = {
            f"{kind}, {count} pods": steps[count].hop_ms
            for count in (counts[1], headline)
            for kind, steps in (("ours", our_steps), ("watch-based", watch_steps))
        }
        print(trace.table(traced), flush=True)
        steady.measure(api, audit, figures, OPERATOR_USER)
        snippet.measure(api, audit, figures, OPERATOR_USER)

        # -- P5: memory ----------------------------------------------------------------
        rss, hwm = rss_kib(pid_of(operator))
        figures.add(
            "P5 operator RSS (steady)",
            rss / 1024,
            "MiB",
            "<= 150",
            prompts=prompts,
            prompt_kib=2,
            peak_mib=round(hwm / 1024, 1),
        )
        srss = [rss_kib(pid_of(s))[0] for s in ours.procs]
        figures.add(
            "P5 sidecar RSS (median)", statistics.median(srss) / 1024, "MiB", "<= 30", files=prompts
        )
        figures.add("baseline watch sidecar RSS (median)", watch_rss, "MiB", "n/a", files=prompts)
        ours.stop()
        # The pods are gone, not just their sidecars: an operator restarting
        # among a hundred Pods whose sidecars never answer would time its
        # retries, not its restart.
        kubectl(kc, "delete", "pods", "--all", "-n", NS, "--force", "--grace-period=0")

        # -- P4: restart with many Prompts ------------------------------------------------
        for i in range(prompts, restart_prompts):
            api.create_prompt(NS, f"p{i}", f"prompt {i} " + "z" * 2000)
        wait_for(
            lambda: (
                sum(1 for p in api.prompts(NS) if p.get("status", {}).get("revision"))
                == restart_prompts
            ),
            timeout=1200,
            interval=1,
            message="restart set Ready",
        )
        operator.stop()
        mark = settle(audit)
        restarted = operator
        sampler = RssSampler(lambda: restarted.proc).start()
        t = time.monotonic()
        operator.start(timeout=300)
        before = api.request("GET", f"{PROMPTS}/p0")["status"]["revision"]
        api.edit_prompt(NS, "p0", "after restart")

        def handled_edit() -> bool:
            # One small GET per poll: listing 10,000 ConfigMaps here would load
            # the API server and the machine, and time the poll instead.
            revision = api.request("GET", f"{PROMPTS}/p0")["status"]["revision"]
            if revision == before:
                return False
            cm = api.request(
                "GET",
                f"/api/v1/namespaces/{NS}/configmaps/{objects.configmap_name('p0', revision)}",
            )
            return sha(cm["data"]["prompt"]) == sha("after restart")

        wait_for(handled_edit, timeout=300, interval=0.1)
        handled = time.monotonic() - t
        settle(audit)
        writes = audit_counts(audit, mark, OPERATOR_USER, WRITE_VERBS)
        figures.add(
            "P4 writes on restart (nothing changed)",
            max(0, writes - 2),
            "writes",
            "0",
            prompts=restart_prompts,
            note="minus the 2 writes of the one edit",
        )
        figures.add(
            "P4 restart -> new edit handled", handled, "s", "<= 30", prompts=restart_prompts
        )
        rss, hwm = rss_kib(pid_of(operator))
        sampler.stop()
        figures.add(
            "P5 operator RSS after restart",
            rss / 1024,
            "MiB",
            "<= 150",
            prompts=restart_prompts,
            peak_mib=round(sampler.peak_kib / 1024, 1),  # sampled every 0.1 s, as restart_memory
            hwm_mib=round(hwm / 1024, 1),
        )
        # -- soak: one sidecar's memory over many edits, last and in its own namespace --
        soak.add_figures(figures, soak.in_namespace(kc, work, **soak.sizes(quick)))
    finally:
        for pods in pod_sets:
            pods.stop()
        if operator is not None:
            operator.stop()
        cluster.down()
    result = {
        "machine": {"cores": os.cpu_count(), "loadavg_at_start": load},
        "mode": "quick" if quick else "full",
        "figures": figures.items,
        "curve": curve,
        "hops_ms": traced,
    }
    out = REPO / "bench" / "results" / ("latest-quick.json" if quick else "latest.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    try:
        from .plot import plot
    except ImportError:  # pragma: no cover - the bench extra is missing
        print("no plot: install the bench extra (pip install -e '.[bench]')")
    else:
        print(f"wrote {plot(out)}")
    return 0
