"""Fan-out beyond this machine's pods: thousands of simulated sidecars against
the real operator and the real API server.

``python -m bench.fanout_sim --pods 10000`` starts a fresh local cluster and the
operator (as bench/run.py does), then creates that many subscribed Pod objects
(no kubelet: their status is set through the status subresource, each with its
own 127.x.y.z address) while a few processes of bench/fanout_pods listen on
every one of those addresses and answer signals as a sidecar does, without
files. Then it edits one Prompt several times, one edit at a time, and prints
for each edit the time from the API server accepting it (the PATCH returned)
until every simulated pod holds the new revision, and the CPU the operator, the
API server, etcd and the simulator spent on it. Results go to
bench/results/fanout.json, keyed by the mode seen (``hint``: every pod read the
ConfigMap from etcd; ``hint-cached``: from the watch cache, as the sidecar does
since; ``signed``: pods held a verified signed revision) and the pod count.
Unsigned signals from today's operator: ``--operator-arg=--signing-secret=``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_cluster.api import Api
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import kubectl, pod_manifest, sidecar_role
from prompt_contract import objects

from .common import REPO, rss_kib, settle, start_operator
from .fanout_pods import raise_open_files
from .fanout_report import Edit, Fanout, save, summary, table
from .propagation import cpu_seconds

NAMESPACE = "fanout"
PROMPT = "fanout"
# Each simulator process holds a listener and, while the operator keeps it
# alive, a connection per pod: this many pods keep it well within 20,000 files.
PODS_PER_PROCESS = 4000
# The operator's own signal concurrency is 64 by default; no more GETs can be
# waiting on signals at once than signals in flight.
GET_CONCURRENCY = 64
CREATE_THREADS = 16
EDIT_TIMEOUT = 180.0
IDLE_SECONDS = 3.0


def addresses(count: int, second_octet: int = 201) -> list[tuple[str, str]]:
    """(pod name, 127.x.y.z) for ``count`` pods; the second octet stays above
    the 1-200 that prompt_cluster.testing gives its sidecars."""
    return [
        (
            f"sim-{i}",
            f"127.{second_octet + i // 62500}.{(i // 250) % 250}.{i % 250 + 2}",
        )
        for i in range(count)
    ]


# -- the simulator processes -------------------------------------------------------------


class Simulators:
    """bench.fanout_pods processes, each playing a slice of the pods."""

    def __init__(
        self,
        pods: Sequence[tuple[str, str]],
        sidecar_kubeconfig: Path,
        namespace: str,
        work: Path,
        processes: int,
        get_concurrency: int = GET_CONCURRENCY,
    ) -> None:
        size = math.ceil(len(pods) / processes)
        self.procs: list[subprocess.Popen[str]] = []
        for n in range(processes):
            config = {
                "kubeconfig": str(sidecar_kubeconfig),
                "namespace": namespace,
                "port": objects.DEFAULT_PORT,
                "get_concurrency": max(1, get_concurrency // processes),
                "pods": list(pods[n * size : (n + 1) * size]),
            }
            with open(work / f"simulator-{n}.log", "w") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.fanout_pods"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=REPO,
                )
            self.procs.append(proc)
            self._send(proc, config)
        ready = [self._read(proc) for proc in self.procs]
        self.verifier = all(r["verifier"] for r in ready)

    @staticmethod
    def _send(proc: subprocess.Popen[str], data: Mapping[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(data) + "\n")
        proc.stdin.flush()

    @staticmethod
    def _read(proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator {proc.pid} exited ({proc.wait()}); see its log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every process's answer to ``command`` (asked of all at once)."""
        for proc in self.procs:
            self._send(proc, command)
        return [self._read(proc) for proc in self.procs]

    def wait_new(self, prompt: str, old: Sequence[str], timeout: float) -> Arrival:
        """Wait until every pod holds one revision of ``prompt`` not in ``old``."""
        answers = self.ask({"cmd": "wait", "prompt": prompt, "old": list(old), "timeout": timeout})
        revisions = {a.get("revision") for a in answers}
        if not all(a["complete"] for a in answers) or len(revisions) != 1:
            raise RuntimeError(f"not every pod holds one new revision: {answers!r:.600}")
        return Arrival(str(revisions.pop()), sorted(t for a in answers for t in a["times"]))

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for answer in self.ask({"cmd": "counts"}):
            total.update(answer)
        return total

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Arrival:
    revision: str
    times: list[float]  # monotonic, one per pod, sorted


