"""Settings of `prompt-operator run`, from flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prompt_contract import objects
from prompt_contract.flags import Flag, build_parser, fill, parse

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
    # Where rollouts' Prometheus analysis queries (the chart's rollouts.prometheus.url);
    # None: such a step waits, saying that no address is set.
    prometheus_url: str | None = None
    # The Secret holding the signing keys, beside the Lease ("": signals go unsigned).
    signing_secret: str = "prompt-operator-signing-keys"
    signing_rotate_after: float = 30 * 86400.0  # seconds; 0: never
    # The chart's sidecar.promptVolume: the prompt volume's size in memory, KiB; 0: on disk.
    prompt_volume_memory_kib: int = 0


EPILOG = """\
example (outside a cluster, with your kubeconfig; the chart runs it in one):
  prompt-operator run --kubeconfig ~/.kube/config --namespace team-a --log-format text

It needs: Prompts (get, list, watch), prompts/status (patch), ConfigMaps (get,
list, watch, create, patch, delete), Pods (list, watch), Events (create) and,
with --leader-elect, its Lease (create, get, update); for rollouts' Job
analysis, Jobs (create, get, list, watch, delete); for signed signals, its
Secret --signing-secret (create, get, update).
"""

DESCRIPTION = (
    "Run the operator: reconcile Prompts into ConfigMaps, signal subscribed sidecars, and "
    "report status. Every flag has an environment variable fallback, shown as (env: NAME)."
)


_KIB_PER_UNIT = {"Ki": 1, "Mi": 1024, "Gi": 1024 * 1024}


def _lease_timing(name: str, default: float, what: str) -> Flag:
    env = "PROMPT_OPERATOR_" + name.upper().replace("-", "_")
    return Flag(f"--{name}", f"{what}, seconds", env=env, kind="float", default=default)


FLAGS: tuple[Flag, ...] = (
    Flag(
        "--namespace",
        "watch only this namespace",
        short="-n",
        env="PROMPT_OPERATOR_NAMESPACES",
        many="repeat",
        default=(),
        shown_default="all namespaces",
        metavar="NS",
        dest="namespaces",
    ),
    Flag(
        "--log-format",
        "json in a cluster, text on a terminal (auto picks by whether stderr is a terminal)",
        env="PROMPT_OPERATOR_LOG_FORMAT",
        choices=("auto", "json", "text"),
        default="auto",
    ),
    Flag("--verbose", "debug logging", short="-v", kind="switch", default=False),
    Flag(
        "--trace-file",
        "append a timestamp for every hop of every edit to this file, as JSON lines "
        "(what `make bench` reads to show where an edit's time goes)",
        env="PROMPT_OPERATOR_TRACE_FILE",
        shown_default="off",
    ),
    Flag(
        "--health-host",
        "address of the liveness endpoint",
        env="PROMPT_OPERATOR_HEALTH_HOST",
        default="0.0.0.0",
    ),
    Flag(
        "--health-port",
        "port of the liveness endpoint /healthz; 0 disables",
        env="PROMPT_OPERATOR_HEALTH_PORT",
        kind="int",
        default=8080,
    ),
    Flag(
        "--metrics-port",
        "port of the Prometheus /metrics endpoint; 0 disables",
        env="PROMPT_OPERATOR_METRICS_PORT",
        kind="int",
        default=9090,
    ),
    Flag(
        "--workers",
        "Prompts reconciled at once",
        env="PROMPT_OPERATOR_WORKERS",
        kind="int",
        default=32,
    ),
    Flag(
        "--signal-timeout",
        "seconds to wait for one sidecar's answer",
        env="PROMPT_OPERATOR_SIGNAL_TIMEOUT",
        kind="float",
        default=2.0,
    ),
    Flag(
        "--signal-concurrency",
        "signal requests in flight at once",
        env="PROMPT_OPERATOR_SIGNAL_CONCURRENCY",
        kind="int",
        default=64,
    ),
    Flag(
        "--delivery-wait",
        "after an edit, seconds to wait for sidecars' answers so the one status write "
        "includes delivery",
        env="PROMPT_OPERATOR_DELIVERY_WAIT",
        kind="float",
        default=1.0,
    ),
    Flag(
        "--delivery-refresh",
        "at most how often (seconds) one Prompt's status.delivery is rewritten when pods "
        "come and go",
        env="PROMPT_OPERATOR_DELIVERY_REFRESH",
        kind="float",
        default=10.0,
    ),
    Flag(
        "--webhook-port",
        "serve the admission webhooks (Prompt validation, sidecar injection) over TLS on "
        "this port; 0 disables",
        env="PROMPT_OPERATOR_WEBHOOK_PORT",
        kind="int",
        default=0,
        shown_default="0, the chart sets 9443",
    ),
    Flag(
        "--webhook-cert",
        "PEM certificate for the webhook server",
        env="PROMPT_OPERATOR_WEBHOOK_CERT",
    ),
    Flag(
        "--webhook-key",
        "PEM private key for the webhook server",
        env="PROMPT_OPERATOR_WEBHOOK_KEY",
    ),
    Flag(
        "--sidecar-image",
        "image of the injected sidecar",
        env="PROMPT_OPERATOR_SIDECAR_IMAGE",
        default=DEFAULT_IMAGE,
        shown_default=DEFAULT_IMAGE.rpartition(":")[0] + " at this release; the chart sets its own",
    ),
    Flag(
        "--leader-elect",
        "run as one of several replicas: only the holder of a Lease reconciles, signals and "
        "writes; the others keep their caches warm and serve the webhooks",
        env="PROMPT_OPERATOR_LEADER_ELECT",
        kind="bool",
        default=False,
        shown_default="off, the chart turns it on",
    ),
    Flag(
        "--leader-election-namespace",
        "namespace of the Lease",
        env="PROMPT_OPERATOR_LEADER_ELECTION_NAMESPACE",
        env_then=("POD_NAMESPACE",),
        default="default",
    ),
    Flag(
        "--leader-election-id",
        "name of the Lease",
        env="PROMPT_OPERATOR_LEADER_ELECTION_ID",
        default="prompt-operator",
    ),
    Flag(
        "--identity",
        "this replica's name on the Lease",
        env="POD_NAME",
        shown_default="host name and process id",
    ),
    _lease_timing("lease-duration", 10.0, "how long a standby waits after the leader's last renew"),
    _lease_timing(
        "renew-deadline", 7.0, "how long the leader keeps trying to renew before it stops"
    ),
    _lease_timing("retry-period", 2.0, "how often every replica tries to take or renew the Lease"),
    Flag(
        "--sidecar-port",
        "signal port of the injected sidecar; the chart passes the port its NetworkPolicy opens",
        env="PROMPT_OPERATOR_SIDECAR_PORT",
        kind="int",
        default=objects.DEFAULT_PORT,
    ),
    Flag(
        "--sidecar-probe-port",
        "probe port of the injected sidecar",
        env="PROMPT_OPERATOR_SIDECAR_PROBE_PORT",
        kind="int",
        default=objects.DEFAULT_PROBE_PORT,
    ),
    Flag(
        "--sidecar-namespaces",
        "namespaces where the sidecar's prompt-sidecar service account exists (the chart "
        "passes its sidecar.namespaces); injection then refuses a pod elsewhere, or one "
        "running as the 'default' service account, saying what to set",
        env="PROMPT_OPERATOR_SIDECAR_NAMESPACES",
        many="comma",
        metavar="NS,NS",
        shown_default="not checked",
    ),
    Flag(
        "--prompt-volume-memory",
        "serve injected pods' prompt volume from memory (a tmpfs) of this size, e.g. 32Mi, "
        "and add it to the sidecar's memory limit (the files count against it)",
        env="PROMPT_OPERATOR_PROMPT_VOLUME_MEMORY",
        metavar="SIZE",
        default="",
        shown_default="the node's disk",
    ),
    Flag(
        "--prometheus-url",
        "base URL of the Prometheus HTTP API that rollouts' analysis steps query, e.g. "
        "http://prometheus-operated.monitoring:9090",
        env="PROMPT_OPERATOR_PROMETHEUS_URL",
        metavar="URL",
        shown_default="none: a Prometheus analysis step waits and says so",
    ),
    Flag(
        "--signing-secret",
        "the Secret with the keys that sign signals (Ed25519), in the operator's own "
        "namespace (--leader-election-namespace); the leader creates it when missing. "
        "Empty: signals go unsigned and every sidecar reads what it is told about",
        env="PROMPT_OPERATOR_SIGNING_SECRET",
        default="prompt-operator-signing-keys",
        empty_is_value=True,
        metavar="NAME",
    ),
    Flag(
        "--signing-rotate-after",
        "the leader replaces the signing key once it is this old, seconds (the old one "
        "keeps verifying for an hour); 0 never",
        env="PROMPT_OPERATOR_SIGNING_ROTATE_AFTER",
        kind="float",
        default=30 * 86400.0,
        shown_default="2592000, 30 days",
    ),
    Flag(
        "--kubeconfig",
        "kubeconfig file",
        env="KUBECONFIG",
        env_read_later=True,  # kopf reads KUBECONFIG, a list of files
        shown_default="the in-cluster service account, then ~/.kube/config",
    ),
)


def quantity_kib(quantity: str) -> int:
    """KiB in a binary memory quantity such as "32Mi"; ValueError saying what fits."""
    number, unit = quantity[:-2], quantity[-2:]
    if unit not in _KIB_PER_UNIT or not number.isdigit() or int(number) == 0:
        raise ValueError(f"{quantity!r} is not a size such as 512Ki, 32Mi or 1Gi")
    return int(number) * _KIB_PER_UNIT[unit]


def parser() -> argparse.ArgumentParser:
    return build_parser(FLAGS, prog="prompt-operator run", description=DESCRIPTION, epilog=EPILOG)


def parse_config(
    argv: Sequence[str] | None, environ: Mapping[str, str] = os.environ
) -> OperatorConfig:
    p = parser()
    try:
        values = parse(FLAGS, p, argv, environ)
        lease = LeaseConfig(
            namespace=values.leader_election_namespace,
            name=values.leader_election_id,
            identity=values.identity or f"{socket.gethostname()}-{os.getpid()}",
            lease_duration=values.lease_duration,
            renew_deadline=values.renew_deadline,
            retry_period=values.retry_period,
        )
    except ValueError as exc:  # FlagError, or a Lease timing that cannot work
        p.error(str(exc))
    for flag, port in (
        ("--sidecar-port", values.sidecar_port),
        ("--sidecar-probe-port", values.sidecar_probe_port),
    ):
        if not 0 < port < 65536:
            p.error(f"{flag} {port}: must be a port number from 1 to 65535")
    if values.prometheus_url and not values.prometheus_url.startswith(("http://", "https://")):
        p.error(f"--prometheus-url {values.prometheus_url!r}: must start with http:// or https://")
    try:
        memory_kib = quantity_kib(values.prompt_volume_memory) if values.prompt_volume_memory else 0
    except ValueError as exc:
        p.error(f"--prompt-volume-memory: {exc}")
    if values.sidecar_port == values.sidecar_probe_port:
        p.error("--sidecar-port and --sidecar-probe-port must differ: the sidecar listens on both")
    return fill(
        OperatorConfig,
        values,
        namespaces=tuple(dict.fromkeys(values.namespaces)),
        workers=max(1, values.workers),
        signal_concurrency=max(1, values.signal_concurrency),
        delivery_wait=max(0.0, values.delivery_wait),
        delivery_refresh=max(0.1, values.delivery_refresh),
        lease=lease,
        signing_rotate_after=max(0.0, values.signing_rotate_after),
        prompt_volume_memory_kib=memory_kib,
    )
