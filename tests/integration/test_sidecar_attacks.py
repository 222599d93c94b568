"""What anyone on the pod network can make a sidecar do through its signal port.

Slow senders and floods of connections must not fail the pod's probes (they have
a listener of their own, and every request a deadline); big headers and bodies
must not take the sidecar past its 64 MiB limit; and a forged signal costs at
most one rate-limited GET per name never served, and a LIST at most once per
``EARLY_RESYNC_SECONDS`` (a backlog the rate limit cannot drain brings the
resync forward).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from prompt_cluster.testing import (
    SidecarProcess,
    audit_events,
    audit_line_count,
    prompt_manifest,
    wait_for,
)
from prompt_contract import objects, signals
from prompt_sidecar.planning import EARLY_RESYNC_SECONDS
from tests.reliability.report import Observed

from .helpers import SidecarFactory, apply, metric, post_signal, wait_prompt

pytestmark = pytest.mark.usefixtures("operator")

SIDECAR_LIMIT_MIB = 64  # the injected sidecar's memory limit


def proc_status(sidecar: SidecarProcess, field: str) -> float:
    """A /proc/<pid>/status figure of the sidecar process, in MiB."""
    assert sidecar.proc is not None
    for line in Path(f"/proc/{sidecar.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def probe(sidecar: SidecarProcess, port: int, path: str = "/readyz") -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{sidecar.ip}:{port}{path}", timeout=2) as resp:
            code: int | str = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except OSError as exc:
        code = type(exc).__name__
    return code, time.monotonic() - started


def ready_app(kubeconfig: Path, namespace: str, sidecars: SidecarFactory) -> SidecarProcess:
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    return sidecars("app")


@pytest.mark.slow
@pytest.mark.reliability(
    case="S-sidecar slow senders",
    did="40 clients hold the signal port's connections, sending one header byte "
    "every 0.3 s (reconnecting when cut off) for 8 s; /readyz and /healthz probed "
    "on the probe port meanwhile",
)
def test_probes_answer_while_slow_senders_hold_the_signal_port(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, observed: Observed
) -> None:
    app = ready_app(kubeconfig, namespace, sidecars)
    stop = threading.Event()
    cut_off: Counter[str] = Counter()
    held_for: list[float] = []

    def slow_sender() -> None:
        while not stop.is_set():
            sock = socket.create_connection((app.ip, app.port), timeout=5)
            opened = time.monotonic()
            try:
                sock.sendall(b"POST /v1/signal HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set():
                    sock.sendall(b"X")
                    time.sleep(0.3)
            except OSError:
                cut_off["cut off"] += 1
                held_for.append(time.monotonic() - opened)
            finally:
                sock.close()

    threads = [threading.Thread(target=slow_sender) for _ in range(40)]
    for thread in threads:
        thread.start()
    # The attack works: the signal port has no slot left (503 busy, or no answer).
    wait_for(lambda: probe(app, app.port)[0] != 200, timeout=10, message="slots taken")
    answers: list[tuple[int | str, float]] = []
    signal_port_readyz: Counter[int | str] = Counter()
    ends = time.monotonic() + 8
    try:
        while time.monotonic() < ends:
            answers.append(probe(app, objects.DEFAULT_PROBE_PORT, "/readyz"))
            answers.append(probe(app, objects.DEFAULT_PROBE_PORT, "/healthz"))
            signal_port_readyz[probe(app, app.port)[0]] += 1
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    codes = Counter(code for code, _ in answers)
    slowest = max(seconds for _, seconds in answers)
    observed(
        f"{len(answers)} probes on the probe port: {dict(codes)}, slowest {slowest:.3f} s; "
        f"/readyz on the signal port meanwhile: {dict(signal_port_readyz)}; slow "
        f"connections cut off {cut_off['cut off']} times, after at most "
        f"{max(held_for, default=0):.1f} s"
    )
    assert codes == Counter({200: len(answers)})
    assert slowest < 1.0
    assert held_for and max(held_for) < 8  # the whole-request deadline cut them off


def flood(app: SidecarProcess, request: bytes, clients: int) -> Counter[int | str]:
    """``clients`` connections send ``request`` at once; the status lines they got."""
    answers: Counter[int | str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def send() -> None:
        code: int | str
        try:
            sock = socket.create_connection((app.ip, app.port), timeout=10)
            start.wait()
            try:
                sock.sendall(request)
                status = sock.recv(64)
                code = int(status.split()[1]) if status.startswith(b"HTTP/") else "closed"
            finally:
                sock.close()
        except OSError as exc:
            code = type(exc).__name__
        with lock:
            answers[code] += 1

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.slow
@pytest.mark.reliability(
    case="S-sidecar headers",
    did="32 connections at once, each a signal request with 99 header lines of 64 KB",
)
def test_big_headers_keep_the_sidecar_under_its_limit(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, observed: Observed
) -> None:
    app = ready_app(kubeconfig, namespace, sidecars)
    before = proc_status(app, "VmRSS")
    line = b"X-Pad: " + b"a" * 65_000 + b"\r\n"
    request = b"POST /v1/signal HTTP/1.1\r\nHost: x\r\n" + line * 99 + b"\r\n"
    answers = flood(app, request, 32)
    peak = proc_status(app, "VmHWM")
    observed(
        f"answers {dict(answers)}; RSS {before:.0f} MiB before, peak {peak:.0f} MiB "
        f"(limit {SIDECAR_LIMIT_MIB} MiB)"
    )
    assert app.ready()
    assert peak < SIDECAR_LIMIT_MIB


@pytest.mark.slow
@pytest.mark.reliability(
    case="S-sidecar bodies [{shape}]",
    did="32 connections at once, each a well-formed signal: {shape}",
)
@pytest.mark.parametrize(
    "shape",
    [
        "1 MiB of short names",
        "128 KiB of 253-character names (the most bytes taken)",
        "2,000 short names (the most names taken)",
    ],
)
def test_big_bodies_keep_the_sidecar_under_its_limit(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, shape: str, observed: Observed
) -> None:
    app = ready_app(kubeconfig, namespace, sidecars)
    before = proc_status(app, "VmRSS")
    if shape.startswith("128"):
        pairs = [(f"{i:05d}" + "n" * 248, "r" * 16) for i in range(2000)]
        while len(signals.encode_signal(pairs)) > signals.MAX_SIGNAL_BYTES:
            pairs.pop()
    elif shape.startswith("2,000"):
        pairs = [(f"n{i}", "r" * 16) for i in range(signals.MAX_SIGNAL_PAIRS)]
    else:
        pairs = [(f"n{i}", "r") for i in range(32_000)]
    body = signals.encode_signal(pairs)
    head = (
        f"POST /v1/signal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answers = flood(app, head + body, 32)
    peak = proc_status(app, "VmHWM")
    observed(
        f"{len(body):,} bytes per body; answers {dict(answers)}; "
        f"RSS {before:.0f} MiB before, peak {peak:.0f} MiB (limit {SIDECAR_LIMIT_MIB} MiB)"
    )
    assert app.ready()
    assert peak < SIDECAR_LIMIT_MIB


def configmap_reads(audit_log: Path, since: int, user: str) -> Counter[str]:
    """The user's finished get and list requests for ConfigMaps after line ``since``."""
    counts: Counter[str] = Counter()
    for event in audit_events(audit_log, since):
        if (
            event.get("user", {}).get("username") == user
            and event.get("stage") == "ResponseComplete"
            and (event.get("objectRef") or {}).get("resource") == "configmaps"
            and event.get("verb") in ("get", "list")
        ):
            counts[str(event["verb"])] += 1
    return counts


