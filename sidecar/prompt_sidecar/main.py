"""`prompt-operator sidecar`: run beside an app and keep its prompt files current."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_client.contract import DEFAULT_EXT

from . import wire
from .files import PromptFiles, ext_problem
from .kubeapi import ApiError, KubeClient
from .selector import SelectorError, parse_selector
from .server import SidecarServer
from .sync import Syncer

logger = logging.getLogger("prompt_sidecar")

DESCRIPTION = """\
Run beside an app in the same pod: write every Prompt the pod subscribes to as
<key><ext> into DIR (a volume shared with the app), atomically, then report
ready; apply the operator's signals as they come; re-list on a timer so a
missed signal heals. If the API server is unreachable the files stay as they
are and /healthz says "degraded".

Environment set by the downward API:
  POD_NAME, POD_NAMESPACE   the pod (required)
  POD_IP                    address to listen on (default 0.0.0.0)
  PROMPT_SELECTOR           the pod's prompts.dev/selector annotation: which
                            Prompts it consumes (empty: all in its namespace)

Endpoints on POD_IP:PORT: POST /v1/signal (from the operator), GET /readyz
(200 once every file is written), /healthz (JSON: status, lastSyncTime,
revisions served), /metrics (Prometheus).
"""


@dataclass(frozen=True)
class SidecarConfig:
    directory: str
    port: int
    ext: str
    resync: float
    kubeconfig: str | None
    pod: str
    namespace: str
    address: str
    selector: str
    log_format: str


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def parse_args(argv: Sequence[str] | None) -> SidecarConfig:
    p = argparse.ArgumentParser(
        prog="prompt-operator sidecar",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dir",
        default=_env("PROMPT_DIR"),
        help="directory to write prompt files into [PROMPT_DIR] (required)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(_env("PROMPT_SIDECAR_PORT", str(wire.DEFAULT_PORT))),
        help=f"port for signals, health and metrics [PROMPT_SIDECAR_PORT; "
        f"default {wire.DEFAULT_PORT}]; must match the pod's prompts.dev/port",
    )
    p.add_argument(
        "--ext",
        default=_env("PROMPT_EXT", DEFAULT_EXT),
        help=f"file extension [PROMPT_EXT; default {DEFAULT_EXT}]",
    )
    p.add_argument(
        "--resync",
        type=float,
        default=float(_env("PROMPT_RESYNC_SECONDS", "300")),
        help="seconds between full re-lists that heal missed signals "
        "[PROMPT_RESYNC_SECONDS; default 300]",
    )
    p.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG") or None,
        help="kubeconfig file [KUBECONFIG; default: the pod's service account]",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=_env("PROMPT_LOG_FORMAT", "auto"),
        help="json in a cluster, text on a terminal [PROMPT_LOG_FORMAT; default auto]",
    )
    args = p.parse_args(argv)
    missing = [n for n in ("POD_NAME", "POD_NAMESPACE") if not _env(n)]
    if not args.dir:
        p.error("--dir (or PROMPT_DIR) is required: the directory shared with the app")
    if missing:
        p.error(
            f"{' and '.join(missing)} must be set (downward API: metadata.name, metadata.namespace)"
        )
    problem = ext_problem(args.ext)
    if problem:
        p.error(f"--ext {args.ext!r}: {problem}")
    if not 0 < args.port < 65536:
        p.error("--port must be between 1 and 65535")
    if args.resync <= 0:
        p.error("--resync must be positive")
    return SidecarConfig(
        directory=args.dir,
        port=args.port,
        ext=args.ext,
        resync=args.resync,
        kubeconfig=args.kubeconfig,
        pod=_env("POD_NAME"),
        namespace=_env("POD_NAMESPACE"),
        address=_env("POD_IP", "0.0.0.0"),
        selector=_env("PROMPT_SELECTOR"),
        log_format=args.log_format,
    )


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def run(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    _configure_logging(config.log_format)
    try:
        selector = parse_selector(config.selector)
    except SelectorError as exc:
        logger.error("PROMPT_SELECTOR (the pod's prompts.dev/selector annotation): %s", exc)
        return 2
    try:
        client = KubeClient.from_environment(config.kubeconfig)
    except (ApiError, OSError, ValueError) as exc:
        logger.error("cannot use the Kubernetes credentials: %s", exc)
        return 2
    files = PromptFiles(config.directory, config.ext)
    syncer = Syncer(client, files, config.namespace, selector, resync_seconds=config.resync)
    try:
        server = SidecarServer((config.address, config.port), syncer, config.pod)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", config.address, config.port, exc)
        return 2
    stopped = threading.Event()

    def shutdown(signum: int, _frame: object) -> None:
        stopped.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    syncer.start()
    logger.info(
        "sidecar for pod %s/%s serving %s on %s:%d (selector %r)",
        config.namespace,
        config.pod,
        config.directory,
        config.address,
        config.port,
        config.selector,
    )
    server.serve_forever(poll_interval=0.5)
    syncer.stop()
    client.close()
    return 0
