"""HTTP endpoints of the sidecar: the signal, readiness, health and metrics.

The signal is a hint, never data: a request can at most make the sidecar
re-read ConfigMaps from the API server, which the syncer rate-limits. Bodies
are bounded, malformed requests get a 4xx, and no endpoint shows prompt text.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import wire
from .sync import Syncer

logger = logging.getLogger(__name__)

# Answer before the operator's default 2 s timeout, even when the re-read is slow.
SIGNAL_WAIT = 1.5


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], syncer: Syncer, pod: str) -> None:
        super().__init__(address, _Handler)
        self.syncer = syncer
        self.pod = pod

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (the operator's signal timed out) is not an error.
        logger.debug("connection from %s ended early", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self.server.syncer.metrics.inc("signals_rejected_total")
        self._send(status, json.dumps({"error": message}).encode())

    def do_GET(self) -> None:
        syncer = self.server.syncer
        if self.path == "/readyz":
            ready = syncer.ready.is_set()
            self._send(200 if ready else 503, b'{"ready":true}' if ready else b'{"ready":false}')
        elif self.path in ("/healthz", "/livez"):
            health = syncer.health
            body = {
                "status": "degraded" if health.degraded else "ok",
                "ready": health.ready,
                "lastSyncTime": health.last_sync,
                "lastError": health.last_error,
                "prompts": {name: rev for name, (_, rev) in sorted(syncer.served.items())},
            }
            self._send(200, json.dumps(body).encode())
        elif self.path == "/metrics":
            self._send(200, syncer.metrics.render().encode(), "text/plain; version=0.0.4")
        else:
            self._send(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        if self.path != wire.SIGNAL_PATH:
            self._send(404, b'{"error":"not found"}')
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            self._error(415, "Content-Type must be application/json")
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if length < 0:
            self._error(411, "Content-Length is required")
            return
        if length > wire.MAX_SIGNAL_BYTES:
            self.close_connection = True  # do not read what we refuse
            self._error(413, f"body larger than {wire.MAX_SIGNAL_BYTES} bytes")
            return
        try:
            pairs = wire.parse_signal(self.rfile.read(length))
        except wire.SignalError as exc:
            self._error(400, str(exc))
            return
        syncer = self.server.syncer
        if not syncer.ready.is_set():
            # The first full sync reads everything anyway; the operator retries later.
            self._send(503, b'{"error":"initial sync in progress"}')
            return
        syncer.metrics.inc("signals_total")
        served = syncer.signal(pairs, wait=SIGNAL_WAIT)
        self._send(200, wire.encode_signal_response(self.server.pod, served))

    def _method_not_allowed(self) -> None:
        self._send(405, b'{"error":"method not allowed"}')

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed
