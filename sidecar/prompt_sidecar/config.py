"""Settings of `prompt-sidecar`: flags, each with an environment fallback.

``parse_config`` is pure (argv and environment in, a frozen value or
``ConfigError`` out), so every rule here is unit-tested without a process.
The pod's identity, address and selector come only from the downward API:
no flag can make the sidecar disagree with the operator about what the pod
consumes.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prompt_contract import objects, signals
from prompt_contract.files import DEFAULT_EXT
from prompt_contract.flags import Flag, FlagError, fill, parse
from prompt_contract.flags import build_parser as build
from prompt_contract.selector import Selector, SelectorError, parse_selector
from prompt_contract.writer import ext_problem

DEFAULT_RESYNC = 300.0

DESCRIPTION = """\
Run beside an app in the same pod: write every Prompt the pod subscribes to as
<key><ext> into DIR (a volume shared with the app), atomically, then report
ready; apply the operator's signals as they come; re-list on a timer so a
missed signal heals. If the API server is unreachable the files stay as they
are, /healthz says "degraded", and it retries with backoff.
"""

EPILOG = f"""\
example (what the chart's injection puts in a pod; flags may also come from env):
  prompt-sidecar --dir /prompts --port 8470 --probe-port 8471

environment set through the downward API:
  POD_NAME          the pod's name (metadata.name; required)
  POD_NAMESPACE     the pod's namespace (metadata.namespace; required); only
                    ConfigMaps there are read, so get/list on ConfigMaps in
                    this namespace is all the RBAC it needs
  POD_IP            address to listen on (status.podIP; default 0.0.0.0)
  PROMPT_SELECTOR   the pod's {objects.SELECTOR_ANNOTATION} annotation: a label
                    selector over Prompts (empty: every Prompt in the
                    namespace); always combined with
                    {objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}

credentials: --kubeconfig / KUBECONFIG (first file of the list), else the
pod's service account in {"/var/run/secrets/kubernetes.io/serviceaccount"}.

endpoints on POD_IP:PORT:
  POST {signals.SIGNAL_PATH}   signals from the operator (JSON, at most 128 KiB)
  GET  /readyz       200 once the first full sync wrote every file, else 503
  GET  /healthz      JSON: status ok|degraded, lastSyncTime, lastSyncRevisions,
                     lastError
  GET  /metrics      Prometheus text format
"""


class ConfigError(ValueError):
    """A setting that cannot work; the message names the flag or variable."""


@dataclass(frozen=True)
class SidecarConfig:
    directory: str
    port: int
    probe_port: int  # 0: probes on the signal port only
    ext: str
    resync: float
    kubeconfig: str | None
    pod: str
    namespace: str
    address: str
    selector: Selector
    log_format: str
    trace_file: str | None = None  # one JSON line per hop of every edit (the bench's trace)


FLAGS: tuple[Flag, ...] = (
    Flag(
        "--dir",
        "directory to write prompt files into, shared with the app",
        env="PROMPT_DIR",
        required=True,
        dest="directory",
    ),
    Flag(
        "--port",
        f"port for signals, health and metrics; must match the pod's {objects.PORT_ANNOTATION} "
        "annotation",
        env="PROMPT_SIDECAR_PORT",
        kind="int",
        default=objects.DEFAULT_PORT,
    ),
    Flag(
        "--probe-port",
        "port for /readyz, /healthz, /livez and /metrics alone, so that a flood on the signal port "
        "never fails the pod's probes; 0: none",
        env="PROMPT_SIDECAR_PROBE_PORT",
        kind="int",
        default=objects.DEFAULT_PROBE_PORT,
    ),
    Flag(
        "--ext",
        "extension of the prompt files; empty: none",
        env="PROMPT_EXT",
        default=DEFAULT_EXT,
        empty_is_value=True,
    ),
    Flag(
        "--resync",
        "seconds between full re-lists that heal a missed signal",
        env="PROMPT_RESYNC_SECONDS",
        kind="float",
        default=DEFAULT_RESYNC,
    ),
    Flag(
        "--kubeconfig",
        "kubeconfig file; of a list in KUBECONFIG, the first",
        env="KUBECONFIG",
        shown_default="the pod's service account",
    ),
    Flag(
        "--log-format",
        "log lines as JSON or text; auto: JSON unless stderr is a terminal",
        env="PROMPT_LOG_FORMAT",
        choices=("auto", "json", "text"),
        default="auto",
    ),
    Flag(
        "--trace-file",
        "append a timestamp for every hop of every edit to this file, as JSON lines "
        "(what `make bench` reads)",
        env="PROMPT_TRACE_FILE",
        shown_default="off",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    return build(FLAGS, prog="prompt-sidecar", description=DESCRIPTION, epilog=EPILOG)


def _port(port: int) -> int:
    if not 0 < port < 65536:
        raise ConfigError(f"--port / PROMPT_SIDECAR_PORT {port}: must be a number from 1 to 65535")
    return port


def _probe_port(probe: int, port: int) -> int:
    if not 0 <= probe < 65536:
        raise ConfigError(
            f"--probe-port / PROMPT_SIDECAR_PROBE_PORT {probe}: must be a number from 0 to 65535"
        )
    if probe == port:
        raise ConfigError(
            f"--probe-port {probe} is the signal port too: choose another, or 0 for none"
        )
    return probe


def _resync(seconds: float) -> float:
    if not 0 < seconds < 7 * 24 * 3600:  # also refuses nan and inf
        raise ConfigError(
            f"--resync / PROMPT_RESYNC_SECONDS {seconds}: must be a positive number of seconds"
        )
    return seconds


def _ext(raw: str) -> str:
    problem = ext_problem(raw)  # the writer's own rule, so the two never disagree
    if problem:
        raise ConfigError(f"--ext / PROMPT_EXT {raw!r}: {problem}")
    return raw


def _address(raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw.strip("[]")))
    except ValueError:
        raise ConfigError(f"POD_IP {raw!r}: must be an IP address (status.podIP)") from None


def config_from(values: argparse.Namespace, environ: Mapping[str, str]) -> SidecarConfig:
    """Check typed flag values and the downward-API environment; raise ``ConfigError``."""
    missing = [n for n in ("POD_NAME", "POD_NAMESPACE") if not environ.get(n)]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} must be set through the downward API "
            "(fieldRef metadata.name, metadata.namespace)"
        )
    try:
        selector = parse_selector(environ.get("PROMPT_SELECTOR", ""))
    except SelectorError as exc:
        raise ConfigError(
            f"PROMPT_SELECTOR (the pod's {objects.SELECTOR_ANNOTATION} annotation): {exc}"
        ) from None
    port = _port(values.port)
    return fill(
        SidecarConfig,
        values,
        port=port,
        probe_port=_probe_port(values.probe_port, port),
        ext=_ext(values.ext),
        resync=_resync(values.resync),
        pod=environ["POD_NAME"],
        namespace=environ["POD_NAMESPACE"],
        address=_address(environ.get("POD_IP") or "0.0.0.0"),
        selector=selector,
    )


def parse_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> SidecarConfig:
    """Parse flags with environment fallbacks; argparse exits on --help and on
    unknown flags, everything else raises ``ConfigError``."""
    try:
        values = parse(FLAGS, build_parser(), argv, environ)
    except FlagError as exc:
        raise ConfigError(str(exc)) from None
    return config_from(values, environ)
