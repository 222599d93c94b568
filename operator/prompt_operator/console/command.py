"""`prompt-operator console`: parse the flags, load the kubeconfig, serve."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from prompt_contract.flags import Flag, FlagError, build_parser, parse

from ..runtime.kubeconfig import Access, KubeconfigError, load
from .auth import Keys
from .hosts import WILDCARDS, HostsError, allowed_hosts, host_name, is_loopback
from .server import make_app, start
from .service import PromptService
from .settings import Settings

DEFAULT_PORT = 8471
# SIGTERM to exit: the streams end at once, a running request gets the rest.
STOP_SECONDS = 4.0


FLAGS: tuple[Flag, ...] = (
    Flag("--port", "port to listen on", kind="int", default=DEFAULT_PORT),
    Flag(
        "--address",
        "address to listen on (loopback only by default); anything else lets other machines "
        "reach the console (plain HTTP) and needs --allow-host",
        default="127.0.0.1",
    ),
    Flag(
        "--allow-host",
        "a host name (or IP address) the console answers to, besides loopback; required "
        "with a non-loopback --address. Requests naming any other host get 421 "
        "(DNS rebinding)",
        many="repeat",
        default=(),
        shown_default="none",
        metavar="NAME",
    ),
    Flag("--namespace", "namespace to open", short="-n", shown_default="the context's"),
    Flag(
        "--kubeconfig",
        "kubeconfig file",
        env="KUBECONFIG",
        env_read_later=True,  # the loader takes the first file of the list
        kind="path",
        shown_default="~/.kube/config",
    ),
    Flag("--context", "kubeconfig context", shown_default="the current one"),
    Flag(
        "--prometheus",
        "a Prometheus that scrapes your apps' prompt_usage_total, for usage per revision, "
        "variant and outcome",
        metavar="URL",
        shown_default="off",
    ),
)


def parser() -> argparse.ArgumentParser:
    return build_parser(
        FLAGS,
        prog="prompt-operator console",
        description="A local web console for Prompts: browse, compare revisions, edit with "
        "checks and a dry run, roll back. It acts with your own kubeconfig credentials, "
        "so your RBAC decides what you may see and change; it stores nothing. It prints a "
        "one-time link to open; `kill -USR1 PID` prints another. See docs/console/security.md.",
        epilog="example:\n"
        "  prompt-operator console                  # prints http://127.0.0.1:8471/login?token=...\n"
        "  prompt-operator console -n team-a --prometheus http://prometheus:9090\n"
        "  prompt-operator console --address 0.0.0.0 --allow-host console.example\n",
    )


def login_url(address: str, port: int, names: Sequence[str], token: str) -> str:
    """The link to print: the address, or for a wildcard the first --allow-host name."""
    host = host_name(names[0]) if address in WILDCARDS and names else host_name(address)
    return f"http://{host}:{port}/login?token={token}"


def _say(text: str) -> None:
    # On the terminal only, never through logging: the link is the key to the console.
    print(text, file=sys.stderr, flush=True)


def run(argv: Sequence[str]) -> int:
    p = parser()
    try:
        args = parse(FLAGS, p, argv, os.environ)
    except FlagError as exc:
        p.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        hosts = allowed_hosts(args.address, args.port, args.allow_host)
    except HostsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        target = load(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not is_loopback(args.address):
        _say(
            f"warning: listening on {args.address}, not loopback: other machines can reach "
            "this console, which acts with your credentials. Only the holder of the link "
            "below gets in, but it travels as plain HTTP; answering to: " + ", ".join(sorted(hosts))
        )
    settings = Settings(
        namespace=args.namespace or target.namespace,
        context=target.context,
        user=target.user,
        allowed_hosts=hosts,
        port=args.port,
        prometheus=args.prometheus.rstrip("/") if args.prometheus else None,
    )
    try:
        asyncio.run(_serve(args, target, settings))
    except OSError as exc:
        print(
            f"error: cannot listen on {args.address}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0


async def _serve(args: argparse.Namespace, target: Access, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; each SIGUSR1 prints a new one-time login link."""
    keys = Keys()

    def new_link() -> None:
        url = login_url(args.address, args.port, args.allow_host, keys.new_login_token())
        _say(
            f"console for context {target.context}: open {url}\n"
            f"  (the link works once; `kill -USR1 {os.getpid()}` prints a new one; "
            "Ctrl-C stops the console)"
        )

    service = PromptService.connect(target.credentials(), prometheus=settings.prometheus)
    runner = await start(make_app(service, settings, keys), args.address, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, new_link)
    new_link()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(runner.cleanup(), STOP_SECONDS)
        _say("console stopped")