# -- the pods --------------------------------------------------------------------------------


def pod_status(ip: str) -> dict[str, Any]:
    """The status a kubelet would give a running, ready pod at ``ip``."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("Ready", "ContainersReady")
    ]
    return {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": ready,
        }
    }


def create_pods(
    kubeconfig: Path, namespace: str, pods: Sequence[tuple[str, str]], threads: int
) -> float:
    """Create the subscribed Pods and set their status, ``threads`` kept-alive
    connections at once; the seconds it took."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    chunks = [pods[i::threads] for i in range(threads)]

    def create(chunk: Sequence[tuple[str, str]]) -> None:
        api = Api(kubeconfig)
        try:
            for name, ip in chunk:
                manifest = pod_manifest(
                    namespace,
                    name,
                    labels={objects.SUBSCRIBE_LABEL: "true"},
                    annotations={objects.PORT_ANNOTATION: str(objects.DEFAULT_PORT)},
                )
                api.request("POST", path, manifest)
                api.request(
                    "PATCH",
                    f"{path}/{name}/status",
                    pod_status(ip),
                    "application/merge-patch+json",
                )
        finally:
            api.close()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for done in pool.map(create, chunks):
            del done
    return time.monotonic() - started


# -- the edits -------------------------------------------------------------------------------


def cpu_of(pids: Mapping[str, Sequence[int]]) -> dict[str, float]:
    return {party: sum(map(cpu_seconds, group)) for party, group in pids.items()}


def idle_rates(pids: Mapping[str, Sequence[int]], seconds: float) -> dict[str, float]:
    """CPU seconds per second each party spends with nothing to do."""
    before, started = cpu_of(pids), time.monotonic()
    time.sleep(seconds)
    after, spent = cpu_of(pids), time.monotonic() - started
    return {party: (after[party] - before[party]) / spent for party in pids}


def run_edits(
    api: Api,
    namespace: str,
    sims: Simulators,
    revision: str,
    count: int,
    pids: Mapping[str, Sequence[int]],
    idle: Mapping[str, float],
    audit: Path | None,
) -> list[Edit]:
    """Edit the Prompt ``count`` times, one at a time: each is done when every
    pod holds it and (with ``audit``) the API server's audit log is quiet."""
    edits = []
    revisions = [revision]
    for n in range(count):
        counted = sims.counts()
        cpu, started = cpu_of(pids), time.monotonic()
        api.edit_prompt(namespace, PROMPT, f"fanout edit {n} " + "y" * 2000)
        accepted = time.monotonic()
        arrival = sims.wait_new(PROMPT, revisions, EDIT_TIMEOUT)
        files = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids.get("operator", []))
        if audit is not None:
            settle(audit)  # the operator's status write and any retries are the edit's too
        spent, window = cpu_of(pids), time.monotonic() - started
        now = sims.counts()
        revisions.append(arrival.revision)
        edits.append(
            Edit(
                all_ms=(arrival.times[-1] - accepted) * 1000,
                median_ms=(statistics.median(arrival.times) - accepted) * 1000,
                first_ms=(arrival.times[0] - accepted) * 1000,
                cpu_s={p: spent[p] - cpu[p] - idle.get(p, 0.0) * window for p in pids},
                gets=now["gets"] - counted["gets"],
                signed=now["signed_held"] - counted["signed_held"],
                cached_gets=now["cached_gets"] - counted["cached_gets"],
                operator_open_files=files,
            )
        )
        print(f"    {row(n + 1, edits[-1])}", flush=True)
    return edits


def row(n: int, edit: Edit) -> str:
    cpu = " ".join(f"{party} {seconds * 1000:7.0f}" for party, seconds in edit.cpu_s.items())
    return (
        f"edit {n}: every pod {edit.all_ms:8.0f} ms (half {edit.median_ms:6.0f}, first "
        f"{edit.first_ms:5.0f}); GETs {edit.gets}, signed {edit.signed}; CPU ms: {cpu}"
    )


