"""A leader's writes carry a deadline: none is awaited past the moment its Lease
could pass to another replica (runtime/leader.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prompt_operator.runtime.client import Credentials, KubeApi
from prompt_operator.runtime.errors import NotLeading, Unavailable
from prompt_operator.runtime.leader import WRITE_MARGIN, LeaderElector, LeaseConfig
from tests.reliability.report import Observed

CONFIG = LeaseConfig("ns", "lease", "me", lease_duration=15, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_write_budget_ends_a_margin_before_the_lease_could_be_taken() -> None:
    clock = Clock()
    elector = LeaderElector(
        KubeApi(Credentials("http://x", False, {})), CONFIG, on_lost=list, clock=clock
    )
    assert elector.write_budget() == 0.0  # not leading: no writes at all
    elector.leading.set()
    elector._renewed_at = clock.now
    assert elector.write_budget() == CONFIG.lease_duration - WRITE_MARGIN
    clock.now += CONFIG.renew_deadline - 0.01  # the last moment the fence lets a write through
    left = elector.write_budget()
    assert left is not None
    assert abs(left - (CONFIG.lease_duration - CONFIG.renew_deadline - WRITE_MARGIN + 0.01)) < 1e-9
    clock.now += 0.02
    assert elector.write_budget() == 0.0  # past the renew deadline: not valid


@pytest.fixture
def stalling_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that reads each request and never answers (a stalled link)."""
    paths: list[str] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_PATCH(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            paths.append(self.path)
            release.wait(30)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.reliability(
    case="R-leader-write-deadline",
    did="a leader sends a write 1.5 s before its Lease could pass to a standby, over a "
    "link that never answers (client timeout 10 s, as the operator's)",
)
def test_a_write_is_given_up_when_the_lease_could_pass_on(
    stalling_server: tuple[str, list[str]], observed: Observed
) -> None:
    url, paths = stalling_server

    async def write() -> float:
        async with KubeApi(Credentials(url, False, {}), write_budget=lambda: 1.5) as api:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                await api.merge_patch("/api/v1/namespaces/ns/configmaps/x", {"a": 1})
            return time.monotonic() - started

    took = asyncio.run(write())
    observed(
        f"the write gave up after {took:.2f} s (budget 1.5 s; before: the full 10 s); "
        f"the API server was told: {paths[0].split('?', 1)[1]}"
    )
    assert took < 5  # before: 10 s, the client's timeout, past the Lease's expiry
    assert "timeout=1.500s" in paths[0]


def test_no_write_is_sent_without_budget_left() -> None:
    async def write() -> None:
        async with KubeApi(
            Credentials("http://127.0.0.1:9", False, {}), write_budget=lambda: 0.0
        ) as api:
            await api.merge_patch("/api/v1/namespaces/ns/configmaps/x", {"a": 1})

    with pytest.raises(NotLeading, match="Lease may expire"):
        asyncio.run(write())
