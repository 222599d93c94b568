"""HTTP endpoints of the sidecar: the signal, readiness, health and metrics.

The signal is a hint, never data: a request can at most make the sidecar
re-read ConfigMaps from the API server, which the syncer rate-limits. Bodies
are bounded, malformed requests get a 4xx with a short JSON reason, the number
of connections served at once is bounded, and no endpoint shows prompt text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prompt_client import wire

from .sync import Syncer

logger = logging.getLogger(__name__)

# Answer before the operator's signal timeout (2 s by default), even when the
# re-read is slow: then the answer says what is served now.
SIGNAL_WAIT = 1.5
# Connections handled at once; more are refused with 503 instead of growing threads.
MAX_CONNECTIONS = 32

_GET_PATHS = frozenset({"/readyz", "/healthz", "/livez", "/metrics"})
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\nConnection: close\r\n\r\n{"error":"busy"}\n'
)


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], syncer: Syncer, pod: str) -> None:
        if ipaddress.ip_address(address[0]).version == 6:
            self.address_family = socket.AF_INET6
        self.syncer = syncer
        self.pod = pod
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
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
    timeout = 10  # a slow or idle client holds a slot at most this long
    server_version = "prompt-sidecar"
    sys_version = ""
    # Requests http.server cannot parse get a JSON error with a status line, not
    # an HTML page (nor, for a line without a version, a bare HTTP/0.9 body).
    default_request_version = "HTTP/1.0"
    error_content_type = "application/json"
    error_message_format = '{"error": "%(code)d %(message)s"}\n'

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
        elif route == wire.SIGNAL_PATH:
            self._send(405, b'{"error":"use POST"}', Allow="POST")
        else:
            self._send(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        route = self._route
        if route in _GET_PATHS:
            self._send(405, b'{"error":"use GET"}', Allow="GET")
            return
        if route != wire.SIGNAL_PATH:
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
        if length > wire.MAX_SIGNAL_BYTES:
            self.close_connection = True  # never read what we refuse
            self._reject(413, f"body larger than {wire.MAX_SIGNAL_BYTES} bytes")
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            self._reject(400, "body shorter than Content-Length")
            return
        try:
            pairs = wire.parse_signal(body)
        except wire.SignalError as exc:
            self._reject(400, str(exc))
            return
        syncer = self.server.syncer
        if not syncer.ready.is_set():
            # The first full sync reads everything anyway; the operator retries later.
            self._send(503, b'{"error":"initial sync in progress"}', **{"Retry-After": "1"})
            return
        syncer.metrics.inc("signals_total")
        served = syncer.signal(pairs, wait=SIGNAL_WAIT)
        self._send(200, wire.encode_signal_response(self.server.pod, served))

    def _method_not_allowed(self) -> None:
        allow = "POST" if self._route == wire.SIGNAL_PATH else "GET"
        self.close_connection = True  # any body is unread
        self._send(405, b'{"error":"method not allowed"}', Allow=allow)

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed
