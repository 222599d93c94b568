"""What a pod's answer to a signal can do to the operator: a subscribed pod answers
the signal itself, so here a local HTTP server poses as one (a Pod object with its
address) and answers as an attacker would. The operator reads at most 64 KiB of
an answer, keeps only what it asked about, follows no redirect, and never logs an
answer's body."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    make_pod,
    next_loopback_ip,
    prompt_manifest,
    wait_for,
)
from tests.reliability.report import Observed

from .helpers import apply, wait_prompt

pytestmark = pytest.mark.usefixtures("operator")

Answer = Callable[[BaseHTTPRequestHandler], None]


class FakePod:
    """An HTTP server on a loopback address of its own that records every request."""

    def __init__(self, answer: Answer) -> None:
        self.ip = next_loopback_ip()
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.requests.append((self.command, self.path))
                with contextlib.suppress(OSError):  # the operator hung up, as it should
                    answer(self)

            do_GET = do_POST = do_PUT = _any

        self.server = ThreadingHTTPServer((self.ip, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_pods() -> Iterator[Callable[[Answer], FakePod]]:
    made: list[FakePod] = []

    def make(answer: Answer) -> FakePod:
        made.append(FakePod(answer))
        return made[-1]

    yield make
    for pod in made:
        pod.close()


def subscribe(kubeconfig: Path, namespace: str, name: str, pod: FakePod) -> None:
    make_pod(
        kubeconfig,
        namespace,
        name,
        pod.ip,
        labels={"prompts.dev/subscribe": "true"},
        annotations={"prompts.dev/port": str(pod.port)},
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


HUGE_NAMES = 1_000_000


@functools.cache
def huge_body() -> bytes:
    """An answer naming a million Prompts (about 36 MB), built once."""
    items = b"".join(b'"p%07d":"r",' % i for i in range(HUGE_NAMES))
    return b'{"pod":"x","served":{' + items + b'"end":"r"}}'


def huge_answer(handler: BaseHTTPRequestHandler) -> None:
    """200 with the huge answer, as fast as loopback takes it."""
    body = huge_body()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.slow
@pytest.mark.reliability(
    case="S-pod answer size",
    did="a subscribed pod answers every signal with 200 and a body naming 1,000,000 "
    "Prompts (36 MB); three edits of a Prompt it selects, each signalled and retried",
)
def test_a_huge_answer_does_not_grow_the_operator(
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    fake_pods: Callable[[Answer], FakePod],
    observed: Observed,
) -> None:
    assert operator.proc is not None
    huge_body()
    pod = fake_pods(huge_answer)
    apply(kubeconfig, prompt_manifest("p", "v0"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    before = rss_mib(operator.proc.pid)
    peak = before
    subscribe(kubeconfig, namespace, "attacker", pod)
    after = before
    try:
        for i in range(3):
            seen = len(pod.requests)
            apply(kubeconfig, prompt_manifest("p", f"v{i + 1}"), namespace)

            def answered(seen: int = seen) -> bool:
                nonlocal peak
                peak = max(peak, rss_mib(operator.proc.pid))  # type: ignore[union-attr]
                return len(pod.requests) > seen

            wait_for(answered, timeout=60, message="the operator signals the pod")
        wait_prompt(kubeconfig, namespace, "p")
        after = rss_mib(operator.proc.pid)
        peak = max(peak, after)
    finally:
        observed(
            f"{len(pod.requests)} signals answered with 36 MB each; operator RSS "
            f"{before:.0f} MiB before, {after:.0f} MiB after, {peak:.0f} MiB at most "
            "(its limit: 256 MiB)"
        )
    assert peak - before < 24, (before, peak, after)


def json_answer(status: int, body: bytes, **headers: str) -> Answer:
    """Every signal is answered with ``status``, a JSON ``body`` and ``headers``."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def redirect_to(target: str, status: int, marker: str) -> Answer:
    body = f'{{"served": {{"p": "{marker}"}}, "note": "{marker}"}}'.encode()
    return json_answer(status, body, Location=target)


