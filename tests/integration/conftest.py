"""Integration fixtures: the operator runs as a real process under its own
service account, so the API server's audit log tells its writes apart."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_cluster.pki import serving_cert
from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    free_port,
    service_account_kubeconfig,
    sidecar_role,
)

from .helpers import SidecarFactory

OPERATOR_NAMESPACE = "prompt-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:prompt-operator"


@pytest.fixture(scope="session")
def operator_kubeconfig(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return service_account_kubeconfig(
        kubeconfig,
        OPERATOR_NAMESPACE,
        "prompt-operator",
        tmp_path_factory.mktemp("operator") / "kubeconfig",
        cluster_role="cluster-admin",
    )


@pytest.fixture(scope="session")
def webhook_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def operator(
    operator_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
    cluster: object,
    webhook_port: int,
) -> Iterator[OperatorProcess]:
    """One operator for the session, watching every namespace and serving the
    admission webhooks over TLS with a certificate from the cluster's CA (the
    webhook configurations exist only while test_admission runs)."""
    certs = tmp_path_factory.mktemp("webhook-certs")
    serving_cert(cluster.state.pki_dir, certs, "webhook", ("127.0.0.1",))  # type: ignore[attr-defined]
    proc = OperatorProcess(
        operator_kubeconfig,
        tmp_path_factory.mktemp("operator-log") / "operator.log",
        "--delivery-refresh=0.5",
        f"--webhook-port={webhook_port}",
        f"--webhook-cert={certs / 'webhook.crt'}",
        f"--webhook-key={certs / 'webhook.key'}",
        "--sidecar-image=example.invalid/prompt-operator:test",
        metrics=True,
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def operator_stopped(operator: OperatorProcess) -> Iterator[None]:
    """For tests that write a Prompt's status by hand (to show the CLI or the
    console a state): no operator rewrites it meanwhile."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture
def audit_log(cluster: object) -> Path:
    return cluster.state.audit_log  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def sidecars(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[SidecarFactory]:
    """Make app pods with a running sidecar, acting with the sidecar's least privilege."""
    made: list[SidecarProcess] = []
    sidecar_kubeconfig = sidecar_role(kubeconfig, namespace, tmp_path / "sidecar.kubeconfig")

    def make(name: str = "app", *, start: bool = True, **kwargs: object) -> SidecarProcess:
        sidecar = SidecarProcess(
            kubeconfig, sidecar_kubeconfig, namespace, name, tmp_path, **kwargs
        )  # type: ignore[arg-type]
        made.append(sidecar)
        if start:
            sidecar.start()
        return sidecar

    yield make
    for sidecar in made:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            os.kill(sidecar.proc.pid, signal.SIGCONT)  # a paused one must be able to stop
        sidecar.stop()
