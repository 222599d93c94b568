"""Stopping: every long-running command exits soon after SIGTERM, and the operator
hands its Lease over on the way out; without credentials it does not start at all.

Real processes against the real API server. The time to exit is measured from
the signal to the process's end (waited on, not slept), and reported; the limit
asserted is generous (a loaded machine must not fail it), the figure is what
counts: the processes give themselves 5 s at most (see runner.py / main.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    kubectl,
    tool,
    wait_for,
)
from tests.reliability.report import Observed

from .helpers import SidecarFactory, apply, wait_prompt

# The processes' own bound is 5 s (SHUTDOWN_GRACE); this leaves room for a slow
# machine while staying far below the 40 s seen before and a pod's 30 s grace.
EXIT_LIMIT = 15.0


def lease(kubeconfig: Path, namespace: str, name: str) -> dict[str, object]:
    result = kubectl(kubeconfig, "-n", namespace, "get", "lease", name, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    spec: dict[str, object] = json.loads(result.stdout).get("spec") or {}
    return spec


def seconds_to_exit(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM ``proc`` and wait for it (SIGKILL past ``EXIT_LIMIT``); the seconds taken."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(EXIT_LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    return time.monotonic() - started


@pytest.mark.reliability(
    case="R-sigterm-operator",
    did="start `prompt-operator run --leader-elect` (one replica, healthy API server), "
    "wait until it holds the Lease and has made a Prompt Ready, send SIGTERM",
)
def test_operator_exits_soon_after_sigterm_and_releases_its_lease(
    kubeconfig: Path,
    operator_kubeconfig: Path,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
    observed: Observed,
) -> None:
    operator.stop()  # the session's operator would reconcile this namespace too
    name = "prompt-operator-shutdown"
    replica = OperatorProcess(
        operator_kubeconfig,
        tmp_path / "operator.log",
        "--leader-elect",
        "--identity=replica-t",
        f"--leader-election-namespace={namespace}",
        f"--leader-election-id={name}",
        f"--namespace={namespace}",
    )
    try:
        replica.start()
        wait_for(
            lambda: lease(kubeconfig, namespace, name).get("holderIdentity") == "replica-t",
            timeout=60,
            message="the replica holds the Lease",
        )
        from prompt_cluster.testing import prompt_manifest

        apply(kubeconfig, prompt_manifest("p", "hello"), namespace)
        wait_prompt(kubeconfig, namespace, "p")
        assert replica.proc is not None
        took = seconds_to_exit(replica.proc)
        code = replica.proc.returncode
        replica.proc = None
        spec = lease(kubeconfig, namespace, name)
        observed(
            f"exited {took:.1f} s after SIGTERM with code {code}; Lease holder afterwards "
            f"{spec.get('holderIdentity')!r}, "
            f"leaseDurationSeconds {spec.get('leaseDurationSeconds')}"
        )
        assert took < EXIT_LIMIT, replica.log.read_text()[-3000:]
        assert code == 0
        assert "exiting now" not in replica.log.read_text()  # a clean stop, not the watchdog
        assert not spec.get("holderIdentity"), spec  # released: a standby takes it at once
    finally:
        replica.stop()
        operator.start()


@pytest.mark.reliability(
    case="R-sigterm-sidecar",
    did="start a sidecar for a subscribed pod, wait until it is ready and has written a "
    "Prompt's file, send SIGTERM",
)
def test_sidecar_exits_soon_after_sigterm(
    kubeconfig: Path,
    operator: OperatorProcess,
    namespace: str,
    sidecars: SidecarFactory,
    observed: Observed,
) -> None:
    from prompt_cluster.testing import prompt_manifest

    apply(kubeconfig, prompt_manifest("p", "hello"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    sidecar = sidecars("app")
    wait_for(lambda: sidecar.file("p") == b"hello", timeout=30, message="the file written")
    assert sidecar.proc is not None
    took = seconds_to_exit(sidecar.proc)
    code = sidecar.proc.returncode
    sidecar.proc = None
    observed(f"exited {took:.1f} s after SIGTERM with code {code}")
    assert took < EXIT_LIMIT, sidecar.log.read_text()[-3000:]
    assert code == 0


@pytest.mark.reliability(
    case="R-no-credentials",
    did="run `prompt-operator run` with no kubeconfig (KUBECONFIG unset, an empty HOME) "
    "and no service account",
)
def test_operator_without_credentials_exits_at_once_saying_what_to_set(
    tmp_path: Path, observed: Observed
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    }
    env["HOME"] = str(tmp_path)
    started = time.monotonic()
    result = subprocess.run(
        [tool("prompt-operator"), "run", "--health-port=0", "--metrics-port=0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    observed(
        f"exit code {result.returncode} after {took:.1f} s; stderr: "
        + " ".join(result.stderr.strip().splitlines()[-3:])[:300]
    )
    assert result.returncode != 0
    assert "KUBECONFIG" in result.stderr
    assert "service account" in result.stderr
