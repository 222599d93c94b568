"""Settings of `prompt-operator run`, from flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_contract import objects

from . import DEFAULT_IMAGE
from .runtime.leader import LeaseConfig


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]  # empty: every namespace
    log_format: str  # "json", "text" or "auto"
    verbose: bool
    health_host: str
    health_port: int
    metrics_port: int  # 0 disables
    workers: int
    signal_timeout: float
    signal_concurrency: int
    delivery_wait: float
    delivery_refresh: float
    kubeconfig: str | None
    webhook_port: int  # 0: no admission webhooks
    webhook_cert: str | None
    webhook_key: str | None
    sidecar_image: str
    leader_elect: bool  # two or more replicas: one leader on a Lease
    lease: LeaseConfig
    sidecar_port: int  # the injected sidecar's signal port: the chart's NetworkPolicy opens it
    sidecar_probe_port: int
    trace_file: str | None = None  # one JSON line per hop of every edit (the bench's trace)
    # The chart's sidecar.namespaces: where the sidecar's service account exists
    # (None: unknown, so injection does not check the pod's service account).
    sidecar_namespaces: tuple[str, ...] | None = None


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


EPILOG = """\
example (outside a cluster, with your kubeconfig; the chart runs it in one):
  prompt-operator run --kubeconfig ~/.kube/config --namespace team-a --log-format text

