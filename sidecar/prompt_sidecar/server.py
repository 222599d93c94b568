"""HTTP endpoints of the sidecar: the signal, readiness, health and metrics.

A signal is a hint, or data signed by the operator (``trust`` checks it): an
unsigned or unverifiable request can at most make the sidecar re-read
ConfigMaps from the API server, which the syncer rate-limits. Bodies
are bounded, malformed requests get a 4xx with a short JSON reason, the number
of connections served at once is bounded, and no endpoint shows prompt text.

Anyone on the pod network can reach the signal port, so what one connection
may cost is bounded up front: a whole request (headers, body, answer) has a
deadline, after which its socket is shut; the request line and headers share a
byte budget; the body's size is checked before it is read, and a large body is
read and parsed by one connection at a time. Probes get a listener of their own
(``--probe-port``), so a flood on the signal port never makes the pod NotReady.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prompt_contract import hops, signals

from .headers import http_version, parse_header_block, read_header_block
from .sync import Syncer

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

# Answer before the operator's signal timeout (2 s by default), even when the
# re-read is slow: then the answer says what is served now.
SIGNAL_WAIT = 1.5
# Connections handled at once; more are refused with 503 instead of growing threads.
MAX_CONNECTIONS = 32
# The probe listener's own connections: kubelet sends a few probes at a time.
MAX_PROBE_CONNECTIONS = 8
# A whole request, from its first byte to the end of the answer (the signal's
# own wait included). An idle keep-alive connection is closed after as long.
REQUEST_DEADLINE = 5.0
# Request line and headers together; a signal's are a few hundred bytes.
MAX_HEADER_BYTES = 16 * 1024
# Bodies up to this size are read at once by any connection; larger ones (up to
# signals.MAX_SIGNAL_BYTES, never sent by the operator) one at a time.
SMALL_BODY = 64 * 1024

_GET_PATHS = frozenset({"/readyz", "/healthz", "/livez", "/metrics"})
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\nConnection: close\r\n\r\n{"error":"busy"}\n'
)


class Deadlines:
    """Shuts a connection's socket when its request runs past its deadline.

    One thread for every connection: a per-read socket timeout lets a client
    that sends a byte now and then hold its slot for ever; this does not. The
    thread sleeps until the nearest deadline and is woken only for an earlier
    one: every request re-arms its connection's deadline later than the one the
    thread sleeps for, so a signal costs no wake-up here (one cost every signal
    a thread switch before).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, socket.socket]] = {}
        self._wake_at = math.inf  # when the thread wakes by itself (inf: only when notified)
        self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        at = time.monotonic() + seconds
        with self._cond:
            self._due[id(sock)] = (at, sock)
            if at < self._wake_at:
                self._cond.notify()

    def disarm(self, sock: socket.socket) -> None:
        with self._cond:
            self._due.pop(id(sock), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                expired = [k for k, (at, _) in self._due.items() if at <= now]
                late = [self._due.pop(k)[1] for k in expired]
                if not late:
                    self._wake_at = min((at for at, _ in self._due.values()), default=math.inf)
                    timeout = None if self._wake_at == math.inf else max(0.01, self._wake_at - now)
                    self._cond.wait(timeout)
                    self._wake_at = -math.inf  # awake: the loop looks at every deadline again
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the handler's read or write ends at once


class HeaderBudget:
    """The connection's reader, with a byte budget for request line and headers.

    ``http.server`` reads those with ``readline`` (up to 64 KiB a line and 100
    lines), and the body with ``read``; only ``readline`` spends the budget,
    which each request refills.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.left = MAX_HEADER_BYTES

    def readline(self, size: int = -1) -> bytes:
        limit = self.left + 1 if size < 0 else min(size, self.left + 1)
        line = self._raw.readline(limit)
        self.left -= len(line)
        if self.left < 0:
            # parse_request answers this with 431; for the request line it ends the connection.
            raise http.client.LineTooLong(f"request line and headers over {MAX_HEADER_BYTES} bytes")
        return line

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        self._raw.close()


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        syncer: Syncer,
        pod: str,
        *,
        probes_only: bool = False,
        deadlines: Deadlines | None = None,
    ) -> None:
        if ipaddress.ip_address(address[0]).version == 6:
            self.address_family = socket.AF_INET6
        self.syncer = syncer
        self.pod = pod
        self.probes_only = probes_only  # the probe listener: GET of health and metrics only
        self.deadlines = deadlines or Deadlines()
        self.large_bodies = threading.Semaphore(1)
        self._slots = threading.BoundedSemaphore(
            MAX_PROBE_CONNECTIONS if probes_only else MAX_CONNECTIONS
        )
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(0.2)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (the operator's signal timed out) is not an error.
        logger.debug("connection from %s ended early", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    protocol_version = "HTTP/1.1"
    # Answers go out as they are written: Nagle would hold a short answer back
    # until the operator acknowledged the previous segment (a delayed ACK).
    disable_nagle_algorithm = True
    timeout = 10  # a slow or idle client holds a slot at most this long
    server_version = "prompt-sidecar"
    sys_version = ""
    # Requests http.server cannot parse get a JSON error with a status line, not
    # an HTML page (nor, for a line without a version, a bare HTTP/0.9 body).
    default_request_version = "HTTP/1.0"
    error_content_type = "application/json"
    error_message_format = '{"error": "%(code)d %(message)s"}\n'

    rfile: Any  # a HeaderBudget over the socket's reader
    raw_requestline: bytes  # set by http.server before parse_request
    # Answers are written through a buffer that http.server flushes once the
    # request is handled: status line, headers and body leave in one send.
    wbufsize = 64 * 1024
    _date: tuple[int, str] = (0, "")  # the Date header of the current second

    def setup(self) -> None:
        super().setup()
        self.rfile = HeaderBudget(self.rfile)

    def handle_one_request(self) -> None:
        self.rfile.left = MAX_HEADER_BYTES
        self.server.deadlines.arm(self.connection, REQUEST_DEADLINE)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.disarm(self.connection)

    def parse_request(self) -> bool:
        """http.server's, with the header block parsed by ``headers`` rather than
        the email package (see there). What the request line and headers decide
        (errors, keep-alive, ``Expect: 100-continue``) is decided as http.server does."""
        if not self._parse_request_line():
            return False
        try:
            self.headers = parse_header_block(read_header_block(self.rfile.readline))
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err)
            )
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if (
            expect == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def _parse_request_line(self) -> bool:
        """The request line's part of http.server's ``parse_request`` (Python 3.11-3.13)."""
        self.command = None  # type: ignore[assignment]  # set in case of error on the first line
        self.request_version = version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:  # enough to know the protocol version
            version = words[-1]
            number = http_version(version)
            if number is None:
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(
                    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                    f"Invalid HTTP version ({version.split('/', 1)[1]})",
                )
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):  # gh-87389: never an absolute URI without scheme
            self.path = "/" + self.path.lstrip("/")
        return True

    def handle_expect_100(self) -> bool:
        ok = super().handle_expect_100()
        self.wfile.flush()  # the client waits for it before it sends the body
        return ok

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = _Handler._date
        if second != now:
            text = super().date_time_string(now)
            _Handler._date = (now, text)
        return text

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode())

    def _reject(self, status: int, message: str, **headers: str) -> None:
        self.server.syncer.metrics.inc("signals_rejected_total")
        self._send(status, json.dumps({"error": message}).encode(), **headers)

    @property
    def _route(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self) -> None:
        syncer, route = self.server.syncer, self._route
        if route == "/readyz":
            ready = syncer.ready.is_set()
            self._json(200 if ready else 503, {"ready": ready})
        elif route in ("/healthz", "/livez"):
            # Always 200: a degraded sidecar still serves its files; restarting it
            # would not bring the API server back.
            self._json(200, syncer.health_report())
        elif route == "/metrics":
            self._send(200, syncer.metrics.render().encode(), "text/plain; version=0.0.4")
        elif route == signals.SIGNAL_PATH and not self.server.probes_only:
            self._send(405, b'{"error":"use POST"}', Allow="POST")
        else:
            self._send(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        route = self._route
        if route in _GET_PATHS:
            self._send(405, b'{"error":"use GET"}', Allow="GET")
            return
        if route != signals.SIGNAL_PATH or self.server.probes_only:
            self.close_connection = True  # the body is unread
            self._send(404, b'{"error":"not found"}')
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.close_connection = True  # the body is unread
            self._reject(415, "Content-Type must be application/json")
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._reject(411, "Content-Length is required")
            return
        if length > signals.MAX_SIGNAL_BYTES:
            self.close_connection = True  # never read what we refuse
            self._reject(413, f"body larger than {signals.MAX_SIGNAL_BYTES} bytes")
            return
        large = length > SMALL_BODY
        if large and not self.server.large_bodies.acquire(timeout=SIGNAL_WAIT):
            self.close_connection = True  # the body is unread
            self._send(503, b'{"error":"busy"}', **{"Retry-After": "1"})
            return
        try:
            body = self.rfile.read(length)
        finally:
            if large:
                self.server.large_bodies.release()
        if len(body) < length:
            self.close_connection = True
            self._reject(400, "body shorter than Content-Length")
            return
        syncer = self.server.syncer
        if not syncer.ready.is_set():
            # The first full sync reads everything anyway; the operator retries later.
            # (The body was read: closing on unread bytes would reset the connection,
            # and the operator would take the pod for gone rather than starting.)
            self._send(503, b'{"error":"initial sync in progress"}', **{"Retry-After": "1"})
            return
        self._signal(body)

    def _signal(self, body: bytes) -> None:
        """Answer a signal's body: what is served once its revisions are read or
        (signed and verified) written, within SIGNAL_WAIT."""
        syncer = self.server.syncer
        try:
            # At most MAX_SIGNAL_PAIRS, counted before parsing.
            pairs, carried = signals.parse_signal_carrying(body)
        except signals.SignalError as exc:
            self._reject(400, str(exc))
            return
        syncer.metrics.inc("signals_total")
        if hops.enabled() and len(pairs) <= hops.MAX_NAMES_STAMPED:
            for name, revision in pairs:
                hops.mark(hops.RECEIVED, f"{syncer.namespace}/{name}", revision, self.server.pod)
        vouched: dict[str, Any] = {}
        if carried:
            vouched, refused = syncer.keys.vouched(pairs, carried)
            if refused:
                syncer.metrics.inc("signed_refused_total", len(refused))
                logger.debug("signed entries read as hints: %s", sorted(set(refused.values())))
            if hops.enabled() and len(vouched) <= hops.MAX_NAMES_STAMPED:
                signalled = dict(pairs)
                for name in vouched:
                    where = f"{syncer.namespace}/{name}"
                    hops.mark(hops.VERIFIED, where, signalled[name], self.server.pod)
        served = syncer.signal(pairs, wait=SIGNAL_WAIT, vouched=vouched)
        self._send(200, signals.encode_signal_response(self.server.pod, served))

    def _method_not_allowed(self) -> None:
        allow = "POST" if self._route == signals.SIGNAL_PATH else "GET"
        self.close_connection = True  # any body is unread
        self._send(405, b'{"error":"method not allowed"}', Allow=allow)

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed
