"""A lean HTTP/1.1 client for short POSTs to many addresses: the operator's signals.

One signal is one small POST and one small answer, to each of up to tens of
thousands of pods, all from one event loop. A general client (aiohttp) spends
0.35-0.45 ms of that loop on each; this one is an ``asyncio.Protocol`` that
writes the request in one piece and parses the answer as it arrives, with no
streams, tasks or header objects in between: 0.1-0.13 ms on a new connection,
0.03 ms on a kept one (``bench/signal_transport.py`` measures both).

What it does and does not do, and why:

- Keep-alive: at most one idle connection per address, and at most
  ``max_idle`` in all (the oldest goes first), so an edit soon after another,
  and a batch sent as several signals, skip the connect. A connection idle for
  ``idle_seconds`` is not used again: the sidecar closes idle ones after 5 s.
- A reused connection that fails before any byte of the answer arrived (the
  peer closed it while idle) is tried once more on a fresh one; a signal is
  idempotent, so sending it twice is harmless.
- Redirects are never followed: a 3xx is a status like any other, and a pod's
  answer never makes the operator connect anywhere else.
- An answer is framed by its Content-Length only (our sidecar always sends
  one): none, a chunked one or a malformed head is refused as no answer. At
  most ``max_answer + 1`` bytes of a body are ever read, enough for the caller
  to tell that it is too big; the connection is then closed, not drained.
- ``timeout`` bounds the whole request, connect included, and
  ``connect_timeout`` the connect. TCP_NODELAY is on (asyncio sets it on a
  socket made for IPPROTO_TCP), so a small request goes out at once.
- No concurrency limit here: the caller holds one (``--signal-concurrency``),
  which also bounds the connections open at once.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

# The status line and headers of an answer; a sidecar's are about 150 bytes.
MAX_HEAD_BYTES = 8 * 1024
# Idle connections kept in all, one per pod signalled in the last few seconds:
# 10,000 of them cost about 10 MiB here and save about 0.08 ms of CPU each on the
# next signal (bench/signal_transport.py), and a sidecar a thread for at most 5 s.
# Never more than half the file descriptors the process may open.
MAX_IDLE = 16384
# Below the sidecar's 5 s: a connection about to be closed by the peer is not reused.
IDLE_SECONDS = 4.0


class TransportError(OSError):
    """Nobody answered: refused, reset, timed out, or not an HTTP/1.1 answer we read."""


class TimedOut(TransportError):
    """No answer (or no connection) within its time: never tried again at once."""


class Head(NamedTuple):
    """What an answer's head says: its status, its body's length, and whether
    the connection may carry another request."""

    status: int
    length: int
    keep_alive: bool


def parse_head(head: bytes) -> Head:
    """The status line and headers of an answer (without the blank line after
    them); raises ``TransportError`` for anything not framed by a Content-Length."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not (
        len(code) == 3 and code.isdigit() and rest[3:4] in (b"", b" ")
    ):
        raise TransportError("not an HTTP/1.1 answer")
    status = int(code)
    if status < 200:
        raise TransportError(f"interim answer {status}")  # never asked for (no Expect)
    length: int | None = None
    keep_alive = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise TransportError("malformed header line")  # obsolete folding included
        name, value = name.lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18 or length not in (None, int(value)):
                raise TransportError("unusable Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            raise TransportError("a chunked answer (a sidecar sends a Content-Length)")
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if status in (204, 304):
        return Head(status, 0, keep_alive)  # never a body, whatever a length says
    if length is None:
        raise TransportError("an answer without Content-Length")
    return Head(status, length, keep_alive)


def split_address(address: str) -> tuple[str, int]:
    """``"ip:port"`` or ``"[ipv6]:port"`` (as ``Subscriber.address``) as host and port;
    raises ``TransportError`` for anything else."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        # An IP literal only: a name would block the loop on a DNS lookup.
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        raise TransportError(f"not an IP address and port: {address!r}") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TransportError(f"not an IP address and port: {address!r}")
    return host, int(port)


class _Connection(asyncio.Protocol):
    """One connection: sends a request, collects its one answer, then idles."""

    def __init__(
        self, address: str, max_answer: int, on_lost: Callable[[_Connection], None]
    ) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.answer_started = False  # a byte of the current answer arrived
        self.idle_since = 0.0
        self._max_answer = max_answer
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._head: Head | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send ``data``; the future is the answer's status and (bounded) body."""
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        if self.closed:
            waiter.set_exception(TransportError("connection closed"))
            return waiter
        self._waiter = waiter
        self._head = None
        self.answer_started = False
        self._buffer.clear()
        self.transport.write(data)
        return waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: this connection is out of step
            return
        self.answer_started = True
        self._buffer += data
        try:
            answer = self._answer()
        except TransportError as exc:
            self.abort()
            waiter.set_exception(exc)
            return
        if answer is not None:
            self._waiter = None
            waiter.set_result(answer)

    def _answer(self) -> tuple[int, bytes] | None:
        """The answer once all of it (or the most we read of it) has arrived."""
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise TransportError(f"an answer's head over {MAX_HEAD_BYTES} bytes")
                return None
            self._head = parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
        status, length, keep_alive = self._head
        wanted = min(length, self._max_answer + 1)
        if len(buffer) < wanted:
            return None
        if len(buffer) != length or not keep_alive:
            self.reusable = False  # the rest of a long body is never read; extra bytes are wrong
        body = bytes(buffer[:wanted])
        buffer.clear()
        return status, body

    def eof_received(self) -> bool:
        self._fail(TransportError("connection closed before the answer"))
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(TransportError(f"connection lost: {exc}" if exc else "connection closed"))
        self._on_lost(self)

    def _fail(self, exc: TransportError) -> None:
        self.closed = True
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[Any], what: str) -> None:
    if not waiter.done():
        waiter.set_exception(TimedOut(what))