@pytest.mark.reliability(
    case="S-signal forged names",
    did="300 forged signals in a row, each naming 8 Prompts the sidecar never served "
    "(half with a revision, half with an empty one), counted per pod in the audit log",
)
def test_forged_names_cost_gets_and_rarely_a_list(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    audit_log: Path,
    observed: Observed,
) -> None:
    app = ready_app(kubeconfig, namespace, sidecars)
    user = f"system:serviceaccount:{namespace}:prompt-sidecar"
    since = audit_line_count(audit_log)
    reads_before = metric(app.url, "prompt_sidecar_rereads_total")
    started = time.monotonic()
    names = 0
    for i in range(300):
        pairs = [(f"forged-{i}-{j}", "" if j % 2 else f"rev{i}") for j in range(8)]
        names += sum(1 for _, rev in pairs if rev)
        status, _ = post_signal(app, signals.encode_signal(pairs))
        assert status == 200
    took = time.monotonic() - started
    # Settle: the rate limit may still be reading what was signalled.
    last = [-1.0, time.monotonic()]

    def settled() -> bool:
        value = metric(app.url, "prompt_sidecar_rereads_total")
        if value != last[0]:
            last[:] = [value, time.monotonic()]
        return time.monotonic() - last[1] > 1.5

    wait_for(settled, timeout=60, message="re-reads settle")
    reads = metric(app.url, "prompt_sidecar_rereads_total") - reads_before

    def audited() -> Counter[str] | None:
        found = configmap_reads(audit_log, since, user)
        return found if sum(found.values()) >= reads else None

    counts = wait_for(audited, timeout=30, message="the audit log has the sidecar's reads")
    observed(
        f"300 signals ({names} names with a revision, {names} with an empty one) in "
        f"{took:.1f} s: {counts['get']} GETs, {counts['list']} LISTs by this pod"
    )
    # The flood starts right after the initial list: an early resync may come
    # at most once per interval since then.
    assert counts["list"] <= int((time.monotonic() - started) / EARLY_RESYNC_SECONDS)
    assert counts["get"] <= names  # at most one per name never served
    assert counts["get"] <= 40 + 20 * (time.monotonic() - started) + 2  # the rate limit
    assert app.file("p") == b"genuine"
