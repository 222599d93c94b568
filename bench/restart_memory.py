"""P5-restart: the operator's resident memory while it restarts with many Prompts.

`python -m bench.restart_memory [--prompts N]` starts its own local cluster,
creates N Prompts (default 10,000) of about 2 KiB text each, waits until the
operator has made every one Ready, and restarts the operator. From the moment
the new process exists until an edit made after the restart is handled and the
API server's audit log is quiet again, it reads the operator's VmRSS from /proc
every 0.1 s. It prints the peak (sampled, and the kernel's own high-water mark
VmHWM, which a sample can miss by a little), the RSS after the restart, a
timeline, and the restart's P4 figures (edit handled, writes on restart).

Benchmarks print and never fail on speed or size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import (
    OperatorProcess,
    audit_events,
    kubectl,
    wait_for,
)
from prompt_contract import objects

from . import common
from .common import sha, start_operator

NS = "bench"
PROMPTS = f"/apis/prompts.dev/v1alpha1/namespaces/{NS}/prompts"
OPERATOR_USER = "system:serviceaccount:prompt-system:prompt-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "apply"}
GOAL_MIB = 150


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of ``pid``; None once the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in KiB; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    values = {
        line.split(":")[0]: int(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    if "VmRSS" not in values:  # a zombie has no memory lines
        return None
    return values["VmRSS"], values["VmHWM"]


@dataclass
class RssSampler:
    """Reads a process's VmRSS from /proc every ``interval`` seconds, on a thread.

    ``process`` is asked for the current process on every sample, so a sampler
    started before a restart follows the new process from its first sample on."""

    process: Callable[[], subprocess.Popen[bytes] | None]
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, KiB)
    hwm_kib: int = 0
    cpu_s: float = 0.0  # the process's CPU time at the last sample
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss sampler")
        self._thread.start()
        return self

    def stop(self) -> RssSampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            proc = self.process()
            read = status_kib(proc.pid) if proc is not None else None
            cpu = cpu_seconds(proc.pid) if proc is not None else None
            if read is not None and cpu is not None:
                self.samples.append((time.monotonic() - self._t0, read[0]))
                self.hwm_kib = max(self.hwm_kib, read[1])
                self.cpu_s = cpu
            self._stop.wait(self.interval)

    @property
    def peak_kib(self) -> int:
        return max((kib for _, kib in self.samples), default=0)

    @property
    def last_kib(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def timeline(self, step: float = 5.0) -> list[tuple[float, int]]:
        """The highest sample in each ``step`` seconds: (start of the step, KiB)."""
        buckets: dict[int, int] = {}
        for at, kib in self.samples:
            slot = int(at // step)
            buckets[slot] = max(buckets.get(slot, 0), kib)
        return [(slot * step, kib) for slot, kib in sorted(buckets.items())]


def settle(log: Path) -> int:
    """A quiet audit log: after a restart with 10,000 Prompts that may take two minutes."""
    return common.settle(log, timeout=120)


def operator_writes(log: Path, since: int) -> int:
    return sum(
        1
        for event in audit_events(log, since)
        if event.get("user", {}).get("username") == OPERATOR_USER
        and event.get("verb") in WRITE_VERBS
    )


def ready_count(kubeconfig: Path) -> int:
    """Prompts with Ready=True, from the server-side table (no object bodies)."""
    out = kubectl(
        kubeconfig, "-n", NS, "get", "prompts", "--no-headers", "--chunk-size=1000", timeout=300
    ).stdout
    return sum(1 for line in out.splitlines() if line.split()[1:2] == ["True"])


def create_prompts(api: Api, kubeconfig: Path, count: int, start: int = 0) -> float:
    """Create Prompts ``p{start}`` .. ``p{count-1}`` (2 KiB each) and wait until all are
    Ready; the seconds it took."""
    t0 = time.monotonic()
    for i in range(start, count):
        api.create_prompt(NS, f"p{i}", f"prompt {i} " + "z" * 2000)
    wait_for(
        lambda: ready_count(kubeconfig) >= count,
        timeout=max(600, count * 0.5),
        interval=3,
        message=f"{count} Prompts Ready",
    )
    return time.monotonic() - t0


@dataclass(frozen=True)
class Restart:
    peak_kib: int  # highest sample
    hwm_kib: int  # the kernel's high-water mark of the new process
    after_kib: int  # the last sample, once everything settled
    handled_s: float  # restart -> the edit after it handled
    cpu_s: float  # the operator's CPU seconds until the edit was handled
    writes: int  # the operator's writes on restart, less the edit's own
    sampler: RssSampler


def restart(
    operator: OperatorProcess, api: Api, audit: Path, *, after: float = 10.0, name: str = "p0"
) -> Restart:
    """Restart the operator, edit Prompt ``name`` at once, wait until that edit is
    handled and the API server is quiet, then go on sampling for ``after`` seconds."""
    operator.stop()
    mark = settle(audit)
    sampler = RssSampler(lambda: operator.proc).start()
    t = time.monotonic()
    operator.start(timeout=300)
    before = api.request("GET", f"{PROMPTS}/{name}")["status"]["revision"]
    text = f"after restart {time.time()}"
    api.edit_prompt(NS, name, text)

    def handled() -> bool:
        revision = api.request("GET", f"{PROMPTS}/{name}")["status"]["revision"]
        if revision == before:
            return False
        cm = api.request(
            "GET", f"/api/v1/namespaces/{NS}/configmaps/{objects.configmap_name(name, revision)}"
        )
        return sha(cm["data"]["prompt"]) == sha(text)

    wait_for(handled, timeout=300, interval=0.1, message="the edit after the restart")
    handled_s = time.monotonic() - t
    cpu_s = sampler.cpu_s
    settle(audit)
    writes = operator_writes(audit, mark)
    time.sleep(after)  # the sampler's thread reads on; this is the "after" window
    sampler.stop()
    return Restart(
        peak_kib=sampler.peak_kib,
        hwm_kib=sampler.hwm_kib,
        after_kib=sampler.last_kib,
        handled_s=handled_s,
        cpu_s=cpu_s,
        writes=max(0, writes - 2),  # the edit's ConfigMap and its status
        sampler=sampler,
    )


def report(result: Restart, prompts: int) -> None:
    mib = 1024.0
    print(f"P5-restart with {prompts} Prompts (goal <= {GOAL_MIB} MiB peak and after):")
    print(f"  peak RSS (sampled every 0.1 s)   {result.peak_kib / mib:8.1f} MiB")
    print(f"  peak RSS (VmHWM)                 {result.hwm_kib / mib:8.1f} MiB")
    print(f"  RSS after restart                {result.after_kib / mib:8.1f} MiB")
    print(f"  P4 restart -> new edit handled   {result.handled_s:8.1f} s   (goal <= 30)")
    print(f"  operator CPU until then          {result.cpu_s:8.1f} s")
    print(f"  P4 writes on restart             {result.writes:8d}     (goal 0)")
    print(
        "  timeline (highest RSS per 5 s): "
        + ", ".join(f"{at:.0f}s {kib / mib:.0f}" for at, kib in result.sampler.timeline())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restart_memory")
    parser.add_argument("--prompts", type=int, default=10000, help="how many Prompts (10000)")
    parser.add_argument(
        "--restarts", type=int, default=1, help="measure this many restarts in a row (1)"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prompt-restart-memory-"))
    load = os.getloadavg()
    print(
        f"restart memory: {os.cpu_count()} cores, load {load[0]:.2f}; work dir {work}", flush=True
    )
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    kc = state.kubeconfig
    operator: OperatorProcess | None = None
    try:
        operator = start_operator(kc, work)
        kubectl(kc, "create", "namespace", NS)
        api = Api(kc)
        took = create_prompts(api, kc, args.prompts)
        print(f"  {args.prompts} Prompts created and Ready in {took:.0f} s", flush=True)
        for n in range(args.restarts):
            # A Prompt of its own per restart: its history never reaches the limit,
            # whose pruning would add a write that is not the restart's.
            result = restart(operator, api, state.audit_log, name=f"p{n % args.prompts}")
            report(result, args.prompts)
    finally:
        if operator is not None:
            operator.stop()
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
