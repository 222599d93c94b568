"""The signal transport against real local HTTP servers (asyncio, on loopback):
what it sends, when it reuses a connection, and what it refuses to read."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from prompt_operator.runtime.signal_transport import (
    SignalTransport,
    TimedOut,
    TransportError,
    parse_head,
    split_address,
)

LIMIT = 1000
PATH = "/v1/signal"
HANG = b"hang"  # an answer that never comes: the server waits for the client to give up
HANG_UP = b""  # no answer: the server closes the connection


def ok(body: bytes = b'{"pod":"x","served":{}}', **headers: str) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Pod:
    """A local server that reads HTTP/1.1 requests on keep-alive connections and
    answers each with what ``answer(connection number, request number on it)`` gives."""

    def __init__(self, answer: Callable[[int, int], bytes], host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.host = host
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0
        self.ended = 0  # connections closed, by either side

    async def __aenter__(self) -> Pod:
        self.server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        try:
            for nth in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"(?i)content-length: *(\d+)", head)
                body = await reader.readexactly(int(found.group(1)) if found else 0)
                self.requests.append((head, body))
                reply = self.answer(number, nth)
                if reply == HANG:
                    await reader.read()  # until the client hangs up
                if reply in (HANG, HANG_UP):
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.ended += 1


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (yielding to the loop) until ``condition()``, or fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def run(scenario: Callable[[SignalTransport], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        transport = SignalTransport(
            timeout=options.pop("timeout", 2.0),
            connect_timeout=1.0,
            max_answer=LIMIT,
            **options,
        )
        try:
            await scenario(transport)
        finally:
            await transport.close()

    asyncio.run(main())


def test_the_request_is_a_json_post_with_a_length_and_the_answer_comes_back() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok(b'{"served":{"p":"r1"}}')) as pod:
            status, body = await transport.post(pod.address, PATH, b'{"prompts":[]}')
            assert (status, body) == (200, b'{"served":{"p":"r1"}}')
            head, sent = pod.requests[0]
            lines = head.decode().split("\r\n")
            assert lines[0] == f"POST {PATH} HTTP/1.1"
            assert f"Host: {pod.address}" in lines
            assert "Content-Type: application/json" in lines
            assert "Content-Length: 14" in lines
            assert sent == b'{"prompts":[]}'

    run(scenario)


def test_a_second_signal_to_a_pod_reuses_its_connection() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok()) as pod:
            for _ in range(3):
                assert (await transport.post(pod.address, PATH, b"{}"))[0] == 200
            assert (pod.connections, len(pod.requests)) == (1, 3)

    run(scenario)


def test_a_connection_the_pod_dropped_while_idle_is_retried_once_on_a_fresh_one() -> None:
    # The first connection answers once, then closes on the next request without a
    # byte of answer, as a sidecar does when its idle deadline hits just then.
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: HANG_UP if (c, n) == (0, 1) else ok()) as pod:
            await transport.post(pod.address, PATH, b"{}")
            status, _ = await transport.post(pod.address, PATH, b"{}")
            assert status == 200
            assert (pod.connections, len(pod.requests)) == (2, 3)

    run(scenario)


def test_a_fresh_connection_that_closes_without_an_answer_is_not_retried() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: HANG_UP) as pod:
            with pytest.raises(TransportError):
                await transport.post(pod.address, PATH, b"{}")
            assert pod.connections == 1

    run(scenario)


def test_no_answer_within_the_timeout_raises_and_drops_the_connection() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: HANG) as pod:
            with pytest.raises(TimedOut):
                await transport.post(pod.address, PATH, b"{}")
            await until(lambda: pod.ended == 1)  # the client hung up
            assert len(pod.requests) == 1  # a timeout is not retried

    run(scenario, timeout=0.3)


def test_an_oversized_answer_is_read_only_up_to_the_bound_and_its_connection_closed() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok(b"x" * 2_000_000)) as pod:
            status, body = await transport.post(pod.address, PATH, b"{}")
            assert (status, len(body)) == (200, LIMIT + 1)
            await until(lambda: pod.ended == 1)  # closed, not drained
            await transport.post(pod.address, PATH, b"{}")
            assert pod.connections == 2

    run(scenario)


def test_a_redirect_is_a_status_and_never_followed() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok()) as elsewhere:
            target = f"http://{elsewhere.address}/steal"
            answer = ok(b"{}", Location=target).replace(b"200 OK", b"307 Temporary Redirect")
            async with Pod(lambda c, n: answer) as pod:
                assert await transport.post(pod.address, PATH, b"{}") == (307, b"{}")
            assert elsewhere.requests == []

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Filler: y\r\n" * 2000 + b"\r\n",
    ],
    ids=["no-length", "chunked", "two-lengths", "not-http", "huge-head"],
)
def test_an_answer_without_one_sane_length_is_refused(answer: bytes) -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: answer) as pod:
            with pytest.raises(TransportError):
                await transport.post(pod.address, PATH, b"{}")

    run(scenario)


def test_a_refused_connection_raises_transport_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        async def scenario(transport: SignalTransport) -> None:
            with pytest.raises(TransportError) as raised:
                await transport.post(f"127.0.0.1:{port}", PATH, b"{}")
            assert isinstance(raised.value, OSError)

        run(scenario)


def test_idle_connections_are_bounded_in_all_and_closed_on_close() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with (
            Pod(lambda c, n: ok()) as a,
            Pod(lambda c, n: ok()) as b,
            Pod(lambda c, n: ok()) as c,
        ):
            for pod in (a, b, c):
                await transport.post(pod.address, PATH, b"{}")
            await until(lambda: a.ended == 1)  # the oldest idle one went
            assert (b.ended, c.ended) == (0, 0)
            await transport.close()
            await until(lambda: (b.ended, c.ended) == (1, 1))
            with pytest.raises(TransportError):
                await transport.post(a.address, PATH, b"{}")

    run(scenario, max_idle=2)


def test_connections_send_at_once_without_nagle() -> None:
    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok()) as pod:
            await transport.post(pod.address, PATH, b"{}")
            # No public way to see the socket: the idle pool is the one place it is.
            (conn,) = transport._idle.values()
            assert conn.transport is not None
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    run(scenario)


def test_a_connection_idle_past_its_time_is_closed_not_reused() -> None:
    async def scenario(transport: SignalTransport) -> None:
        loop = asyncio.get_running_loop()
        async with Pod(lambda c, n: ok()) as a, Pod(lambda c, n: ok()) as b:
            await transport.post(a.address, PATH, b"{}")
            since = loop.time()
            await until(lambda: loop.time() - since > 0.1)
            await transport.post(b.address, PATH, b"{}")  # keeping b's sweeps a's away
            await until(lambda: a.ended == 1)
            await transport.post(a.address, PATH, b"{}")
            assert (a.connections, b.ended) == (2, 0)

    run(scenario, idle_seconds=0.05)


def test_an_ipv6_address_is_reached_as_a_pod_address_writes_it() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")

    async def scenario(transport: SignalTransport) -> None:
        async with Pod(lambda c, n: ok(), host="::1") as pod:
            assert (await transport.post(pod.address, PATH, b"{}"))[0] == 200
            assert f"Host: [::1]:{pod.port}".encode() in pod.requests[0][0]

    run(scenario)


def test_the_head_of_an_answer_is_parsed_strictly() -> None:
    head = parse_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 7")
    assert (head.status, head.length, head.keep_alive) == (503, 7, True)
    assert not parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0").keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0").keep_alive
    assert parse_head(b"HTTP/1.1 204 No Content").length == 0
    for bad in (
        b"HTTP/1.1 100 Continue",
        b"HTTP/2 200",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3",
        b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0",
    ):
        with pytest.raises(TransportError):
            parse_head(bad)


def test_addresses_are_ip_literals_with_a_port() -> None:
    assert split_address("10.1.2.3:8080") == ("10.1.2.3", 8080)
    assert split_address("[fd00::1]:8080") == ("fd00::1", 8080)
    for bad in ("pod.example:8080", "10.1.2.3", "10.1.2.3:0", "[fd00::1]", ":80"):
        with pytest.raises(TransportError):
            split_address(bad)
