"""Soak: a sidecar's memory over many edits.

`python -m bench.soak [--edits 10000] [--files 1000] [--sidecars 1] [--batch 4]`
starts its own local cluster, the operator and ``--files`` Prompts of about
2 KiB, then ``soak()`` below: it starts ``--sidecars`` sidecars (each serving
every Prompt), and edits the Prompts round-robin, ``--batch`` distinct Prompts
at a time, sent concurrently; the next batch starts once every sidecar's file
holds every edit of this one, so the edits go through the whole path (operator,
signal, re-read, rename) as fast as it takes them, never into a queue. A batch
of at most 4 keeps the sidecar on its per-Prompt reads (5 or more dirty
Prompts at once are one full list of every revision, which is the resync's
job). It samples each sidecar's RSS after its first sync, every 1,000 edits
and at the end, and prints them with the slope from the 1,000th edit on.

``bench/run.py`` runs ``in_namespace()`` last, in a namespace of its own on its
cluster, so the soak's revisions never weigh on the figures before it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_cluster.api import Api
from prompt_cluster.testing import SidecarProcess, kubectl, sidecar_role, wait_for

from .common import start_operator

SAMPLE_EVERY = 1000
RESYNC = 300.0  # the sidecar's default
SLOW_BATCH = 5.0  # seconds: a batch this slow waited for a resync, not for its signal


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the thread count from /proc/PID/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            values[name] = int(rest.split()[0])
    return values


def rereads(pod: SidecarProcess) -> int:
    """The sidecar's ``prompt_sidecar_rereads_total`` (one get, or one list of many pages)."""
    with urllib.request.urlopen(pod.url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("prompt_sidecar_rereads_total "):
                return int(float(line.split()[1]))
    return 0


def slope_per_1000(samples: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of (edits, MiB) samples, in MiB per 1,000 edits (0 for fewer than 2)."""
    if len(samples) < 2:
        return 0.0
    xs = [x for x, _ in samples]
    ys = [y for _, y in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread


@dataclass
class Soak:
    """What one soak measured: RSS in MiB (median over the sidecars) after so many edits."""

    files: int
    sidecars: int
    batch: int
    samples: list[tuple[int, float]] = field(default_factory=list)  # (edits, RSS MiB)
    peak_mib: float = 0.0
    threads: int = 0
    seconds: float = 0.0
    rereads: int = 0  # the sidecars' ConfigMap reads (gets and list) during the edits
    slow_batches: int = 0

    @property
    def first_sync_mib(self) -> float:
        return self.samples[0][1]

    def at(self, edits: int) -> float | None:
        """RSS at the first sample taken once ``edits`` edits were done."""
        return next((mib for n, mib in self.samples if n >= edits), None)

    @property
    def final_mib(self) -> float:
        return self.samples[-1][1]

    @property
    def edits(self) -> int:
        return self.samples[-1][0]

    @property
    def slope(self) -> float:
        """MiB per 1,000 edits, from the 1,000th edit on (the first sync's own churn aside)."""
        later = [s for s in self.samples if s[0] >= min(SAMPLE_EVERY, self.edits)]
        return slope_per_1000(later)


def soak(
    admin_kubeconfig: Path,
    sidecar_kubeconfig: Path,
    namespace: str,
    work: Path,
    names: Sequence[str],
    *,
    edits: int = 10000,
    sidecars: int = 1,
    batch: int = 4,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> Soak:
    """Start ``sidecars`` sidecars over the Prompts ``names`` in ``namespace``, edit
    them ``edits`` times (fewer when ``max_seconds`` of edits are over first) and
    sample the sidecars' memory; stops the sidecars after.

    Pods left subscribed in the namespace (stopped sidecars of an earlier step)
    are deleted first, so the operator signals only the pods measured here.
    """
    kubectl(
        admin_kubeconfig,
        "-n",
        namespace,
        "delete",
        "pods",
        "-l",
        "prompts.dev/subscribe=true",
        "--wait=false",
        check=False,
    )
    pods = [
        SidecarProcess(
            admin_kubeconfig, sidecar_kubeconfig, namespace, f"soak-{i}", work, resync=RESYNC
        )
        for i in range(sidecars)
    ]
    result = Soak(files=len(names), sidecars=sidecars, batch=batch)
    local = threading.local()

    def api() -> Api:
        if not hasattr(local, "api"):
            local.api = Api(admin_kubeconfig)
        result: Api = local.api
        return result

    def sample(done: int) -> None:
        stats = [memory_kib(p.proc.pid) for p in pods if p.proc is not None]
        mib = statistics.median(s["VmRSS"] for s in stats) / 1024
        result.samples.append((done, round(mib, 2)))
        result.peak_mib = max(result.peak_mib, max(s["VmHWM"] for s in stats) / 1024)
        result.threads = max(s["Threads"] for s in stats)
        log(f"  soak: {done:>6} edits  sidecar RSS {mib:6.2f} MiB (median of {len(stats)})")

    def edit(job: tuple[str, str]) -> None:
        name, text = job
        api().edit_prompt(namespace, name, text)

    try:
        for pod in pods:
            pod.start(wait_ready=False)
        wait_for(lambda: all(p.ready() for p in pods), timeout=300, interval=0.2)
        time.sleep(1.0)  # the first sync's last writes and the readiness probes are over
        sample(0)
        reads_before = sum(rereads(p) for p in pods)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=batch) as pool:
            done, next_sample = 0, SAMPLE_EVERY
            while done < edits:
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    log(f"  soak: time is up after {done} edits")
                    break
                size = min(batch, edits - done)
                jobs = [
                    (names[(done + i) % len(names)], f"soak edit {done + i} " + "s" * 2000)
                    for i in range(size)
                ]
                list(pool.map(edit, jobs))
                wanted = [(name, text.encode()) for name, text in jobs]
                sent = time.monotonic()
                wait_for(
                    lambda wanted=wanted: all(
                        p.file(name) == data for p in pods for name, data in wanted
                    ),
                    # A signal lost to a loaded machine heals at the sidecar's resync.
                    timeout=RESYNC + 60,
                    interval=0.002,
                    message=f"soak edits {done}..{done + size} in every file",
                )
                if time.monotonic() - sent > SLOW_BATCH:
                    result.slow_batches += 1
                done += size
                if done >= next_sample:
                    sample(done)
                    next_sample += SAMPLE_EVERY
            if result.samples[-1][0] != done:
                sample(done)
        result.seconds = time.monotonic() - started
        result.rereads = sum(rereads(p) for p in pods) - reads_before
    finally:
        for pod in pods:
            pod.stop()
        kubectl(
            admin_kubeconfig,
            "-n",
            namespace,
            "delete",
            "pods",
            *(p.name for p in pods),
            "--wait=false",
            check=False,
        )
    return result


def sizes(quick: bool) -> dict[str, Any]:
    """The soak's sizes in ``bench/run.py``: 1,000 Prompts and 10,000 edits, or at
    most 3.5 minutes of edits."""
    if quick:
        return {"files": 100, "edits": 1000, "max_seconds": 60.0}
    return {"files": 1000, "edits": 10000, "max_seconds": 210.0}


def add_figures(figures: Any, soaked: Soak) -> None:
    """The soak's figures on ``bench.run.Figures``."""
    common = {"files": soaked.files, "sidecars": soaked.sidecars}
    figures.add(
        "P5 sidecar RSS after first sync (one pod)",
        soaked.first_sync_mib,
        "MiB",
        "<= 30",
        **common,
    )
    thousand = soaked.at(SAMPLE_EVERY)
    if thousand is not None and soaked.edits > 2 * SAMPLE_EVERY:
        figures.add("soak sidecar RSS after 1,000 edits", thousand, "MiB", "<= 30", **common)
    figures.add(
        f"soak sidecar RSS after {soaked.edits:,} edits",
        soaked.final_mib,
        "MiB",
        "<= 30",
        **common,
        peak_mib=round(soaked.peak_mib, 2),
        threads=soaked.threads,
        edits_per_s=round(soaked.edits / max(soaked.seconds, 1e-9), 1),
        batch=soaked.batch,
        rereads_per_edit=round(soaked.rereads / max(soaked.edits * soaked.sidecars, 1), 3),
        slow_batches=soaked.slow_batches,
    )
    figures.add(
        "soak sidecar RSS slope",
        soaked.slope,
        "MiB/1k edits",
        "~ 0 (flat)",
        **common,
        from_edit=min(SAMPLE_EVERY, soaked.edits),
    )


class _Printed:
    """``add_figures`` target for the command line: print each figure."""

    def add(self, name: str, value: float, unit: str, goal: str, **params: Any) -> None:
        print(f"  {name:<44} {value:>10.3f} {unit:<12} goal {goal}", flush=True)


def in_namespace(
    admin_kubeconfig: Path,
    work: Path,
    *,
    files: int = 1000,
    namespace: str = "soak",
    **options: Any,
) -> Soak:
    """``soak()`` in a namespace of its own with ``files`` new Prompts of about 2 KiB,
    on a cluster where the CRD is installed and the operator runs."""
    kubectl(admin_kubeconfig, "create", "namespace", namespace)
    sc_kc = sidecar_role(admin_kubeconfig, namespace, work / f"{namespace}-sidecar.kc")
    api = Api(admin_kubeconfig)
    names = [f"p{i}" for i in range(files)]
    for name in names:
        api.create_prompt(namespace, name, f"{name} v0 " + "x" * 2000)
    wait_for(
        lambda: (
            sum(1 for p in api.prompts(namespace) if p.get("status", {}).get("revision"))
            == len(names)
        ),
        timeout=900,
        interval=1,
        message="every Prompt has a revision",
    )
    api.close()
    return soak(admin_kubeconfig, sc_kc, namespace, work, names, **options)


def main(argv: list[str] | None = None) -> int:
    from prompt_cluster.cluster import LocalCluster

    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--edits", type=int, default=10000, help="edits in all (default 10000)")
    parser.add_argument("--files", type=int, default=1000, help="Prompts (default 1000)")
    parser.add_argument("--sidecars", type=int, default=1, help="sidecars measured (default 1)")
    parser.add_argument(
        "--batch", type=int, default=4, help="edits sent at once, each to another Prompt"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop editing after this long"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prompt-soak-"))
    print(f"soak: {args.edits} edits over {args.files} Prompts; work dir {work}", flush=True)
    cluster = LocalCluster(work / "cluster")
    kc = cluster.up().kubeconfig
    operator = None
    try:
        operator = start_operator(kc, work)
        soaked = in_namespace(
            kc,
            work,
            files=args.files,
            edits=args.edits,
            sidecars=args.sidecars,
            batch=args.batch,
            max_seconds=args.max_seconds,
        )
        print(f"soak: {soaked.edits} edits in {soaked.seconds:.0f} s")
        add_figures(_Printed(), soaked)
    finally:
        if operator is not None:
            operator.stop()
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
