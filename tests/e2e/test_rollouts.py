"""Progressive rollouts on a real node, judged by a real Prometheus.

App pods count their outcomes with the real client (`log_usage(outcome=...)`,
`prompt_usage_total` through prometheus_client); a real Prometheus on the host
scrapes them; the chart points the operator at it. This app's "model"
resolves a conversation when its prompt says GOOD, so a candidate without it is
clearly worse. Each user (a random id per conversation) is split by
`variant_key`, so every pod serves both sides of a rollout.

The tests share one release and one app Deployment and run in file order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.node_config import NODE_IP
from prompt_cluster.prometheus import PrometheusServer
from prompt_cluster.testing import kubectl, kubectl_json, wait_for

from .helpers import (
    OPERATOR_NAMESPACE,
    RELEASE,
    Node,
    apply,
    exec_in,
    lease_holder,
    pods,
    prompt_status,
)

pytestmark = pytest.mark.timeout(1800)

NAMESPACE = "default"  # the chart's default sidecar namespace
APP = "outcome-app"
REPLICAS = 3
PROMPT = "answer"

APP_SCRIPT = """
import time, uuid
from prometheus_client import start_http_server
from prompt_client import create_prompt_registry

start_http_server(8000)
prompts = create_prompt_registry(outcomes=("resolved", "escalated"))
while True:
    user = uuid.uuid4().hex  # one conversation
    if "answer" in prompts:
        text = prompts.render("answer", variant_key=user)
        outcome = "resolved" if "GOOD" in text else "escalated"
        prompts.log_usage("answer", variant_key=user, outcome=outcome)
    time.sleep(0.02)
"""


# An eval suite in one line: the candidate passes when its text says GOOD.
EVAL_SCRIPT = (
    "import os, sys; print('eval of', os.environ['PROMPT_REVISION']);"
    " sys.exit(0 if 'GOOD' in os.environ['PROMPT_TEXT'] else 1)"
)


def app_deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP, "prompts.dev/inject": "true"}},
                "spec": {
                    "serviceAccountName": "prompt-sidecar",
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", APP_SCRIPT],
                            "ports": [{"containerPort": 8000, "name": "metrics"}],
                        }
                    ],
                },
            },
        },
    }


def prompt(text: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": {"name": PROMPT},
        "spec": {"template": text, "rollout": {"steps": steps}},
    }


def prometheus_analysis(**overrides: Any) -> dict[str, Any]:
    spec = {
        "goodOutcomes": ["resolved"],
        "threshold": {"maxDropFromStable": 0.2},
        "minSamples": 20,
        "interval": "3s",
        "count": 2,
        "failureLimit": 0,
        **overrides,
    }
    return {"analysis": {"prometheus": spec}}


@pytest.fixture(scope="module")
def rollouts(real_node: Node) -> Iterator[Node]:
    kubeconfig = real_node.kubeconfig
    with PrometheusServer(host=NODE_IP) as prom:
        real_node.helm_run(
            "install", RELEASE, str(real_node.chart), "--namespace", OPERATOR_NAMESPACE,
            "--create-namespace", "--set", f"rollouts.prometheus.url={prom.url}",
            "--wait", "--timeout=5m",
        )  # fmt: skip
        try:
            apply(kubeconfig, NAMESPACE, prompt("GOOD v1", [{"setWeight": 100}]))
            image = release_image(real_node)
            apply(kubeconfig, NAMESPACE, app_deployment(image))
            kubectl(kubeconfig, "rollout", "status", f"deploy/{APP}", "--timeout=180s", timeout=210)
            prom.set_targets([f"{p['status']['podIP']}:8000" for p in app_pods(kubeconfig)])
            prom.wait_until_scraped(timeout=60)
            yield real_node
        finally:
            kubectl(kubeconfig, "-n", NAMESPACE, "delete", "deployment", APP, "--wait", check=False)
            kubectl(kubeconfig, "-n", NAMESPACE, "delete", "prompt", PROMPT, check=False)
            real_node.helm_run("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")
            for namespace, selector in (
                (OPERATOR_NAMESPACE, "app.kubernetes.io/name=prompt-operator"),
                (NAMESPACE, f"app={APP}"),
            ):
                kubectl(
                    kubeconfig, "-n", namespace, "wait", "--for=delete", "pod", "-l", selector,
                    "--timeout=120s", timeout=150,
                )  # fmt: skip


def release_image(node: Node) -> str:
    (operator,) = kubectl_json(
        node.kubeconfig, "-n", OPERATOR_NAMESPACE, "get", "deploy", "-o", "json"
    )["items"][:1]
    return str(operator["spec"]["template"]["spec"]["containers"][0]["image"])


def app_pods(kubeconfig: Path) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kubeconfig, NAMESPACE, f"app={APP}")
        if not p["metadata"].get("deletionTimestamp")
    ]


def files(kubeconfig: Path) -> list[str]:
    """The prompt's file in every app pod, as the app reads it."""
    out = []
    for pod in app_pods(kubeconfig):
        found = exec_in(
            kubeconfig, NAMESPACE, pod["metadata"]["name"], "app",
            "cat", f"/prompts/{PROMPT}.txt", check=False,
        )  # fmt: skip
        out.append(found.stdout if found.returncode == 0 else "")
    return out


