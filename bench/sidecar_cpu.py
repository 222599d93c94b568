"""The sidecar's own CPU per edit, against the watch-based sidecar's.

`python -m bench.sidecar_cpu [--edits 200] [--prompts 100] [--profile]` starts
a local cluster, the operator and ``--prompts`` Prompts of about 2 KiB, then ONE
`prompt-sidecar` and ONE watch-based sidecar (bench/baseline.py) side by side,
and edits the Prompts one at a time (each edit waits until both files hold it,
then ``--gap`` seconds): both get the same edits at the same rate. The CPU of
each process (user + system, from /proc/PID/stat) over the edits, divided by the
edits, is the figure (the median of ``--rounds`` rounds, each printed); the
CPU each spends per second while nothing happens is printed beside it (over
``--idle`` seconds before the edits; /proc counts in 10 ms ticks).

`--micro` needs no cluster: the whole sidecar (its server, syncer and writer)
runs in a child process over ConfigMaps it holds in memory (``MemoryApi``, a
stand-in for the API server that answers a GET from a dict), and this process
sends it the operator's signals over one kept-alive connection, each for a new
revision, and waits for the answer (which comes once the file is written). So
it times everything an edit costs the sidecar except the GET, in a minute.

`--against CHECKOUT` (either mode) runs a second sidecar on another checkout's
code (a worktree of main) beside ours, on the same edits: a before and after
under one load, which on a shared machine moves either figure by 10-20%.

`--profile` runs our sidecar under cProfile, one profiler per thread timing the
thread's own CPU, and prints the top functions by cumulative time and the
split of CPU by where it went (HTTP server, JSON, logging, writer, ...). The
profiler slows the sidecar down: its CPU figure is then not the real one.

Run it at low priority on a shared machine (`nice -n 10`); benchmarks print and
never fail on speed.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import http.client
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_contract import objects, signals

REPO = Path(__file__).resolve().parent.parent
NS = "cpu"
UID = "00000000-0000-4000-8000-000000000001"
TEXT_BYTES = 2000


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (all its threads, dead ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# -- the edits both modes make ------------------------------------------------------


def edited(names: list[str], n: int) -> str:
    """The Prompt edit ``n`` changes: spread over all of them, as bench/propagation.py."""
    return names[(n * 7919) % len(names)]


def text_of(name: str, n: int) -> str:
    return f"prompt {name} edit {n} " + "y" * TEXT_BYTES


def revision_of(name: str, n: int) -> str:
    return hashlib.sha256(f"{name}:{n}".encode()).hexdigest()[:10]


def configmap(name: str, n: int, number: int) -> dict[str, Any]:
    """The revision ConfigMap the operator writes for edit ``n`` (``-1``: the first text)."""
    revision = revision_of(name, n)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(name, revision),
            "namespace": NS,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: str(number),
                objects.PROMPT_UID_LABEL: UID,
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: name,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: name,
            },
        },
        "immutable": True,
        "data": {
            objects.METADATA_DATA_KEY: '{"defaults":{},"format":"python","variables":[]}',
            objects.TEXT_DATA_KEY: text_of(name, n),
        },
    }


# -- profiling a sidecar process -------------------------------------------------------


def run_profiled(out: Path, target: Callable[[], int]) -> int:
    """Run ``target`` with one cProfile per thread, timing each thread's own CPU,
    and write the merged statistics to ``out`` when it returns."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time_ns, 1e-9)
        profile.enable()
        try:
            original(thread)
        finally:
            profile.disable()
            # Only threads that ended count: a profile still running cannot be read
            # from another thread (its open calls would be timed on this one's clock).
            # The deadlines thread never ends; its cost per edit is nil.
            with lock:
                profiles.append(profile)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile(time.thread_time_ns, 1e-9)
    profiles.append(main)
    main.enable()
    try:
        return target()
    finally:
        main.disable()
        merged: pstats.Stats | None = None
        with lock:
            for profile in profiles:
                try:
                    stats = pstats.Stats(profile)
                except (TypeError, ValueError):
                    continue
                merged = stats if merged is None else merged.add(stats)
        if merged is not None:
            merged.dump_stats(str(out))


