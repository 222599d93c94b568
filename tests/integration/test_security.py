"""Requests that did not come from us, and what the endpoints give away.

A sidecar's signal endpoint is reachable by anything on the pod network, so a
signal is only ever a hint to re-read the API server: whatever it says, the
file changes only to what the API server holds, and a flood costs at most the
rate-limited re-reads. Health and metrics endpoints say how things are, never
what a prompt says.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from prompt_cluster.testing import OperatorProcess, prompt_manifest, wait_for
from prompt_contract import signals
from tests.reliability.report import Observed

from .helpers import SidecarFactory, apply, get, metric, post_signal, wait_prompt

pytestmark = pytest.mark.usefixtures("operator")


def file_identity(path: Path) -> tuple[int, int, bytes]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


@pytest.mark.reliability(
    case="S-signal forged",
    did="POST signals naming a forged revision, an unknown Prompt, garbage bytes, wrong "
    "shapes, a wrong content type and a body over 128 KiB",
)
def test_forged_and_malformed_signals_change_nothing(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, observed: Observed
) -> None:
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app = sidecars("app")
    path = app.dir / "p.txt"
    before = file_identity(path)
    forged = {
        "prompts": [{"name": "p", "revision": "0000forged"}, {"name": "nope", "revision": "x"}]
    }
    status, body = post_signal(app, json.dumps(forged).encode())
    assert status == 200
    prompt = get(kubeconfig, namespace, "prompt", "p")
    assert prompt is not None
    assert json.loads(body)["served"] == {"p": prompt["status"]["revision"], "nope": None}
    answers = {
        "garbage bytes": post_signal(app, b"\xff\xfe garbage")[0],
        "prompts not a list": post_signal(app, b'{"prompts": "all"}')[0],
        "no revision": post_signal(app, b'{"prompts": [{"name": "p"}]}')[0],
        "text/plain": post_signal(app, b"{}", ctype="text/plain")[0],
        "128 KiB + 1": post_signal(app, b"x" * (signals.MAX_SIGNAL_BYTES + 1))[0],
    }
    assert answers == {
        "garbage bytes": 400,
        "prompts not a list": 400,
        "no revision": 400,
        "text/plain": 415,
        "128 KiB + 1": 413,
    }
    assert app.ready()  # still alive and well
    assert file_identity(path) == before
    assert sorted(p.name for p in app.dir.iterdir()) == [".prompts", "p.txt"]
    observed(
        "forged revision: 200 and the served revision, file untouched; "
        + ", ".join(f"{what}: {code}" for what, code in answers.items())
    )


@pytest.mark.slow
@pytest.mark.reliability(
    case="S-signal flood",
    did="48 clients send forged signals (unknown Prompts, forged revisions, garbage) as "
    "fast as they can for 3 s, then a real edit",
)
def test_a_flood_of_forged_signals_costs_only_rate_limited_reads(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, observed: Observed
) -> None:
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app = sidecars("app")
    path = app.dir / "p.txt"
    before = file_identity(path)
    reads_before = metric(app.url, "prompt_sidecar_rereads_total")
    bodies = (
        [
            json.dumps({"prompts": [{"name": f"nope-{i}", "revision": "x"}]}).encode()
            for i in range(50)
        ]
        + [
            json.dumps({"prompts": [{"name": "p", "revision": f"forged{i}"}]}).encode()
            for i in range(50)
        ]
        + [b"\x00\xff" * 100, b'{"prompts": [' * 1000]
    )
    answers: Counter[int | str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def flood(offset: int) -> None:
        sent = 0
        while time.monotonic() < stop:
            body = bodies[(offset + sent) % len(bodies)]
            conn = http.client.HTTPConnection(app.ip, app.port, timeout=5)
            try:
                conn.request(
                    "POST", "/v1/signal", body=body, headers={"Content-Type": "application/json"}
                )
                code: int | str = conn.getresponse().status
            except OSError as exc:
                code = type(exc).__name__
            finally:
                conn.close()
            with lock:
                answers[code] += 1
            sent += 1

    started = time.monotonic()
    threads = [threading.Thread(target=flood, args=(i * 7,)) for i in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    reads = metric(app.url, "prompt_sidecar_rereads_total") - reads_before
    sent = sum(answers.values())
    assert file_identity(path) == before
    assert app.ready()
    # The bucket: 40 at once, then 20 a second.
    assert reads <= 40 + 20 * took + 2, (reads, took)
    apply(kubeconfig, prompt_manifest("p", "a real edit"), namespace)
    edited = time.monotonic()
    wait_for(lambda: path.read_bytes() == b"a real edit", timeout=30)
    observed(
        f"{sent:,} signals in {took:.1f} s ({sent / took:,.0f}/s; answers "
        + ", ".join(f"{code}: {n:,}" for code, n in sorted(answers.items(), key=str))
        + f"); {reads:.0f} re-reads of the API server; the file untouched; a real edit "
        f"afterwards in the file {time.monotonic() - edited:.2f} s later"
    )


@pytest.mark.reliability(
    case="S-endpoints",
    did="serve a Prompt with a marker text, then read the operator's /healthz and /metrics "
    "and the sidecar's /healthz, /readyz and /metrics",
)
def test_health_and_metrics_never_show_prompt_text(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    operator: OperatorProcess,
    observed: Observed,
) -> None:
    marker = "MARKER-" + os.urandom(8).hex()
    apply(
        kubeconfig,
        prompt_manifest("p", f"The secret recipe is {marker}. Hello {{user}}", variables=["user"]),
        namespace,
    )
    wait_prompt(kubeconfig, namespace, "p")
    app = sidecars("app")
    assert marker in (app.file("p") or b"").decode()
    assert operator.metrics_port, "the session operator serves metrics"
    urls = [
        f"http://127.0.0.1:{operator.health_port}/healthz",
        f"http://127.0.0.1:{operator.metrics_port}/metrics",
        app.url + "/healthz",
        app.url + "/readyz",
        app.url + "/metrics",
    ]
    sizes = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
        assert marker not in body and "secret recipe" not in body, url
        sizes[url.rsplit(":", 1)[-1]] = len(body)
    observed(
        "the marker text in none of "
        + ", ".join(f"{where} ({n:,} bytes)" for where, n in sizes.items())
    )