It needs: Prompts (get, list, watch), prompts/status (patch), ConfigMaps (get,
list, watch, create, patch, delete), Pods (list, watch), Events (create) and,
with --leader-elect, its Lease (create, get, update).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prompt-operator run",
        description="Run the operator: reconcile Prompts into ConfigMaps, signal "
        "subscribed sidecars, and report status. Every flag has an environment "
        "variable fallback, shown as (env: NAME).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        metavar="NS",
        help="watch only this namespace; repeat for several "
        "(env: PROMPT_OPERATOR_NAMESPACES, comma-separated; default: all namespaces)",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=_env("PROMPT_OPERATOR_LOG_FORMAT", "auto"),
        help="json in a cluster, text on a terminal (auto picks by whether stderr "
        "is a terminal) (env: PROMPT_OPERATOR_LOG_FORMAT)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.add_argument(
        "--trace-file",
        default=_env("PROMPT_OPERATOR_TRACE_FILE") or None,
        help="append a timestamp for every hop of every edit to this file, as JSON lines "
        "(what `make bench` reads to show where an edit's time goes; off by default) "
        "(env: PROMPT_OPERATOR_TRACE_FILE)",
    )
    p.add_argument(
        "--health-host",
        default=_env("PROMPT_OPERATOR_HEALTH_HOST", "0.0.0.0"),
        help="address of the liveness endpoint "
        "(env: PROMPT_OPERATOR_HEALTH_HOST; default: 0.0.0.0)",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=int(_env("PROMPT_OPERATOR_HEALTH_PORT", "8080")),
        help="port of the liveness endpoint /healthz; 0 disables "
        "(env: PROMPT_OPERATOR_HEALTH_PORT; default: 8080)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("PROMPT_OPERATOR_METRICS_PORT", "9090")),
        help="port of the Prometheus /metrics endpoint; 0 disables "
        "(env: PROMPT_OPERATOR_METRICS_PORT; default: 9090)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(_env("PROMPT_OPERATOR_WORKERS", "32")),
        help="Prompts reconciled at once (env: PROMPT_OPERATOR_WORKERS; default: 32)",
    )
    p.add_argument(
        "--signal-timeout",
        type=float,
        default=float(_env("PROMPT_OPERATOR_SIGNAL_TIMEOUT", "2")),
        help="seconds to wait for one sidecar's answer "
        "(env: PROMPT_OPERATOR_SIGNAL_TIMEOUT; default: 2)",
    )
    p.add_argument(
        "--signal-concurrency",
        type=int,
        default=int(_env("PROMPT_OPERATOR_SIGNAL_CONCURRENCY", "64")),
        help="signal requests in flight at once "
        "(env: PROMPT_OPERATOR_SIGNAL_CONCURRENCY; default: 64)",
    )
    p.add_argument(
        "--delivery-wait",
        type=float,
        default=float(_env("PROMPT_OPERATOR_DELIVERY_WAIT", "1")),
        help="after an edit, seconds to wait for sidecars' answers so the one status write "
        "includes delivery (env: PROMPT_OPERATOR_DELIVERY_WAIT; default: 1)",
    )
    p.add_argument(
        "--delivery-refresh",
        type=float,
        default=float(_env("PROMPT_OPERATOR_DELIVERY_REFRESH", "10")),
        help="at most how often (seconds) one Prompt's status.delivery is rewritten when pods "
        "come and go (env: PROMPT_OPERATOR_DELIVERY_REFRESH; default: 10)",
    )
    p.add_argument(
        "--webhook-port",
        type=int,
        default=int(_env("PROMPT_OPERATOR_WEBHOOK_PORT", "0")),
        help="serve the admission webhooks (Prompt validation, sidecar injection) over TLS on "
        "this port; 0 disables "
        "(env: PROMPT_OPERATOR_WEBHOOK_PORT; default: 0, the chart sets 9443)",
    )
    p.add_argument(
        "--webhook-cert",
        default=_env("PROMPT_OPERATOR_WEBHOOK_CERT") or None,
        help="PEM certificate for the webhook server (env: PROMPT_OPERATOR_WEBHOOK_CERT)",
    )
    p.add_argument(
        "--webhook-key",
        default=_env("PROMPT_OPERATOR_WEBHOOK_KEY") or None,
        help="PEM private key for the webhook server (env: PROMPT_OPERATOR_WEBHOOK_KEY)",
    )
    p.add_argument(
        "--sidecar-image",
        default=_env("PROMPT_OPERATOR_SIDECAR_IMAGE", DEFAULT_IMAGE),
        help="image of the injected sidecar (env: PROMPT_OPERATOR_SIDECAR_IMAGE; "
        "the chart sets its own image)",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env("PROMPT_OPERATOR_LEADER_ELECT", "false").lower() in ("1", "true", "yes"),
        help="run as one of several replicas: only the holder of a Lease reconciles, "
        "signals and writes; the others keep their caches warm and serve the webhooks "
        "(env: PROMPT_OPERATOR_LEADER_ELECT; default: off, the chart turns it on)",
    )
    p.add_argument(
        "--leader-election-namespace",
        default=_env("PROMPT_OPERATOR_LEADER_ELECTION_NAMESPACE")
        or _env("POD_NAMESPACE", "default"),
        help="namespace of the Lease (env: PROMPT_OPERATOR_LEADER_ELECTION_NAMESPACE, then "
        "POD_NAMESPACE; default: 'default')",
    )
    p.add_argument(
        "--leader-election-id",
        default=_env("PROMPT_OPERATOR_LEADER_ELECTION_ID", "prompt-operator"),
        help="name of the Lease "
        "(env: PROMPT_OPERATOR_LEADER_ELECTION_ID; default: prompt-operator)",
    )
    p.add_argument(
        "--identity",
        default=_env("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name on the Lease (env: POD_NAME; default: host name and process id)",
    )
    for flag, default, what in (
        ("lease-duration", "10", "how long a standby waits after the leader's last renew"),
        ("renew-deadline", "7", "how long the leader keeps trying to renew before it stops"),
        ("retry-period", "2", "how often every replica tries to take or renew the Lease"),
    ):
        env = "PROMPT_OPERATOR_" + flag.upper().replace("-", "_")
        p.add_argument(
            f"--{flag}",
            type=float,
            default=float(_env(env, default)),
            help=f"{what}, seconds (env: {env}; default: {default})",
        )
    p.add_argument(
        "--sidecar-port",
        type=int,
        default=int(_env("PROMPT_OPERATOR_SIDECAR_PORT", str(objects.DEFAULT_PORT))),
        help="signal port of the injected sidecar; the chart passes the port its "
        "NetworkPolicy opens (env: PROMPT_OPERATOR_SIDECAR_PORT; "
        f"default: {objects.DEFAULT_PORT})",
    )
    p.add_argument(
        "--sidecar-probe-port",
        type=int,
        default=int(_env("PROMPT_OPERATOR_SIDECAR_PROBE_PORT", str(objects.DEFAULT_PROBE_PORT))),
        help="probe port of the injected sidecar "
        f"(env: PROMPT_OPERATOR_SIDECAR_PROBE_PORT; default: {objects.DEFAULT_PROBE_PORT})",
    )
    p.add_argument(
        "--sidecar-namespaces",
        default=os.environ.get("PROMPT_OPERATOR_SIDECAR_NAMESPACES"),
        metavar="NS,NS",
        help="namespaces where the sidecar's prompt-sidecar service account exists (the "
        "chart passes its sidecar.namespaces); injection then refuses a pod elsewhere, or "
        "one running as the 'default' service account, saying what to set "
        "(env: PROMPT_OPERATOR_SIDECAR_NAMESPACES, comma-separated; default: not checked)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (env: KUBECONFIG; default: the in-cluster service account, "
        "then ~/.kube/config)",
    )
    return p


def parse_config(argv: Sequence[str] | None) -> OperatorConfig:
    p = parser()
    args = p.parse_args(argv)
    try:
        lease = LeaseConfig(
            namespace=args.leader_election_namespace,
            name=args.leader_election_id,
            identity=args.identity,
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
    except ValueError as exc:
        p.error(str(exc))
    for flag, port in (
        ("--sidecar-port", args.sidecar_port),
        ("--sidecar-probe-port", args.sidecar_probe_port),
    ):
        if not 0 < port < 65536:
            p.error(f"{flag} {port}: must be a port number from 1 to 65535")
    if args.sidecar_port == args.sidecar_probe_port:
        p.error("--sidecar-port and --sidecar-probe-port must differ: the sidecar listens on both")
    namespaces = args.namespace
    if namespaces is None:
        raw = os.environ.get("PROMPT_OPERATOR_NAMESPACES", "")
        namespaces = [ns.strip() for ns in raw.split(",") if ns.strip()]
    return OperatorConfig(
        namespaces=tuple(dict.fromkeys(namespaces)),
        log_format=args.log_format,
        verbose=args.verbose,
        health_host=args.health_host,
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        workers=max(1, args.workers),
        signal_timeout=args.signal_timeout,
        signal_concurrency=max(1, args.signal_concurrency),
        delivery_wait=max(0.0, args.delivery_wait),
        delivery_refresh=max(0.1, args.delivery_refresh),
        kubeconfig=args.kubeconfig,
        trace_file=args.trace_file,
        webhook_port=args.webhook_port,
        webhook_cert=args.webhook_cert,
        webhook_key=args.webhook_key,
        sidecar_image=args.sidecar_image,
        leader_elect=args.leader_elect,
        lease=lease,
        sidecar_port=args.sidecar_port,
        sidecar_probe_port=args.sidecar_probe_port,
        sidecar_namespaces=None
        if args.sidecar_namespaces is None
        else tuple(ns.strip() for ns in args.sidecar_namespaces.split(",") if ns.strip()),
    )