def rollout(kubeconfig: Path) -> dict[str, Any]:
    return dict(prompt_status(kubeconfig, NAMESPACE, PROMPT).get("rollout") or {})


def phase_is(kubeconfig: Path, phase: str) -> dict[str, Any] | None:
    found = rollout(kubeconfig)
    return found if found.get("phase") == phase else None


def delivered(kubeconfig: Path) -> bool:
    summary = (prompt_status(kubeconfig, NAMESPACE, PROMPT).get("delivery") or {}).get("summary")
    return summary == f"{REPLICAS}/{REPLICAS}"


def test_a_clearly_worse_candidate_is_aborted_and_every_pod_serves_stable(rollouts: Node) -> None:
    kubeconfig = rollouts.kubeconfig
    wait_for(lambda: files(kubeconfig) == ["GOOD v1"] * REPLICAS, timeout=60, message="v1 served")
    apply(
        kubeconfig, NAMESPACE,
        prompt("BAD v2", [{"setWeight": 50}, prometheus_analysis(), {"setWeight": 100}]),
    )  # fmt: skip
    aborted = wait_for(
        lambda: phase_is(kubeconfig, "Aborted"), timeout=180, interval=1,
        message=lambda: f"the rollout to abort: {json.dumps(rollout(kubeconfig))[:2000]}",
    )  # fmt: skip
    (run,) = [r for r in aborted["analysisRuns"] if r["provider"] == "prometheus"]
    assert run["phase"] == "Failed", run
    worst = run["measurements"][-1]
    assert worst["value"] < worst["stable"] - 0.2, worst  # BAD resolves nothing
    wait_for(
        lambda: files(kubeconfig) == ["GOOD v1"] * REPLICAS and delivered(kubeconfig),
        timeout=30, interval=0.5,
        message=lambda: f"every pod back on the stable text: {files(kubeconfig)}",
    )  # fmt: skip
    status = prompt_status(kubeconfig, NAMESPACE, PROMPT)
    served = {c["type"]: c for c in status["conditions"]}["SpecServed"]
    assert served["status"] == "False" and served["reason"] == "RolloutAborted", served
    assert "new spec" in served["message"], served


