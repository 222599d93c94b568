"""P1 and the cost curve: how long an edit takes to reach every pod's file, and
what it costs, at several pod counts, for our sidecars and for the watch-based
baseline on the same machine in the same run.

Each step adds pods (the ones already there keep running), waits until the
operator is quiet, then sends the same kind of edits one at a time: the clock
starts when the API call returned and stops when a separate reader process
sees the new bytes in the file of every pod. The processes stamp every hop in
between (``--trace-file``), so each step also says where the time went.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_cluster.api import Api
from prompt_cluster.testing import (
    SidecarProcess,
    start_process,
    stop_process,
    wait_for,
)
from prompt_contract import hops

from . import trace
from .common import sha

REPO = Path(__file__).resolve().parent.parent
# Edits go out at most this often: the figure is latency, not a queue.
EDIT_GAP = 0.05


class Reader:
    """The separate reader process (bench.reader) and the events it reports."""

    def __init__(self, dirs: Sequence[Path]) -> None:
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


@dataclass
class Pods:
    """One kind of pod at a growing count: our sidecars or watch-based ones."""

    kind: str  # "ours" or "watch"
    dirs: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # as stamped in the trace
    procs: list[Any] = field(default_factory=list)
    file_of: Callable[[str], str] = lambda prompt: f"{prompt}.txt"

    def pids(self) -> list[int]:
        return [p.pid if isinstance(p, subprocess.Popen) else p.proc.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if isinstance(proc, subprocess.Popen):
                stop_process(proc)
            else:
                proc.stop()
        self.procs = []


def grow_ours(
    pods: Pods, count: int, admin_kc: Path, sidecar_kc: Path, namespace: str, work: Path
) -> float:
    """Start sidecars until there are ``count``; seconds until the new ones were ready."""
    new = []
    for i in range(len(pods.procs), count):
        sidecar = SidecarProcess(admin_kc, sidecar_kc, namespace, f"app-{i}", work)
        new.append(sidecar)
    started = time.monotonic()
    for sidecar in new:
        sidecar.start(wait_ready=False)
        pods.procs.append(sidecar)
        pods.dirs.append(sidecar.dir)
        pods.names.append(sidecar.name)
    wait_for(lambda: all(s.ready() for s in new), timeout=600, interval=0.2)
    return time.monotonic() - started


def grow_watchers(pods: Pods, count: int, kubeconfig: Path, namespace: str, work: Path) -> None:
    """Start watch-based sidecars until there are ``count``, and wait for their files."""
    new = []
    for i in range(len(pods.procs), count):
        d = work / f"watch-{i}"
        d.mkdir()
        name = f"watch-{i}"
        pods.procs.append(
            start_process(
                [sys.executable, "-m", "bench.baseline", str(kubeconfig), namespace, str(d), name],
                log=work / f"{name}.log",
            )
        )
        pods.dirs.append(d)
        pods.names.append(name)
        new.append(d)
    expected = len(list(pods.dirs[0].glob("*.txt"))) if len(pods.dirs) > len(new) else None

    def synced() -> bool:
        counts = [len(list(d.glob("*.txt"))) for d in new]
        return min(counts) > 0 and (expected is None or min(counts) >= expected)

    wait_for(synced, timeout=300, interval=0.2, message="watch-based sidecars synced")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    kind: str
    pods: int
    edits: int
    latencies_ms: list[float]  # per edit: until every pod had it
    per_pod_ms: list[float]
    hop_ms: dict[str, float]
    cpu_per_edit: float = 0.0  # the operator's
    pods_cpu_per_edit: float = 0.0  # all the pods' sidecars together
    control_plane_cpu_per_edit: float = 0.0  # kube-apiserver, etcd, controller-manager
    operator_requests: int = 0
    operator_writes: int = 0
    sidecar_requests: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_edits(
    api: Api,
    namespace: str,
    pods: Pods,
    names: Sequence[str],
    edits: int,
    trace_file: Path,
    tag: str,
) -> Step:
    """Edit ``edits`` Prompts one at a time; each is done when every pod's file has it."""
    reader = Reader(pods.dirs)
    records: list[trace.Edit] = []
    latencies: list[float] = []
    per_pod: list[float] = []
    try:
        for n in range(edits):
            name = names[(n * 7919) % len(names)]
            text = f"prompt {name} {tag} edit {n} " + "y" * 2000
            api.edit_prompt(namespace, name, text)
            accepted = time.time()
            digest = sha(text)
            wanted = [(i, pods.file_of(name)) for i in range(len(pods.dirs))]
            wait_for(
                lambda wanted=wanted, digest=digest: all(
                    reader.when(i, f, digest) for i, f in wanted
                ),
                timeout=30,
                interval=0.002,
                message=f"{pods.kind} edit {n} in every pod",
            )
            seen = {pods.names[i]: reader.when(i, f, digest) or 0.0 for i, f in wanted}
            records.append(trace.Edit(f"{namespace}/{name}", accepted, seen))
            delays = [(at - accepted) * 1000 for at in seen.values()]
            per_pod += delays
            latencies.append(max(delays))
            time.sleep(EDIT_GAP)
    finally:
        reader.stop()
    chains = trace.chains(records, trace.load(trace_file))
    if pods.kind == "watch":
        # The watch event leaves the API server when the ConfigMap is stored, a
        # moment before the operator has its write's answer: "applied" is not a
        # step on this path, so its watch events are timed from "seen".
        chains = [{h: at for h, at in chain.items() if h != hops.APPLIED} for chain in chains]
    return Step(pods.kind, len(pods.dirs), edits, latencies, per_pod, trace.hop_medians(chains))
