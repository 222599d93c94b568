"""The sidecar's HTTP machinery that a signal passes through: its own header
parser (checked against the email package http.server uses), the deadlines
thread, and ``Expect: 100-continue`` with answers written through a buffer."""

from __future__ import annotations

import http.client
import io
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompt_contract import signals
from prompt_contract.selector import parse_selector
from prompt_contract.writer import PromptFiles
from prompt_sidecar.headers import MAX_HEADER_LINES, parse_header_block, read_header_block
from prompt_sidecar.server import Deadlines, HeaderBudget, SidecarServer
from prompt_sidecar.sync import Syncer

from .support import FakeApi, configmap, serving

NAMES = ("Content-Type", "content-length", "CONNECTION", "Expect", "X", "Host", "")

LINES = st.sampled_from(
    [
        b"Content-Type: application/json\r\n",
        b"content-type:text/plain\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length:\t 12 \r\n",
        b"CONTENT-LENGTH: 7\r\n",
        b"Connection: close\r\n",
        b"Connection: Keep-Alive\r\n",
        b"Expect: 100-continue\r\n",
        b"X: \xff\xfe\r\n",
        b"X:\r\n",
        b": no name\r\n",
        b"Host: 127.0.0.1:8470\n",
        b" folded onto the field before\r\n",
        b"\tfolded with a tab\r\n",
        b"no colon here\r\n",
        b"Bad Name: with a blank\r\n",
        b"Host : blank before the colon\r\n",
        b"From someone\r\n",
        b"X: a\rHost: after a bare CR\r\n",
        b"\r\n",
        b"Host: h\x85after NEL\r\n",
    ]
)


def _email_headers(block: bytes) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(block))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(LINES, max_size=8))
def test_header_fields_read_as_the_email_package_reads_them(lines: list[bytes]) -> None:
    block = b"".join(lines) + b"\r\n"
    ours = parse_header_block(read_header_block(HeaderBudget(io.BytesIO(block)).readline))
    theirs = _email_headers(block)
    for name in NAMES:
        assert ours.get(name) == theirs.get(name), (block, name)


def test_a_header_block_keeps_http_clients_bounds() -> None:
    many = b"X: 1\r\n" * (MAX_HEADER_LINES + 1) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        read_header_block(HeaderBudget(io.BytesIO(many)).readline)
    huge = b"X: " + b"y" * 70000 + b"\r\n\r\n"
    with pytest.raises(http.client.LineTooLong):
        read_header_block(HeaderBudget(io.BytesIO(huge)).readline)
    assert read_header_block(HeaderBudget(io.BytesIO(b"A: 1\nB: 2\n\nbody")).readline) == [
        b"A: 1\n",
        b"B: 2\n",
        b"\n",
    ]


# -- the deadlines thread --------------------------------------------------------------


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def _pair(made: list[tuple[socket.socket, socket.socket]]) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    b.settimeout(5)
    made.append((a, b))
    return a, b


def test_an_earlier_deadline_wakes_the_thread_sleeping_for_a_later_one(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    deadlines = Deadlines()
    late, _ = _pair(pairs)
    deadlines.arm(late, 60)  # the thread now sleeps for a minute
    soon, peer = _pair(pairs)
    deadlines.arm(soon, 0.05)
    assert peer.recv(1) == b""  # shut within the 5 s timeout, not after a minute


def test_a_connection_rearmed_for_its_next_request_is_not_shut_at_the_old_deadline(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    deadlines = Deadlines()
    kept, kept_peer = _pair(pairs)
    deadlines.arm(kept, 0.05)
    deadlines.arm(kept, 60)  # its next request began
    other, other_peer = _pair(pairs)
    deadlines.arm(other, 0.2)
    assert other_peer.recv(1) == b""  # the thread has passed both early deadlines
    kept_peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        kept_peer.recv(1)  # still open: no EOF


# -- requests over a socket ------------------------------------------------------------


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarServer]:
    api = FakeApi()
    api.put(configmap("p", "one", "r1"))
    api.put(configmap("p", "two", "r2"))
    syncer = Syncer(
        api,  # type: ignore[arg-type]
        PromptFiles(str(tmp_path_factory.mktemp("server") / "prompts")),
        "ns",
        parse_selector(""),
    )
    syncer.start()
    assert syncer.ready.wait(5)
    with serving(syncer, "app") as running:
        yield running
    syncer.stop()


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = http.client.parse_headers(io.BytesIO(head.split(b"\r\n", 1)[1] + b"\r\n\r\n"))
    length = int(fields.get("Content-Length") or 0)
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: SidecarServer) -> None:
    body = signals.encode_signal([("p", "r2")])
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(
            b"POST /v1/signal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b'"p":"r2"' in answer


def test_keep_alive_and_connection_close_are_honoured(server: SidecarServer) -> None:
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        for _ in range(2):  # HTTP/1.1 keeps the connection for the next request
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
        assert sock.recv(1) == b""  # closed after the answer
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
        assert sock.recv(1) == b""


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET /readyz HTTP/1.x", b"400"),
        (b"GET /readyz HTTP/\xc2\xb2.1", b"400"),
        (b"GET /readyz HTTP/2.0", b"505"),
        (b"GET /readyz extra HTTP/1.1", b"400"),
        (b"POST /v1/signal", b"400"),
    ],
)
def test_bad_request_lines_get_the_status_http_server_gives(
    server: SidecarServer, request_line: bytes, status: bytes
) -> None:
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(request_line + b"\r\n\r\n")
        answer = _read_answer(sock)
    assert answer.split(b" ", 2)[1] == status