def test_a_candidate_as_good_is_promoted_through_every_step(rollouts: Node) -> None:
    kubeconfig = rollouts.kubeconfig
    steps = [{"setWeight": 30}, prometheus_analysis(), {"setWeight": 60}, prometheus_analysis()]
    apply(kubeconfig, NAMESPACE, prompt("GOOD v3", steps))
    promoted = wait_for(
        lambda: phase_is(kubeconfig, "Promoted"), timeout=240, interval=1,
        message=lambda: f"the rollout to promote: {json.dumps(rollout(kubeconfig))[:2000]}",
    )  # fmt: skip
    runs = [r for r in promoted["analysisRuns"] if r["provider"] == "prometheus"]
    assert [r["phase"] for r in runs] == ["Successful", "Successful"], runs
    wait_for(
        lambda: files(kubeconfig) == ["GOOD v3"] * REPLICAS and delivered(kubeconfig),
        timeout=30, interval=0.5, message=lambda: f"GOOD v3 everywhere: {files(kubeconfig)}",
    )  # fmt: skip


def test_a_job_analysis_that_exits_1_aborts(rollouts: Node) -> None:
    kubeconfig = rollouts.kubeconfig
    image = release_image(rollouts)
    eval_job = {
        "analysis": {
            "job": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                        "containers": [
                            {
                                "name": "eval",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", EVAL_SCRIPT],
                            }
                        ],
                    }
                }
            }
        }
    }  # fmt: skip
    apply(kubeconfig, NAMESPACE, prompt("BAD v4", [{"setWeight": 50}, eval_job]))
    aborted = wait_for(
        lambda: phase_is(kubeconfig, "Aborted"), timeout=180, interval=1,
        message=lambda: f"the job analysis to abort: {json.dumps(rollout(kubeconfig))[:2000]}",
    )  # fmt: skip
    (run,) = [r for r in aborted["analysisRuns"] if r["provider"] == "job"]
    assert run["phase"] == "Failed" and run["job"], run
    wait_for(
        lambda: files(kubeconfig) == ["GOOD v3"] * REPLICAS and delivered(kubeconfig),
        timeout=30, interval=0.5, message=lambda: f"GOOD v3 again: {files(kubeconfig)}",
    )  # fmt: skip


def test_the_standby_carries_on_from_the_same_step_when_the_leader_dies(rollouts: Node) -> None:
    kubeconfig = rollouts.kubeconfig
    steps = [
        {"setWeight": 30},
        {"pause": {"duration": "20s"}},
        {"setWeight": 60},
        {"pause": {"duration": "2s"}},
    ]
    apply(kubeconfig, NAMESPACE, prompt("GOOD v5", steps))
    paused = wait_for(
        lambda: (r := rollout(kubeconfig)).get("step") == 1 and r.get("pauseUntil") and r,
        timeout=60, interval=0.5, message=lambda: f"the timed pause: {rollout(kubeconfig)}",
    )  # fmt: skip
    leader = lease_holder(kubeconfig)
    kubectl(
        kubeconfig, "-n", OPERATOR_NAMESPACE, "delete", "pod", leader, "--grace-period=0",
        "--force", check=False,
    )  # fmt: skip
    wait_for(
        lambda: (h := lease_holder(kubeconfig)) and h != leader, timeout=60, interval=0.5,
        message="the standby to take the Lease",
    )  # fmt: skip
    promoted = wait_for(
        lambda: phase_is(kubeconfig, "Promoted"), timeout=120, interval=1,
        message=lambda: f"the rollout to finish: {rollout(kubeconfig)}",
    )  # fmt: skip
    # The standby went on from the pause: it kept the leader's deadline (the
    # step after it began no earlier, and not a whole pause later), and served
    # each step's weight once.
    assert promoted["candidateRevision"] == paused["candidateRevision"]
    history = prompt_status(kubeconfig, NAMESPACE, PROMPT)["revisions"]
    marker = f"rollout {paused['candidateRevision'][:8]} step"
    served = [h["source"] for h in history if h.get("source", "").startswith(marker)]
    assert served == [f"{marker} 1/4: canary 30%", f"{marker} 3/4: canary 60%"], served
