"""Run every benchmark scenario against a fresh local cluster and print the figures.

`python -m bench [--quick]`; writes bench/results/latest.json (one object per
figure: name, value, unit, params, goal) plus the machine's cores and load.
Figures are measured from outside our code: the clock starts when the API
server has accepted an edit (the API call returned) and stops when a separate
reader process sees the new bytes in a pod's file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.restart_memory import RssSampler
from prompt_client import wire
from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    audit_line_count,
    kubectl,
    service_account_kubeconfig,
    sidecar_role,
    start_process,
    stop_process,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
NS = "bench"
OPERATOR_USER = "system:serviceaccount:prompt-system:prompt-operator"
SIDECAR_USER = f"system:serviceaccount:{NS}:prompt-sidecar"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "apply"}
READ_VERBS = {"get", "list", "watch"}


@dataclass
class Figures:
    quick: bool
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, goal: str, **params: Any) -> None:
        params["mode"] = "quick" if self.quick else "full"
        self.items.append(
            {"name": name, "value": round(value, 3), "unit": unit, "params": params, "goal": goal}
        )
        print(f"  {name:<44} {value:>10.3f} {unit:<9} goal {goal}", flush=True)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rss_kib(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    return values["VmRSS"], values["VmHWM"]


def audit_counts(log: Path, since: int, user: str, verbs: set[str]) -> int:
    count = 0
    with open(log, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number < since:
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") == user and event.get("verb") in verbs:
                count += 1
    return count


def settle(log: Path) -> int:
    last = [-1]

    def stable() -> int | None:
        now = audit_line_count(log)
        if now == last[0]:
            return now or 1
        last[0] = now
        return None

    return wait_for(stable, timeout=30, interval=0.5)


class Reader:
    """The separate reader process and the events it reports."""

    def __init__(self, dirs: list[Path]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.reader", *map(str, dirs)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        self.seen: dict[tuple[int, str, str], float] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at, index, name, digest = line.split()
            with self.lock:
                self.seen.setdefault((int(index), name, digest), float(at))

    def when(self, index: int, name: str, digest: str) -> float | None:
        with self.lock:
            return self.seen.get((index, name, digest))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


PROMPTS = f"/apis/prompts.dev/v1alpha1/namespaces/{NS}/prompts"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    args = parser.parse_args(argv)
    quick = args.quick
    prompts, pods, edits = (100, 5, 40) if quick else (1000, 50, 200)
    restart_prompts = 1000 if quick else 10000
    baseline_pods = 3 if quick else 5
    figures = Figures(quick)
    work = Path(tempfile.mkdtemp(prefix="prompt-bench-"))
    load = os.getloadavg()
    print(
        f"prompt-operator benchmarks ({'quick' if quick else 'full'}): {os.cpu_count()} cores, "
        f"load {load[0]:.2f}; work dir {work}",
        flush=True,
    )
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    kc = state.kubeconfig
    procs: list[Any] = []
    try:
        kubectl(kc, "apply", "--server-side", "-f", str(REPO / "crds"))
        kubectl(kc, "wait", "--for=condition=Established", "crd/prompts.prompts.dev")
        kubectl(kc, "create", "namespace", NS)
        api = Api(kc)
        op_kc = service_account_kubeconfig(
            kc,
            "prompt-system",
            "prompt-operator",
            work / "operator.kc",
            cluster_role="cluster-admin",
        )
        # Delivery counts refresh every 2 s here (10 s by default), so the rollout's
        # count updates are over before P2 starts counting.
        operator = OperatorProcess(op_kc, work / "operator.log", "--delivery-refresh=2")
        operator.start()
        procs.append(operator)
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
        sidecars = []
        for i in range(pods):
            sidecar = SidecarProcess(kc, sc_kc, NS, f"app-{i}", work)
            sidecars.append(sidecar)
        t0 = time.monotonic()
        for sidecar in sidecars:
            sidecar.start(wait_ready=False)
            procs.append(sidecar)
        wait_for(lambda: all(s.ready() for s in sidecars), timeout=300, interval=0.2)
        files_s = time.monotonic() - t0
        figures.add(
            "P3 cold convergence (create -> all Ready)",
            prompts / ready_s,
            "prompts/s",
            ">= 100",
            prompts=prompts,
            seconds=round(ready_s, 2),
            client_seconds=round(client_time, 2),
        )
        figures.add(
            "P3 pods' first sync (start -> ready)",
            files_s,
            "s",
            "n/a",
            pods=pods,
            files_per_pod=prompts,
        )

        # -- baseline: watch-based sidecars ----------------------------------------------
        base_dirs = []
        for i in range(baseline_pods):
            d = work / f"baseline-{i}"
            d.mkdir()
            base_dirs.append(d)
            procs.append(
                start_process(
                    [sys.executable, "-m", "bench.baseline", str(kc), NS, str(d)],
                    log=work / f"baseline-{i}.log",
                )
            )
        wait_for(
            lambda: all(len(list(d.glob("*.txt"))) == prompts for d in base_dirs),
            timeout=120,
            interval=0.2,
            message="baseline sidecars synced",
        )

        # -- P1, P2, P6: propagation of edits -------------------------------------------
        reader = Reader([s.dir for s in sidecars] + base_dirs)
        procs.append(reader)  # stopped by the finally below should anything fail
        audit = state.audit_log
        # The pods' rollout made every Prompt's delivery count move; the operator
        # rewrites those at a bounded rate. Let that finish, so P2 counts only
        # what the edits cost.
        quiet_since = settle(audit)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(5)  # longer than the refresh interval
            now = settle(audit)
            if audit_counts(audit, quiet_since, OPERATOR_USER, WRITE_VERBS) == 0:
                break
            quiet_since = now
        mark = settle(audit)
        latencies, base_latencies, per_pod, call_times = [], [], [], []
        names = list(texts)
        for n in range(edits):
            name = names[(n * 7919) % len(names)]
            text = f"prompt {name} edit {n} " + "y" * 2000
            t = time.time()
            api.edit_prompt(NS, name, text)
            accepted = time.time()
            call_times.append(accepted - t)
            digest = sha(text)
            ours = [(i, f"{name}.txt") for i in range(pods)]
            theirs = [(pods + i, f"prompt-{name}.txt") for i in range(baseline_pods)]
            wait_for(
                lambda ours=ours, theirs=theirs, digest=digest: all(
                    reader.when(i, f, digest) for i, f in ours + theirs
                ),
                timeout=30,
                interval=0.002,
                message=f"edit {n} everywhere",
            )
            seen = [reader.when(i, f, digest) - accepted for i, f in ours]  # type: ignore[operator]
            per_pod += seen
            latencies.append(max(seen))
            base_latencies.append(
                max(
                    reader.when(i, f, digest) - accepted  # type: ignore[operator]
                    for i, f in theirs
                )
            )
            time.sleep(0.05)  # 20 edits/s: measure latency, not a queue
        reader.stop()
        ms = [x * 1000 for x in latencies]
        bms = [x * 1000 for x in base_latencies]
        common = dict(prompts=prompts, pods=pods, edits=edits)
        figures.add(
            "P1 propagation p50 (apply -> every pod's file)",
            statistics.median(ms),
            "ms",
            "<= 100",
            **common,
        )
        figures.add("P1 propagation p99", percentile(ms, 0.99), "ms", "<= 300", **common)
        figures.add("P1 propagation max", max(ms), "ms", "n/a", **common)
        figures.add(
            "P1 per-pod file latency p50", statistics.median(per_pod) * 1000, "ms", "n/a", **common
        )
        figures.add(
            "client overhead per edit (API call)",
            statistics.median(call_times) * 1000,
            "ms",
            "n/a",
            edits=edits,
        )
        figures.add(
            "baseline watch sidecar p50 (same edits)",
            statistics.median(bms),
            "ms",
            "n/a",
            pods=baseline_pods,
        )
        figures.add(
            "ratio ours/baseline p50",
            statistics.median(ms) / statistics.median(bms),
            "x",
            "n/a",
            note="ours waits for every pod; ratio of p50s",
        )
        settle(audit)
        writes = audit_counts(audit, mark, OPERATOR_USER, WRITE_VERBS)
        reads = audit_counts(audit, mark, SIDECAR_USER, READ_VERBS)
        figures.add(
            "P2 API writes per edit (operator)",
            writes / edits,
            "writes",
            "<= 2",
            edits=edits,
            writes=writes,
        )
        figures.add(
            "P6 API reads per edit per pod (sidecars)",
            reads / (edits * pods),
            "reads",
            "<= 1",
            edits=edits,
            pods=pods,
            reads=reads,
        )

        # -- P5: memory ----------------------------------------------------------------
        rss, hwm = rss_kib(operator.proc.pid)  # type: ignore[union-attr]
        figures.add(
            "P5 operator RSS (steady)",
            rss / 1024,
            "MiB",
            "<= 150",
            prompts=prompts,
            prompt_kib=2,
            peak_mib=round(hwm / 1024, 1),
        )
        srss = [rss_kib(s.proc.pid)[0] for s in sidecars]  # type: ignore[union-attr]
        figures.add(
            "P5 sidecar RSS (median)", statistics.median(srss) / 1024, "MiB", "<= 30", files=prompts
        )
        brss = [rss_kib(p.pid)[0] for p in procs if isinstance(p, subprocess.Popen)]
        figures.add(
            "baseline watch sidecar RSS (median)",
            statistics.median(brss) / 1024,
            "MiB",
            "n/a",
            files=prompts,
        )
        for s in sidecars:
            s.stop()
        for p in procs:
            if isinstance(p, subprocess.Popen):
                stop_process(p)

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
        sampler = RssSampler(lambda: operator.proc).start()
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
                "GET", f"/api/v1/namespaces/{NS}/configmaps/{wire.configmap_name('p0', revision)}"
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
        rss, hwm = rss_kib(operator.proc.pid)  # type: ignore[union-attr]
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
    finally:
        for p in procs:
            if isinstance(p, subprocess.Popen):
                stop_process(p)
            else:
                p.stop()
        cluster.down()
    result = {
        "machine": {"cores": os.cpu_count(), "loadavg_at_start": load},
        "mode": "quick" if quick else "full",
        "figures": figures.items,
    }
    out = REPO / "bench" / "results" / ("latest-quick.json" if quick else "latest.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