# Where CPU goes, by the file (or built-in) a function lives in: first match wins.
# A function of no group here (a built-in such as ``len``, a helper of the standard
# library) passes its time on to its callers, in proportion to what each spent in it.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("API client (the GET)", ("kubeapi.py", "http/client.py", "ssl.py", "_ssl.", "urllib")),
    ("HTTP server", ("http/server.py", "socketserver.py", "server.py", "headers.py")),
    ("logging", ("logging/", "main.py")),
    ("hops", ("hops.py",)),
    ("metrics", ("metrics.py",)),
    ("writer", ("writer.py", "dirfd.py", "files.py", "disk.py", "timing.py", "posix.")),
    ("decisions", ("planning.py", "payload.py", "variants.py", "keys.py", "signals.py")),
    ("sync loop, threads and locks", ("sync.py", "runtime.py", "threading.py", "_thread.")),
    ("sockets", ("socket.py", "_socket.", "selectors.py", "select.")),
    ("JSON (elsewhere)", ("json/", "_json.")),
)


def group_of(func: tuple[str, int, str]) -> str | None:
    filename, _, name = func
    where = name if filename == "~" else filename
    for group, marks in GROUPS:
        if any(mark in where for mark in marks):
            return group
    return None


def split(raw: dict[Any, Any]) -> dict[str, float]:
    """Seconds of CPU by group, each function's own time given to its group or,
    without one, to its callers' (a few levels up at most)."""
    totals: dict[str, float] = {}

    def give(func: Any, seconds: float, depth: int) -> None:
        group = group_of(func)
        callers = raw[func][4] if func in raw else {}
        if group is None and callers and depth < 8:
            weights = {caller: edge[3] for caller, edge in callers.items()}
            whole = sum(weights.values())
            for caller, weight in weights.items():
                share = weight / whole if whole else 1 / len(weights)
                give(caller, seconds * share, depth + 1)
            return
        totals[group or "other"] = totals.get(group or "other", 0.0) + seconds

    for func, (_, _, tottime, _, _) in raw.items():
        give(func, tottime, 0)
    return totals


def print_profile(path: Path, edits: int, top: int) -> None:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    parts = split(raw)
    total = sum(parts.values())
    print(
        f"\nours, split by where the CPU went (profiled, the first sync included; "
        f"{total * 1000 / edits:.2f} ms/edit):"
    )
    print("| part | ms/edit | share |\n|---|---:|---:|")
    for group, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {group} | {seconds * 1000 / edits:.3f} | {seconds / total:.0%} |")
    print(f"\ntop {top} functions by cumulative CPU (the sidecar's threads, profiled):")
    stats.sort_stats("cumulative").print_stats(top)


# -- micro mode: the sidecar over ConfigMaps in memory ---------------------------------


class MemoryApi:
    """ConfigMaps from a dict, in the shape ``KubeClient`` returns them; no network."""

    def __init__(self, listed: list[dict[str, Any]], later: list[dict[str, Any]]) -> None:
        self._by_name = {cm["metadata"]["name"]: cm for cm in listed + later}
        self._first = listed  # what a list returns: the first revision of each

    def get_configmap(self, namespace: str, name: str, *, cached: bool = False) -> dict[str, Any]:
        from prompt_sidecar.kubeapi import NotFound

        found = self._by_name.get(name)
        if found is None:
            raise NotFound(f"configmap {name} not found")
        return found

    def list_configmaps(
        self, namespace: str, label_selector: str, page_size: int = 500
    ) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(self._first), page_size):
            yield self._first[start : start + page_size]

    def close(self) -> None:
        pass


def micro_api(prompts: int, edits: int) -> MemoryApi:
    names = [f"p{i}" for i in range(prompts)]
    return MemoryApi(
        [configmap(name, -1, 1) for name in names],
        [configmap(edited(names, n), n, n + 2) for n in range(edits)] + [keys_configmap()],
    )


# ``--signed``: each edit's entry as the operator builds it (``controllers.carry``:
# signed once per revision), with a key both sides derive from this seed.
SIGNING_SEED = bytes(range(32))


class FixedKey:
    """The operator's key store (``carry.SigningKeys``) reduced to one key that
    every namespace already publishes."""

    def __init__(self) -> None:
        from nacl.signing import SigningKey

        from prompt_operator.signing import keyset

        self.key = keyset.new_key(time.time(), SIGNING_SEED)
        self._nacl = SigningKey(SIGNING_SEED)

    def signer(self) -> tuple[str, Callable[[bytes], bytes]]:
        return self.key.kid, lambda message: self._nacl.sign(message).signature

    def published(self, namespace: str) -> bool:
        return True

    def publish(self, namespace: str) -> None:
        pass


def keys_configmap() -> dict[str, Any]:
    """The namespace's keys ConfigMap, publishing ``SIGNING_SEED``'s public key."""
    from prompt_contract import signing
    from prompt_operator.signing import keyset

    published = keyset.published([keyset.new_key(time.time(), SIGNING_SEED)], time.time())
    return {
        "metadata": {
            "name": signing.KEYS_CONFIGMAP,
            "namespace": NS,
            "labels": {objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE, signing.KEYS_LABEL: "1"},
        },
        "data": signing.keys_data(published),
    }