@pytest.mark.reliability(
    case="S-pod answer redirect",
    did="subscribed pods answer signals with 307 (to another address, path and query), "
    "302 (to an internal path) and 500, each with a marker in the body",
)
def test_redirects_are_not_followed_and_answers_not_logged(
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    fake_pods: Callable[[Answer], FakePod],
    observed: Observed,
) -> None:
    def record(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    elsewhere = fake_pods(record)
    marker = "ANSWER-" + os.urandom(6).hex()
    pods = {
        "redirect-307": fake_pods(
            redirect_to(f"http://{elsewhere.ip}:{elsewhere.port}/steal?x=1", 307, marker)
        ),
        "redirect-302": fake_pods(
            redirect_to(f"http://{elsewhere.ip}:{elsewhere.port}/internal", 302, marker)
        ),
        "error-500": fake_pods(redirect_to("/", 500, marker)),
    }
    apply(kubeconfig, prompt_manifest("p", "v0"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    for name, pod in pods.items():
        subscribe(kubeconfig, namespace, name, pod)
    apply(kubeconfig, prompt_manifest("p", "v1"), namespace)
    wait_for(
        lambda: all(len(p.requests) >= 2 for p in pods.values()),
        timeout=30,
        message="every pod signalled and retried",
    )
    prompt = wait_prompt(kubeconfig, namespace, "p")
    assert elsewhere.requests == []
    log = operator.log.read_text(errors="replace")
    assert marker not in log
    delivery = prompt["status"].get("delivery") or {}
    assert delivery.get("updated") == 0, delivery  # nobody's answer counted
    observed(
        "signals per pod: "
        + ", ".join(f"{n}: {len(p.requests)}" for n, p in pods.items())
        + f"; requests that reached the redirect target: {len(elsewhere.requests)}; "
        f"the answer's marker in the operator log: no; status.delivery {json.dumps(delivery)}"
    )


def serves(revision: str) -> Answer:
    return json_answer(200, json.dumps({"pod": "x", "served": {"p": revision}}).encode())


@pytest.mark.reliability(
    case="R-served-revision-long",
    did="subscribed pods answer every signal with 200, saying they serve a revision of "
    "60,000 characters, of 129 characters, and one outside the hash alphabet ('../é')",
)
def test_a_served_revision_no_sidecar_could_serve_is_a_failed_answer(
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    fake_pods: Callable[[Answer], FakePod],
    observed: Observed,
) -> None:
    pods = {
        "long-60000": fake_pods(serves("a" * 60_000)),
        "long-129": fake_pods(serves("a" * 129)),
        "alphabet": fake_pods(serves("../\u00e9")),
    }
    # The operator is the session's: only what it logged during this test counts.
    start = operator.log.stat().st_size if operator.log.exists() else 0
    apply(kubeconfig, prompt_manifest("p", "v0"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    for name, pod in pods.items():
        subscribe(kubeconfig, namespace, name, pod)
    apply(kubeconfig, prompt_manifest("p", "v1"), namespace)

    def refused(name: str) -> bool:
        return any(
            record.get("message", "").startswith(f"Pod {namespace}/{name}: unusable answer")
            for record in operator.log_records()
        )

    # Refused answers are failed ones: each pod is logged and asked again.
    wait_for(
        lambda: all(refused(n) and len(p.requests) >= 2 for n, p in pods.items()),
        timeout=30,
        message="every answer refused and the signal retried",
    )
    prompt = wait_prompt(kubeconfig, namespace, "p")
    delivery = prompt["status"].get("delivery") or {}
    log = operator.log.read_bytes()[start:].decode(errors="replace")
    assert "a" * 129 not in log and "\u00e9" not in log  # the answer is still never logged
    observed(
        "each answer refused as not a revision and the signal retried ("
        + ", ".join(f"{n}: {len(p.requests)} signals" for n, p in pods.items())
        + f"); status.delivery {json.dumps(delivery)}"
    )
