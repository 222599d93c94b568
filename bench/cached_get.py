"""What reading a revision ConfigMap from the API server's watch cache saves.

`flock /tmp/cluster.lock nice -n 10 python -m bench.cached_get` starts a local
control plane (etcd and kube-apiserver), creates one revision ConfigMap of a
2 KiB prompt, and GETs it --gets times with the sidecar's own client
(``KubeClient.get_configmap``), once as a quorum read (from etcd) and once
with ``cached=True`` (``resourceVersion=0``, from the watch cache), alternating
for --rounds rounds. It prints, per kind of read, the latency percentiles and
the CPU time the API server and etcd spent per GET (from /proc/<pid>/stat).

Then it measures how often the cache lags where it matters: it creates
--creates ConfigMaps, each followed at once by a cached GET, and counts the
404s (the sidecar reads those again from etcd before it acts).
Benchmarks print and never fail on speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_contract import objects
from prompt_sidecar.kubeapi import KubeClient, NotFound

NS = "default"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def revision_configmap(name: str, number: int) -> dict[str, object]:
    """A revision ConfigMap of the size the operator writes for a 2 KiB prompt."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: str(number),
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: "bench",
                objects.REVISION_ANNOTATION: f"r{number}",
                objects.KEY_ANNOTATION: "bench",
            },
        },
        "immutable": True,
        "data": {
            objects.TEXT_DATA_KEY: f"prompt {number} ".ljust(2048, "."),
            objects.METADATA_DATA_KEY: '{"variables":["customer","tone"]}',
        },
    }


@dataclass
class Reads:
    """Latencies (s) and control-plane CPU (s) of one kind of read, over all rounds."""

    latencies: list[float]
    apiserver_cpu: float = 0.0
    etcd_cpu: float = 0.0


def read_round(
    client: KubeClient, name: str, gets: int, cached: bool, pids: dict[str, int], into: Reads
) -> None:
    api_before, etcd_before = cpu_seconds(pids["kube-apiserver"]), cpu_seconds(pids["etcd"])
    for _ in range(gets):
        started = time.perf_counter()
        client.get_configmap(NS, name, cached=cached)
        into.latencies.append(time.perf_counter() - started)
    into.apiserver_cpu += cpu_seconds(pids["kube-apiserver"]) - api_before
    into.etcd_cpu += cpu_seconds(pids["etcd"]) - etcd_before


def lagging(api: Api, client: KubeClient, creates: int) -> int:
    """Cached GETs right after their ConfigMap's create that found nothing."""
    missing = 0
    for i in range(creates):
        name = objects.configmap_name("lag", f"r{i}")
        api.request("POST", f"/api/v1/namespaces/{NS}/configmaps", revision_configmap(name, i + 1))
        try:
            client.get_configmap(NS, name, cached=True)
        except NotFound:
            missing += 1
    return missing


def report(kind: str, reads: Reads) -> None:
    ms = sorted(x * 1e3 for x in reads.latencies)
    n = len(ms)
    print(
        f"{kind:<7} {n:>6} {statistics.median(ms):>8.2f} {ms[int(n * 0.99) - 1]:>8.2f} "
        f"{statistics.fmean(ms):>8.2f} {reads.apiserver_cpu / n * 1e3:>14.3f} "
        f"{reads.etcd_cpu / n * 1e3:>9.3f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cached_get", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--gets", type=int, default=1000, help="GETs per kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=200)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="prompt-bench-cached-get-"))
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    try:
        api = Api(state.kubeconfig)
        client = KubeClient.from_environment(str(state.kubeconfig))
        name = objects.configmap_name("bench", "r1")
        api.request("POST", f"/api/v1/namespaces/{NS}/configmaps", revision_configmap(name, 1))
        for cached in (False, True):  # warm the connection and both paths
            read_round(client, name, 50, cached, state.pids, Reads([]))
        print(f"load at start {Path('/proc/loadavg').read_text().split()[0]}, "
              f"{os.cpu_count()} cores, nice {os.nice(0)}; {args.rounds} rounds of "
              f"{args.gets} GETs each, one kept-alive TLS connection")  # fmt: skip
        quorum, cached = Reads([]), Reads([])
        for _ in range(args.rounds):
            read_round(client, name, args.gets, False, state.pids, quorum)
            read_round(client, name, args.gets, True, state.pids, cached)
        print(f"{'read':<7} {'GETs':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
              f"{'apiserver CPU':>14} {'etcd CPU':>9}  (ms per GET)")  # fmt: skip
        report("quorum", quorum)
        report("cached", cached)
        missing = lagging(api, client, args.creates)
        print(f"cached GET at once after the create: {missing} of {args.creates} found "
              f"nothing (each is read again from etcd)")  # fmt: skip
        client.close()
    finally:
        cluster.down()


if __name__ == "__main__":
    main()