def signed_revisions() -> Any:
    """The operator's ``SignedRevisions`` over ``FixedKey``."""
    from prompt_operator.controllers.carry import SignedRevisions

    return SignedRevisions(FixedKey())


def signed_body(revisions: Any, name: str, n: int) -> bytes:
    """The body of the operator's signal for edit ``n`` (``revisions``: its
    ``SignedRevisions``), the revision signed and carried."""
    revisions.written(configmap(name, n, n + 2))
    entry = revisions.entry(NS, name, revision_of(name, n))
    return signals.join_entries([entry])


def micro_sidecar(args: argparse.Namespace) -> int:
    """The child of ``--micro``: the real sidecar (``prompt_sidecar.main.run``) with
    its API client replaced by a ``MemoryApi``, so any checkout's sidecar runs so."""
    from prompt_sidecar import main

    api = micro_api(args.prompts, args.edits)

    class Credentials:
        @staticmethod
        def from_environment(kubeconfig: str | None) -> MemoryApi:
            return api

    main.KubeClient = Credentials  # type: ignore[misc,assignment]
    os.environ.update(POD_NAME="app-0", POD_NAMESPACE=NS, POD_IP="127.0.0.1")
    argv = [f"--dir={args.dir}", f"--port={args.port}", f"--probe-port={args.port + 1}"]
    target = lambda: main.run([*argv, "--log-format=json"])  # noqa: E731
    if args.profile_out:
        return run_profiled(Path(args.profile_out), target)
    return target()