def _connected(waiter: asyncio.Future[None], sock: socket.socket) -> None:
    asyncio.get_running_loop().remove_writer(sock.fileno())
    if waiter.done():
        return
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        waiter.set_exception(TransportError(error, os.strerror(error)))
    else:
        waiter.set_result(None)


class SignalTransport:
    """POSTs to many addresses over kept-alive connections (see the module's notes)."""

    def __init__(
        self,
        *,
        timeout: float,
        connect_timeout: float,
        max_answer: int,
        max_idle: int = MAX_IDLE,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_answer = max_answer
        self._max_idle = min(max_idle, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2)
        self._idle_seconds = idle_seconds
        # address -> its idle connection, oldest first (OrderedDict: O(1) from the front)
        self._idle: OrderedDict[str, _Connection] = OrderedDict()
        self._busy: set[_Connection] = set()
        self._closed = False
        self._no_answer = f"no answer within {timeout} s"
        self._no_connection = f"no connection within {connect_timeout} s"

    async def post(self, address: str, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``path`` at ``address`` (an IP literal and a
        port); the answer's status and at most ``max_answer + 1`` bytes of its
        body. Raises ``TransportError`` when nobody answered."""
        if self._closed:
            raise TransportError("transport closed")
        host, port = split_address(address)  # before it goes into the Host header
        request = b"POST %s HTTP/1.1\r\nHost: %s\r\n%s%d\r\n\r\n%s" % (
            path.encode("ascii"),
            address.encode("ascii"),
            b"Content-Type: application/json\r\nContent-Length: ",
            len(body),
            body,
        )
        # Deadlines are timers that fail the one future being awaited: no task or
        # timeout context per request (asyncio.timeout is 3.11+, wait_for a task).
        deadline = asyncio.get_running_loop().time() + self._timeout
        conn = self._take_idle(address)
        if conn is not None:
            try:
                return await self._exchange(conn, request, deadline)
            except TimedOut:
                raise
            except TransportError:
                if conn.answer_started:
                    raise
                # The peer closed it while idle: once more, on a fresh one.
        conn = await self._connect(address, host, port, deadline)
        return await self._exchange(conn, request, deadline)

    async def _exchange(
        self, conn: _Connection, request: bytes, deadline: float
    ) -> tuple[int, bytes]:
        self._busy.add(conn)
        waiter = conn.request(request)
        timer = asyncio.get_running_loop().call_at(deadline, _expire, waiter, self._no_answer)
        try:
            answer = await waiter
        except BaseException:  # a timeout or a cancellation too: the rest is never read
            conn.abort()
            raise
        finally:
            timer.cancel()
            self._busy.discard(conn)
        self._keep(conn)
        return answer

    async def _connect(self, address: str, host: str, port: int, deadline: float) -> _Connection:
        """A new connection to ``address``. The connect is a socket of our own so
        that its deadline can fail a future instead of cancelling a task."""
        loop = asyncio.get_running_loop()
        try:
            # With IPPROTO_TCP named, asyncio's transport sets TCP_NODELAY (proto 0: not).
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except OSError as exc:  # out of file descriptors, say: still no answer
            raise TransportError(exc.errno, exc.strerror) from exc
        fd = sock.fileno()  # registered by fd: a socket's repr is formatted on each lookup
        connected: asyncio.Future[None] = loop.create_future()
        timer = loop.call_at(
            min(deadline, loop.time() + self._connect_timeout),
            _expire,
            connected,
            self._no_connection,
        )
        try:
            sock.setblocking(False)
            error = sock.connect_ex((host, port))
            if error == errno.EINPROGRESS:
                loop.add_writer(fd, _connected, connected, sock)
            elif error:
                raise TransportError(error, os.strerror(error))
            else:
                connected.set_result(None)
            await connected
            conn = _Connection(address, self._max_answer, self._lost)
            await loop.create_connection(lambda: conn, sock=sock)
        except BaseException as exc:
            loop.remove_writer(fd)
            sock.close()
            if isinstance(exc, OSError) and not isinstance(exc, TransportError):
                raise TransportError(exc.errno, exc.strerror) from exc
            raise
        finally:
            timer.cancel()
        return conn

    def _take_idle(self, address: str) -> _Connection | None:
        conn = self._idle.pop(address, None)
        if conn is None:
            return None
        if conn.closed or asyncio.get_running_loop().time() - conn.idle_since > self._idle_seconds:
            conn.abort()
            return None
        return conn

    def _keep(self, conn: _Connection) -> None:
        """Keep ``conn`` as its address's idle connection, within the bounds."""
        if not conn.reusable or self._closed:
            conn.abort()
            return
        older = self._idle.pop(conn.address, None)
        if older is not None:
            older.abort()
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle[conn.address] = conn
        # Oldest first: past the bound or past its time (a peer may never close it), it goes.
        while self._idle:
            oldest = next(iter(self._idle.values()))
            fresh = conn.idle_since - oldest.idle_since <= self._idle_seconds
            if fresh and len(self._idle) <= self._max_idle:
                break
            self._idle.popitem(last=False)
            oldest.abort()

    def _lost(self, conn: _Connection) -> None:
        if self._idle.get(conn.address) is conn:
            del self._idle[conn.address]

    async def close(self) -> None:
        """Close every connection; requests still out get ``TransportError``."""
        self._closed = True
        for conn in [*self._idle.values(), *self._busy]:
            conn.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # their connection_lost runs, and the sockets close
