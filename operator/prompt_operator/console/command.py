"""`prompt-operator console`: parse the flags, load the kubeconfig, serve."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .api import ConsoleApi
from .kubeconfig import KubeconfigError, load
from .server import Settings, allowed_hosts, make_app, start

DEFAULT_PORT = 8471


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prompt-operator console",
        description="A local web console for Prompts: browse, compare revisions, edit with "
        "checks and a dry run, roll back. It acts with your own kubeconfig credentials, "
        "so your RBAC decides what you may see and change; it stores nothing.",
        epilog="example:\n"
        "  prompt-operator console                  # http://127.0.0.1:8471/, current context\n"
        "  prompt-operator console -n team-a --prometheus http://prometheus:9090\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: 8471)"
    )
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, loopback only); anything else "
        "lets other machines act with your credentials",
    )
    p.add_argument("-n", "--namespace", help="namespace to open (default: the context's)")
    p.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (env: KUBECONFIG; default: ~/.kube/config)"
    )
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="a Prometheus that scrapes your apps' prompt_usage_total, for usage per "
        "revision, variant and outcome",
    )
    return p


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def run(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        target = load(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    settings = Settings(
        namespace=args.namespace or target.namespace,
        context=target.context,
        user=target.user,
        allowed_hosts=allowed_hosts(args.address, args.port),
        prometheus=args.prometheus.rstrip("/") if args.prometheus else None,
    )

    async def serve() -> None:
        app = make_app(ConsoleApi(target.credentials), settings)
        runner = await start(app, args.address, args.port)
        host = f"[{args.address}]" if ":" in args.address else args.address
        print(
            f"console for context {target.context} at http://{host}:{args.port}/ (Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"error: cannot listen on {args.address}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0