def wait_ready(url_host: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(url_host, port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("sidecar not ready")


@dataclass
class Figure:
    name: str
    edits: int  # per round
    rounds: list[float]  # CPU ms per edit, each round
    idle_ms_per_s: float

    @property
    def cpu_ms_per_edit(self) -> float:
        return statistics.median(self.rounds)


def idle_rate(pids: list[int], seconds: float) -> list[float]:
    """CPU ms per second each of ``pids`` spends while nothing happens."""
    before = [cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    return [(cpu_seconds(p) - b) * 1000 / seconds for p, b in zip(pids, before, strict=True)]


def start_micro(work: Path, args: argparse.Namespace, port: int, tree: Path | None) -> Any:
    """A ``--micro-sidecar`` child; with ``tree``, on that checkout's sidecar and contract."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "bench.sidecar_cpu",
        "--micro-sidecar",
        f"--dir={work / 'prompts'}",
        f"--port={port}",
        f"--prompts={args.prompts}",
        f"--edits={args.edits * args.rounds}",
    ]
    if args.profile and tree is None:
        command.append(f"--profile-out={work / 'sidecar.pstats'}")
    env = dict(os.environ)
    if tree is not None:  # this checkout's bench, the other's packages
        env["PYTHONPATH"] = f"{REPO}:{tree / 'sidecar'}:{tree / 'contract'}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "sidecar.log", "wb") as log:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def micro(args: argparse.Namespace) -> list[Figure]:
    """Ours over ConfigMaps in memory (and the ``--against`` checkout's, signalled in
    turn with ours, so the machine's load weighs on both alike)."""
    work = Path(tempfile.mkdtemp(prefix="sidecar-cpu-"))
    port = 18470 + os.getpid() % 1000
    trees: list[Path | None] = [None] + ([Path(args.against).resolve()] if args.against else [])
    children = [
        start_micro(work / f"sidecar-{i}", args, port + 2 * i, tree) for i, tree in enumerate(trees)
    ]
    pids = [child.pid for child in children]
    try:
        for i in range(len(children)):
            wait_ready("127.0.0.1", port + 2 * i)
        idle = idle_rate(pids, args.idle)
        names = [f"p{i}" for i in range(args.prompts)]
        revisions = signed_revisions() if args.signed else None
        conns = [
            http.client.HTTPConnection("127.0.0.1", port + 2 * i, timeout=10)
            for i in range(len(pids))
        ]
        rounds: list[list[float]] = [[] for _ in pids]
        for r in range(args.rounds):
            before = [cpu_seconds(pid) for pid in pids]
            for n in range(r * args.edits, (r + 1) * args.edits):
                order = conns if n % 2 == 0 else conns[::-1]  # neither always goes first
                for conn in order:
                    signal_edit(conn, names, n, revisions)
                time.sleep(args.gap)
            for spent, pid, at in zip(rounds, pids, before, strict=True):
                spent.append((cpu_seconds(pid) - at) * 1000 / args.edits)
        for conn in conns:
            conn.close()  # its thread ends, and so counts in the profile
        time.sleep(0.5)
    finally:
        for child in children:
            child.terminate()
            child.wait(30)
    what = "signed signals" if args.signed else "hints, the GET from memory"
    figures = [Figure(f"ours, micro ({what})", args.edits, rounds[0], idle[0])]
    if args.against:
        figures.append(Figure(f"sidecar of {args.against}", args.edits, rounds[1], idle[1]))
    if args.profile:
        print_profile(work / "sidecar-0" / "sidecar.pstats", args.edits * args.rounds, args.top)
    return figures


def signal_edit(
    conn: http.client.HTTPConnection, names: list[str], n: int, revisions: Any = None
) -> None:
    """Send the operator's signal for edit ``n`` (signed with ``revisions``, the
    operator's ``SignedRevisions``, when given); return once the sidecar serves it."""
    name = edited(names, n)
    revision = revision_of(name, n)
    if revisions is not None:
        body = signed_body(revisions, name, n)
    else:
        body = signals.encode_signal([(name, revision)])
    conn.request("POST", signals.SIGNAL_PATH, body, {"Content-Type": "application/json"})
    answer = signals.parse_signal_response(conn.getresponse().read())
    if answer.get(name) != revision:
        raise AssertionError(f"edit {n}: the sidecar serves {answer}, not {revision}")


# -- cluster mode: one of each against the real API server -------------------------------


def start_sidecar(ours: Any, profile_out: Path | None, tree: Path | None) -> None:
    """Start ``ours`` (a SidecarProcess): plain, under the profiler, or on another
    checkout's sidecar and contract (``tree``)."""
    from prompt_cluster.testing import start_process, wait_for

    if profile_out is None and tree is None:
        ours.start()
        return
    command = [sys.executable, "-m", "bench.sidecar_cpu", "--sidecar"]
    if profile_out is not None:
        command.append(f"--profile-out={profile_out}")
    env = {"POD_NAME": ours.name, "POD_NAMESPACE": NS, "POD_IP": ours.ip}
    if tree is not None:
        env["PYTHONPATH"] = f"{REPO}:{tree / 'sidecar'}:{tree / 'contract'}"
    flags = [f"--dir={ours.dir}", f"--port={ours.port}", f"--kubeconfig={ours.kubeconfig}"]
    ours.proc = start_process([*command, "--", *flags, "--log-format=json"], env=env, log=ours.log)
    wait_for(ours.ready, timeout=60, interval=0.05, message=f"sidecar {ours.name} ready")


def cluster(args: argparse.Namespace) -> list[Figure]:
    """Ours (and the ``--against`` checkout's) and the watch-based sidecar, one pod
    each, on the same edits through the real operator and API server."""
    from prompt_cluster.api import Api
    from prompt_cluster.cluster import LocalCluster
    from prompt_cluster.testing import (
        SidecarProcess,
        kubectl,
        sidecar_role,
        start_process,
        stop_process,
        wait_for,
    )

    from .common import start_operator

    work = Path(tempfile.mkdtemp(prefix="sidecar-cpu-"))
    lab = LocalCluster(work / "cluster")
    kc = lab.up().kubeconfig
    operator = None
    sidecars: list[Any] = []
    watch = None
    profile_out = work / "sidecar.pstats" if args.profile else None
    try:
        operator = start_operator(kc, work)
        kubectl(kc, "create", "namespace", NS)
        api = Api(kc)
        names = [f"p{i}" for i in range(args.prompts)]
        for name in names:
            api.create_prompt(NS, name, text_of(name, -1))
        wait_for(
            lambda: (
                sum(1 for p in api.prompts(NS) if (p.get("status") or {}).get("revision"))
                == len(names)
            ),
            timeout=300,
            interval=0.2,
            message="every Prompt rendered",
        )
        watch_dir = work / "watch"
        watch_dir.mkdir()
        watch = start_process(
            [sys.executable, "-m", "bench.baseline", str(kc), NS, str(watch_dir)],
            log=work / "watch.log",
        )
        sidecar_kc = sidecar_role(kc, NS, work / "sidecar.kc")
        trees = [None] + ([Path(args.against).resolve()] if args.against else [])
        for i, tree in enumerate(trees):
            sidecars.append(SidecarProcess(kc, sidecar_kc, NS, f"app-{i}", work))
            start_sidecar(sidecars[-1], profile_out if tree is None else None, tree)
        wait_for(
            lambda: len(list(watch_dir.glob("*.txt"))) == len(names),
            timeout=120,
            interval=0.1,
            message="the watch-based sidecar synced",
        )
        pids = [s.proc.pid for s in sidecars] + [watch.pid]
        dirs = [(s.dir, "{}.txt") for s in sidecars] + [(watch_dir, "prompt-{}.txt")]
        time.sleep(2)  # the operator's delivery refresh after the new pods settles
        idle = idle_rate(pids, args.idle)
        rounds: list[list[float]] = [[] for _ in pids]
        for r in range(args.rounds):
            before = [cpu_seconds(p) for p in pids]
            for n in range(r * args.edits, (r + 1) * args.edits):
                edit_and_wait(api, names, n, dirs)
                time.sleep(args.gap)
            for spent, pid, at in zip(rounds, pids, before, strict=True):
                spent.append((cpu_seconds(pid) - at) * 1000 / args.edits)
        if profile_out:
            time.sleep(6)  # kept-alive connections time out: their threads end and count
    finally:
        for sidecar in sidecars:
            sidecar.stop()
        if watch is not None:
            stop_process(watch)
        if operator is not None:
            operator.stop()
        lab.down()
    if profile_out:
        print_profile(profile_out, args.edits * args.rounds, args.top)
    label = "ours (profiled: slower than real)" if profile_out else "ours (prompt-sidecar)"
    figures = [
        Figure(label, args.edits, rounds[0], idle[0]),
        Figure("watch-based (bench/baseline.py)", args.edits, rounds[-1], idle[-1]),
    ]
    if args.against:
        figures.append(Figure(f"sidecar of {args.against}", args.edits, rounds[1], idle[1]))
    return figures


def edit_and_wait(api: Any, names: list[str], n: int, dirs: list[tuple[Path, str]]) -> None:
    """Make edit ``n`` through the API server; return once every file holds its text."""
    from prompt_cluster.testing import wait_for

    name = edited(names, n)
    text = text_of(name, n)
    api.edit_prompt(NS, name, text)
    files = [directory / pattern.format(name) for directory, pattern in dirs]
    wanted = text.encode()
    wait_for(
        lambda: all(_holds(f, wanted) for f in files),
        timeout=30,
        interval=0.005,
        message=f"edit {n} in every file",
    )


def _holds(path: Path, text: bytes) -> bool:
    try:
        return path.read_bytes() == text
    except OSError:
        return False


# -- entry points ------------------------------------------------------------------------


def table(figures: list[Figure]) -> str:
    lines = [
        "| sidecar | edits per round | CPU ms/edit (median) | rounds | idle CPU ms/s |",
        "|---|---:|---:|---|---:|",
    ]
    for f in figures:
        each = ", ".join(f"{ms:.2f}" for ms in f.rounds)
        lines.append(
            f"| {f.name} | {f.edits} | {f.cpu_ms_per_edit:.2f} | {each} | {f.idle_ms_per_s:.2f} |"
        )
    ours = figures[0].cpu_ms_per_edit
    for other in figures[1:]:
        if other.cpu_ms_per_edit > 0:
            lines.append(f"ours / {other.name}: {ours / other.cpu_ms_per_edit:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sidecar_cpu")
    parser.add_argument("--edits", type=int, default=200, help="edits per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds measured apart")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between edits")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--micro", action="store_true", help="no cluster: ConfigMaps in memory")
    parser.add_argument("--profile", action="store_true", help="cProfile our sidecar")
    parser.add_argument(
        "--signed", action="store_true", help="micro: signed signals, written without a GET"
    )
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="also run the sidecar of another checkout (a worktree of main) beside ours, "
        "on the same edits",
    )
    parser.add_argument("--top", type=int, default=30)
    # Internal: the child processes this bench starts.
    parser.add_argument("--micro-sidecar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sidecar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.micro_sidecar:
        return micro_sidecar(args)
    if args.sidecar:
        from prompt_sidecar.main import run

        if args.profile_out:
            return run_profiled(Path(args.profile_out), lambda: run(args.rest))
        return run(args.rest)
    print(
        f"sidecar CPU per edit ({'micro' if args.micro else 'cluster'}): {os.cpu_count()} cores, "
        f"loadavg at start {loadavg()}; {args.rounds} rounds of {args.edits} edits of "
        f"{args.prompts} Prompts, "
        f"{args.gap * 1000:.0f} ms apart",
        flush=True,
    )
    figures = micro(args) if args.micro else cluster(args)
    print()
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
