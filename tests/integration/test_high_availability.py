"""R7: two operator replicas, one leader on a Lease, and nothing lost when it goes.

Each case stops the session's single operator, runs two replicas with
``--leader-elect`` (as the chart does) on the test's namespace, and puts it
back afterwards. Which replica wrote what is read from the API server's
audit log: both act as the same service account, and each sends its name in
its User-Agent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from prompt_cluster.api import Api
from prompt_cluster.pki import serving_cert
from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    audit_line_count,
    audit_writes,
    free_port,
    kubectl,
    prompt_manifest,
    wait_for,
)
from tests.reliability.report import Observed

from .conftest import OPERATOR_USER
from .helpers import SidecarFactory, apply, settle_audit, wait_prompt

pytestmark = [pytest.mark.fault, pytest.mark.slow]

LEASE = "prompt-operator-r7"
# The chart's timings: a standby may take a silent Lease after 10 s.
TIMINGS = ("--lease-duration=10", "--renew-deadline=7", "--retry-period=2")
TAKEOVER_LIMIT = 15.0


WEBHOOK_PORTS = {"a": free_port(), "b": free_port()}


@pytest.fixture
def replicas(
    operator: OperatorProcess,
    operator_kubeconfig: Path,
    cluster: object,
    namespace: str,
    tmp_path: Path,
) -> Iterator[dict[str, OperatorProcess]]:
    """Replicas "a" and "b" in place of the session's operator, which comes back after;
    each serves the admission webhooks on a port of its own."""
    certs = tmp_path / "webhook-certs"
    certs.mkdir()
    serving_cert(cluster.state.pki_dir, certs, "webhook", ("127.0.0.1",))  # type: ignore[attr-defined]
    operator.stop()
    made = {
        name: OperatorProcess(
            operator_kubeconfig,
            tmp_path / f"replica-{name}.log",
            "--leader-elect",
            f"--identity=replica-{name}",
            f"--leader-election-namespace={namespace}",
            f"--leader-election-id={LEASE}",
            f"--namespace={namespace}",
            "--delivery-refresh=0.5",
            f"--webhook-port={WEBHOOK_PORTS[name]}",
            f"--webhook-cert={certs / 'webhook.crt'}",
            f"--webhook-key={certs / 'webhook.key'}",
            *TIMINGS,
        )
        for name in ("a", "b")
    }
    try:
        for replica in made.values():
            replica.start()
        yield made
    finally:
        for replica in made.values():
            if replica.proc is not None and replica.proc.poll() is None:
                os.kill(replica.proc.pid, signal.SIGCONT)
            replica.stop()
        operator.start()


@pytest.fixture
def prompts_api(kubeconfig: Path) -> Iterator[Api]:
    api = Api(kubeconfig)
    yield api
    api.close()


def holder(kubeconfig: Path, namespace: str) -> str | None:
    result = kubectl(kubeconfig, "-n", namespace, "get", "lease", LEASE, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    name = json.loads(result.stdout)["spec"].get("holderIdentity") or None
    return name.removeprefix("replica-") if name else None


def writes_by_replica(
    audit_log: Path, since: int, namespace: str, landed_only: bool = False
) -> list[tuple[float, str]]:
    """(time received, replica) of every write the replicas made in ``namespace``;
    with ``landed_only``, only those the API server accepted (a write it refused,
    such as a Lease update that lost on its resourceVersion, changed nothing)."""
    found = []
    for event in audit_writes(audit_log, OPERATOR_USER, since):
        if (event.get("objectRef") or {}).get("namespace") != namespace:
            continue
        if landed_only and (event.get("responseStatus") or {}).get("code", 200) >= 300:
            continue
        agent = str(event.get("userAgent", ""))
        replica = agent.removeprefix("prompt-operator/replica-")
        when = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        found.append((when.timestamp(), replica if replica != agent else agent))
    return sorted(found)


def turns(writes: list[tuple[float, str]]) -> list[str]:
    """Who wrote, in order, with repeats folded: ["a", "b"] is one handover."""
    order: list[str] = []
    for _, replica in writes:
        if not order or order[-1] != replica:
            order.append(replica)
    return order


class Editor(threading.Thread):
    """Edits every Prompt in rounds; ``last`` is what each must end up serving."""

    def __init__(self, api: Api, namespace: str, names: list[str], rounds: int) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace, self.names, self.rounds = api, namespace, names, rounds
        self.last = {name: f"{name} edit 0" for name in names}
        self.sent = 0
        self.failures: list[BaseException] = []

    def run(self) -> None:
        try:
            for number in range(1, self.rounds + 1):
                for name in self.names:
                    text = f"{name} edit {number}"
                    self.api.edit_prompt(self.namespace, name, text)
                    self.last[name] = text
                    self.sent += 1
                    time.sleep(0.01)  # a steady stream, not one burst
        except BaseException as exc:  # surfaced by the assertion in the test
            self.failures.append(exc)


def start_prompts(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, names: list[str]
) -> SidecarProcess:
    items = [prompt_manifest(name, f"{name} edit 0") for name in names]
    apply(kubeconfig, {"apiVersion": "v1", "kind": "List", "items": items}, namespace)
    for name in names:
        wait_prompt(kubeconfig, namespace, name, timeout=60)
    return sidecars("app")


def behind(pod: SidecarProcess, last: dict[str, str]) -> list[str]:
    return [name for name, text in last.items() if pod.file(name) != text.encode()]


@pytest.mark.reliability(
    case="R7 leader killed",
    did="two replicas with leader election; 20 Prompts edited 15 times each through the "
    "API; the leader SIGKILLed after 100 edits; the audit log says who wrote when",
)
def test_r7_standby_takes_over_when_the_leader_is_killed(
    kubeconfig: Path,
    namespace: str,
    audit_log: Path,
    sidecars: SidecarFactory,
    replicas: dict[str, OperatorProcess],
    prompts_api: Api,
    observed: Observed,
) -> None:
    since = audit_line_count(audit_log)
    leader = wait_for(lambda: holder(kubeconfig, namespace), timeout=30, message="a leader")
    standby = "b" if leader == "a" else "a"
    names = [f"p{i:02d}" for i in range(20)]
    pod = start_prompts(kubeconfig, namespace, sidecars, names)
    editor = Editor(prompts_api, namespace, names, rounds=15)
    editor.start()
    wait_for(lambda: editor.sent >= 100 or editor.failures, timeout=60, interval=0.01)
    replicas[leader].kill()
    killed = time.monotonic()
    wait_for(
        lambda: holder(kubeconfig, namespace) == standby,
        timeout=30,
        interval=0.1,
        message="the standby to take the Lease",
    )
    takeover = time.monotonic() - killed
    editor.join(timeout=120)
    assert not editor.failures, editor.failures
    wait_for(
        lambda: not behind(pod, editor.last),
        timeout=60,
        interval=0.1,
        message=lambda: f"every file at its last edit; behind: {behind(pod, editor.last)}",
    )
    delivered = time.monotonic() - killed
    for name in names:
        wait_prompt(kubeconfig, namespace, name)
    settle_audit(audit_log)
    writes = writes_by_replica(audit_log, since, namespace)
    assert turns(writes) == [leader, standby], turns(writes)
    assert takeover <= TAKEOVER_LIMIT, takeover
    # Its JSON log lines name what they are about in fields of their own.
    created = [r for r in replicas[standby].log_records() if "created" in str(r.get("message"))]
    assert created, "no revision was logged by the new leader"
    assert created[-1]["namespace"] == namespace and created[-1]["prompt"] in names
    assert created[-1]["revision"] in str(created[-1]["message"])
    observed(
        f"standby held the Lease {takeover:.1f} s after the kill; all {editor.sent} edits "
        f"delivered ({delivered:.1f} s after the kill); writes: {len(writes)}, all by "
        f"{leader} before the kill and by {standby} after, never interleaved"
    )


@pytest.mark.reliability(
    case="R7 leader partitioned",
    did="the leader SIGSTOPped (cut off from the API server) during edits, then resumed "
    "after the standby took over",
)
def test_r7_a_partitioned_leader_hands_over_and_stops_writing_when_it_resumes(
    kubeconfig: Path,
    namespace: str,
    audit_log: Path,
    sidecars: SidecarFactory,
    replicas: dict[str, OperatorProcess],
    prompts_api: Api,
    observed: Observed,
) -> None:
    since = audit_line_count(audit_log)
    leader = wait_for(lambda: holder(kubeconfig, namespace), timeout=30, message="a leader")
    standby = "b" if leader == "a" else "a"
    names = [f"p{i:02d}" for i in range(10)]
    pod = start_prompts(kubeconfig, namespace, sidecars, names)
    paused = replicas[leader].proc
    assert paused is not None
    editor = Editor(prompts_api, namespace, names, rounds=10)
    editor.start()
    wait_for(lambda: editor.sent >= 30 or editor.failures, timeout=60, interval=0.01)
    os.kill(paused.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    wait_for(
        lambda: holder(kubeconfig, namespace) == standby,
        timeout=30,
        interval=0.1,
        message="the standby to take the Lease",
    )
    takeover = time.monotonic() - stopped
    editor.join(timeout=120)
    assert not editor.failures, editor.failures
    wait_for(
        lambda: not behind(pod, editor.last),
        timeout=60,
        interval=0.1,
        message=lambda: f"every file at its last edit; behind: {behind(pod, editor.last)}",
    )
    resumed_at = time.time()
    os.kill(paused.pid, signal.SIGCONT)
    code = wait_for(lambda: paused.poll(), timeout=30, interval=0.1, message="old leader to exit")
    replicas[leader].proc = None
    # One more edit after it is gone: the new leader alone delivers it.
    prompts_api.edit_prompt(namespace, names[0], "after the partition")
    wait_for(lambda: pod.file(names[0]) == b"after the partition", timeout=30)
    settle_audit(audit_log)
    sent = writes_by_replica(audit_log, since, namespace)
    writes = writes_by_replica(audit_log, since, namespace, landed_only=True)
    refused = [w for w in sent if w[1] == leader and w[0] >= resumed_at and w not in writes]
    late = [w for w in writes if w[1] == leader and w[0] >= resumed_at]
    assert late == [], late
    assert turns(writes) == [leader, standby], turns(writes)
    assert code == 1
    assert takeover <= TAKEOVER_LIMIT, takeover
    records = replicas[leader].log_records()
    assert any("lost the lease" in str(r.get("message")) for r in records)
    observed(
        f"standby held the Lease {takeover:.1f} s after the pause; every edit delivered; "
        f"the old leader made 0 writes after it resumed ({len(refused)} refused by the "
        f"API server) and exited with code {code}"
    )


def test_every_replica_serves_the_webhooks_and_is_healthy(
    kubeconfig: Path, namespace: str, cluster: object, replicas: dict[str, OperatorProcess]
) -> None:
    """The standby is not merely waiting to start: it is healthy and its admission
    webhook server answers TLS with the cluster's certificate, as the leader's does."""
    leader = wait_for(lambda: holder(kubeconfig, namespace), timeout=30, message="a leader")
    context = ssl.create_default_context(cafile=str(cluster.state.pki_dir / "ca.crt"))  # type: ignore[attr-defined]
    for name, replica in replicas.items():
        url = f"http://127.0.0.1:{replica.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200, name
        with (
            socket.create_connection(("127.0.0.1", WEBHOOK_PORTS[name]), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() is not None, name
    assert leader in replicas