def simulate(
    kubeconfig: Path,
    namespace: str,
    work: Path,
    pods: int,
    edits: int,
    party_pids: Mapping[str, Sequence[int]],
    audit: Path | None = None,
    processes: int | None = None,
    second_octet: int = 201,
) -> Fanout:
    """The whole simulation against a running cluster and operator (``party_pids``:
    whose CPU to count, e.g. the operator and the API server; the simulator's own is added)."""
    api = Api(kubeconfig)
    kubectl(kubeconfig, "create", "namespace", namespace, check=False)
    sidecar_kc = sidecar_role(kubeconfig, namespace, work / "sidecar.kc")
    api.create_prompt(namespace, PROMPT, "fanout v0 " + "x" * 2000)
    processes = processes or math.ceil(pods / PODS_PER_PROCESS)
    pod_addresses = addresses(pods, second_octet)
    sims = Simulators(pod_addresses, sidecar_kc, namespace, work, processes)
    result = Fanout(pods, processes)
    operator = party_pids.get("operator", [])
    try:
        result.rss_mib["operator_before_pods"] = sum(rss_kib(p)[0] for p in operator) / 1024
        started = time.monotonic()
        result.create_s = create_pods(kubeconfig, namespace, pod_addresses, CREATE_THREADS)
        print(f"  created {pods} pods in {result.create_s:.1f} s", flush=True)
        # The operator signals each new pod the Prompts it selects: the first delivery.
        first = sims.wait_new(PROMPT, [], 600)
        result.first_delivery_s = first.times[-1] - started
        print(
            f"  every pod held the Prompt {result.first_delivery_s:.1f} s after the first "
            "was created",
            flush=True,
        )
        # As a sidecar reads them at start; absent while the operator does not sign.
        keys = sims.ask({"cmd": "keys"})[0]["keys"]
        verifier = "PyNaCl" if sims.verifier else "none (PyNaCl missing: signed entries are hints)"
        print(f"  signing keys: {keys}; verifier: {verifier}", flush=True)
        if audit is not None:
            settle(audit)
        pids = {**party_pids, "simulator": sims.pids()}
        result.idle_cpu_per_s = idle_rates(pids, IDLE_SECONDS)
        result.edits = run_edits(
            api, namespace, sims, first.revision, edits, pids, result.idle_cpu_per_s, audit
        )
        result.rss_mib["operator_after_edits"] = sum(rss_kib(p)[0] for p in operator) / 1024
        for party, group in pids.items():
            result.rss_mib[f"{party}_peak"] = sum(rss_kib(p)[1] for p in group) / 1024
        result.counts = dict(sims.counts())
    finally:
        sims.stop()
        api.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_sim")
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--processes", type=int, default=None, help="simulator processes")
    parser.add_argument(
        "--operator-arg", action="append", default=[], help="an extra flag for the operator"
    )
    args = parser.parse_args(argv)
    # The operator inherits it: it holds a connection per pod it signals at once.
    raise_open_files()
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="prompt-fanout-"))
    print(
        f"fan-out simulation: {args.pods} pods, {os.cpu_count()} cores, load {load[0]:.2f}; "
        f"work dir {work}",
        flush=True,
    )
    cluster = LocalCluster(work / "cluster")
    state = cluster.up()
    operator = None
    try:
        operator = start_operator(
            state.kubeconfig, work, "--delivery-refresh=2", *args.operator_arg
        )
        assert operator.proc is not None
        parties = {
            "operator": [operator.proc.pid],
            "kube-apiserver": [state.pids["kube-apiserver"]],
            "etcd": [state.pids["etcd"]],
            "kube-controller-manager": [state.pids["kube-controller-manager"]],
        }
        result = simulate(
            state.kubeconfig,
            NAMESPACE,
            work,
            args.pods,
            args.edits,
            parties,
            audit=state.audit_log,
            processes=args.processes,
        )
    finally:
        if operator is not None:
            operator.stop()
        cluster.down()
    record = summary(result)
    record["machine"] = {"cores": os.cpu_count(), "loadavg_at_start": load}
    record["operator_args"] = args.operator_arg
    print(table([record]))
    runs = save(record, REPO / "bench" / "results" / "fanout.json")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
