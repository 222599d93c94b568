"""`prompt-sidecar`: run beside an app and keep its prompt files current."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from prompt_contract import hops
from prompt_contract.writer import PromptFiles

from .config import ConfigError, SidecarConfig, build_parser, parse_config
from .kubeapi import ApiError, KubeClient
from .server import Deadlines, SidecarServer
from .sync import Syncer

logger = logging.getLogger("prompt_sidecar")

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra=`` fields as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


def configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the sidecar until SIGTERM or SIGINT; the exit code (2: bad settings)."""
    try:
        config = parse_config(argv, os.environ)
    except ConfigError as exc:
        build_parser().print_usage(sys.stderr)
        print(f"prompt-sidecar: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_format)
    try:
        hops.enable(config.trace_file)
    except hops.TraceFileError as exc:
        print(f"prompt-sidecar: error: --trace-file: {exc}", file=sys.stderr)
        return 2
    return serve(config)


def listen(config: SidecarConfig, syncer: Syncer) -> list[SidecarServer]:
    """The signal server first, then the probes-only one (when it has a port);
    none when a port cannot be had (the reason is logged)."""
    deadlines = Deadlines()
    servers: list[SidecarServer] = []
    for port, probes_only in ((config.port, False), (config.probe_port, True)):
        if port == 0:
            continue
        try:
            servers.append(
                SidecarServer(
                    (config.address, port),
                    syncer,
                    config.pod,
                    probes_only=probes_only,
                    deadlines=deadlines,
                )
            )
        except OSError as exc:
            logger.error("cannot listen on %s port %d: %s", config.address, port, exc)
            for made in servers:
                made.server_close()
            return []
    return servers


def serve(config: SidecarConfig) -> int:
    try:
        client = KubeClient.from_environment(config.kubeconfig)
    except (ApiError, OSError, ValueError) as exc:
        logger.error("cannot use the Kubernetes credentials: %s", exc)
        return 2
    files = PromptFiles(config.directory, config.ext)
    syncer = Syncer(
        client,
        files,
        config.namespace,
        config.selector,
        pod=config.pod,
        resync_seconds=config.resync,
    )
    servers = listen(config, syncer)
    if not servers:
        client.close()
        return 2
    server, probes = servers[0], servers[1:]

    def shutdown(signum: int, _frame: object) -> None:
        logger.info("stopping on %s", signal.Signals(signum).name)
        # shutdown() waits for serve_forever to return: never call it on that thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    syncer.start()
    for probe in probes:
        threading.Thread(
            target=probe.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
        ).start()
    logger.info(
        "sidecar for pod %s/%s writing %s, listening on %s port %d (probes also on %s), "
        "selector %r",
        config.namespace,
        config.pod,
        files.directory,
        config.address,
        config.port,
        config.probe_port or "none",
        config.selector.text,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        for probe in probes:
            probe.shutdown()
            probe.server_close()
        syncer.stop()
        server.server_close()
        client.close()
    return 0
