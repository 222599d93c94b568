"""`prompt-operator run`: start kopf with our handlers; the user never sees kopf's CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import threading
from collections.abc import Sequence

from prompt_contract import hops

from .config import OperatorConfig, parse_config


def _configure_logging(config: OperatorConfig) -> None:
    import kopf

    fmt = config.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if fmt == "json" else kopf.LogFormat.FULL,
        log_refkey="object",  # kopf's own object lines; ours carry prompt, namespace, ...
    )
    # kopf's own per-event chatter is noise at INFO in a busy cluster.
    if not config.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)


NO_CREDENTIALS = """\
prompt-operator run: error: no Kubernetes credentials found.
  In a cluster: run in a pod whose service account token is mounted (the chart's default;
    KUBERNETES_SERVICE_HOST and /var/run/secrets/kubernetes.io/serviceaccount/token).
  Elsewhere: pass --kubeconfig PATH, or set KUBECONFIG,
    or create ~/.kube/config."""


def _credentials_found() -> bool:
    """kopf would log "failed permanently" and keep running without credentials:
    look for them first, as kopf's login will, and say what to do if there are none."""
    from .runtime import kubeconfig

    try:
        found = kubeconfig.find()
    except Exception as exc:  # a kubeconfig that exists but cannot be used
        print(f"prompt-operator run: error: cannot use the credentials: {exc}", file=sys.stderr)
        return False
    if found is None:
        print(NO_CREDENTIALS, file=sys.stderr)
        return False
    return True


def _raise_open_files_limit() -> None:
    """Soft open-files limit up to the hard one, as Go programs do at start.

    The signal transport keeps an idle connection to each pod it signals (at
    most half the soft limit): container runtimes often set a soft limit of
    1,024 under a hard one of a million, which would cap it at 512 pods."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # some sandboxes refuse; the default stays
            logging.getLogger(__name__).info("open-files limit stays at %d: %s", soft, exc)


def run(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    if not _credentials_found():
        return 2

    if config.webhook_port:
        from . import admission  # noqa: F401  (registers the webhooks)

    _configure_logging(config)
    _raise_open_files_limit()
    try:
        hops.enable(config.trace_file)
    except hops.TraceFileError as exc:
        print(f"prompt-operator run: error: --trace-file: {exc}", file=sys.stderr)
        return 2
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.health_host)
    liveness = (
        f"http://{config.health_host}:{config.health_port}/healthz" if config.health_port else None
    )
    stop = threading.Event()  # set when this replica lost the lease
    memo = kopf.Memo(config=config, stop=stop, lost_leadership=False)

    async def operate() -> None:
        try:
            await kopf.operator(
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                # kopf's peering is active/standby by priority, and a standby kopf
                # stops watching; our own Lease election (--leader-elect) keeps
                # every replica's caches warm and its webhooks served instead.
                standalone=True,
                liveness_endpoint=liveness,
                memo=memo,
                stop_flag=stop,
            )
        finally:
            # kopf waits for a threading stop flag in a thread of the default
            # executor, and asyncio.run joins that thread at its end: unset (a
            # SIGTERM, a failed start), it kept the process alive until SIGKILL.
            # The cleanup handler sets it too, since kopf waits for it first.
            stop.set()

    asyncio.run(operate())
    # A replica that lost the lease exits non-zero, as controller-runtime's do,
    # and comes back as a standby.
    return 1 if memo.get("lost_leadership") else 0
