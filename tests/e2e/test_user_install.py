"""The release installed on a real node, and an app that the webhook injects
the sidecar into, driven the way a user drives them: the packaged chart with
helm, the image from its archive, install.yaml, the CLI from the wheels.

The tests share one release and one app Deployment (pods take seconds, not
milliseconds) and run in file order; each sets up what it relies on (replica
count, Prompts) itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster import node as node_mod
from prompt_cluster import release as release_mod
from prompt_cluster.testing import kubectl, kubectl_json, prompt_manifest, tool, wait_for

from .helpers import (
    DEMO_IMAGE,
    OPERATOR_NAMESPACE,
    RELEASE,
    REPO,
    Node,
    apply,
    exec_in,
    lease_holder,
    logs,
    pods,
    prompt_status,
    wait_rollout,
)

# The first test also builds the images (cached) and starts the node.
pytestmark = pytest.mark.timeout(1800)

APP_NAMESPACE = "e2e-app"
APP = "helpdesk"
APP_SELECTOR = f"app={APP}"
SIDECAR = "prompt-sidecar"


@pytest.fixture(scope="module")
def user_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv with the two wheels `make dist` built and their
    dependencies from the package index, as `pip install prompt-operator`
    gives a user; its bin folder."""
    venv = tmp_path_factory.mktemp("user-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheels = [str(w) for w in sorted(dist.glob("*.whl"))]
    installed = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", *wheels],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return venv / "bin"


def test_the_wheels_alone_install_the_cli_and_the_client(user_venv: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(user_venv / args[0]), *args[1:]],
            capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        )  # fmt: skip

    validate = run("prompt-operator", "validate", "examples/")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    versions = run(
        "python", "-c",
        "import prompt_client, prompt_operator, importlib.metadata as m;"
        "print(prompt_operator.__version__, prompt_client.__version__,"
        " m.distribution('prompt-operator-client').read_text('RECORD').count('prompt_client/'))",
    )  # fmt: skip
    version = release_mod.read_version()
    # prompt_client belongs to the client's distribution, which pip knows of.
    operator_version, client_version, owned = versions.stdout.split()
    assert (operator_version, client_version) == (version, version), versions.stderr
    assert int(owned) > 0
    check = run("pip", "check")
    assert check.returncode == 0, check.stdout


@pytest.fixture(scope="module")
def release(real_node: Node) -> Iterator[Node]:
    """`helm install` with the chart's defaults, plus the app's namespace."""
    kubectl(real_node.kubeconfig, "create", "namespace", APP_NAMESPACE)
    real_node.helm_run(
        "install", RELEASE, str(real_node.chart),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        "--set", f"sidecar.namespaces={{{APP_NAMESPACE}}}",
        "--wait", "--timeout=5m",
    )  # fmt: skip
    yield real_node


def app_deployment(replicas: int = 1) -> dict[str, Any]:
    """The demo app, labelled for injection; it prints its prompt at start."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": APP_NAMESPACE},
        "spec": {
            "replicas": replicas,
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
                            "image": DEMO_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": ["/prompts", "system"],
                        }
                    ],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def app(release: Node) -> Node:
    apply(release.kubeconfig, APP_NAMESPACE, prompt_manifest("system", "You are helpful. v1"))
    apply(release.kubeconfig, APP_NAMESPACE, app_deployment())
    wait_rollout(release.kubeconfig, APP_NAMESPACE, APP)
    return release


def app_pods(kubeconfig: Path) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kubeconfig, APP_NAMESPACE, APP_SELECTOR)
        if not p["metadata"].get("deletionTimestamp")
    ]


def read_prompt(kubeconfig: Path, pod: str, key: str = "system") -> str | None:
    result = exec_in(
        kubeconfig, APP_NAMESPACE, pod, "app", "cat", f"/prompts/{key}.txt", check=False
    )
    return result.stdout if result.returncode == 0 else None


def first_log_line(kubeconfig: Path, namespace: str, pod: str) -> str:
    """The app's first line (it may still be starting when its pod is Ready)."""
    return str(
        wait_for(
            lambda: logs(kubeconfig, namespace, pod, "app").splitlines()[:1],
            timeout=30,
            interval=0.2,
            message=f"a first log line from {pod}",
        )[0]
    )


def delivery(kubeconfig: Path, name: str) -> str:
    return str(
        (prompt_status(kubeconfig, APP_NAMESPACE, name).get("delivery") or {}).get("summary")
    )


def scale(kubeconfig: Path, replicas: int) -> list[dict[str, Any]]:
    kubectl(kubeconfig, "-n", APP_NAMESPACE, "scale", f"deployment/{APP}", f"--replicas={replicas}")
    wait_rollout(kubeconfig, APP_NAMESPACE, APP)
    return wait_for(
        lambda: (found := app_pods(kubeconfig)) and len(found) == replicas and found,
        timeout=120,
        interval=0.5,
        message=f"{replicas} app pods",
    )


def test_operator_runs_as_the_chart_ships_it(release: Node) -> None:
    # Two replicas by default: both Ready (the standby serves the webhooks and
    # keeps its caches warm), one of them holding the leader Lease.
    found = pods(release.kubeconfig, OPERATOR_NAMESPACE, "app.kubernetes.io/name=prompt-operator")
    assert len(found) == 2, [p["metadata"]["name"] for p in found]
    for pod in found:
        name = pod["metadata"]["name"]
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] and status["restartCount"] == 0, status
        ctx = pod["spec"]["containers"][0]["securityContext"]
        assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
        uid = exec_in(
            release.kubeconfig, OPERATOR_NAMESPACE, name, "operator",
            "python3", "-c", "import os; print(os.getuid())",
        )  # fmt: skip
        assert uid.stdout.strip() == "65532"
        write = exec_in(
            release.kubeconfig, OPERATOR_NAMESPACE, name, "operator",
            "python3", "-c", "open('/written', 'w')", check=False,
        )  # fmt: skip
        assert write.returncode != 0 and "Read-only file system" in write.stderr
    wait_for(
        lambda: lease_holder(release.kubeconfig), timeout=30,
        message="one operator replica to hold the Lease",
    )  # fmt: skip

    # The webhooks answer through their Service: a Prompt with an undeclared
    # variable is refused at apply time with the operator's own message. The
    # validating webhook fails open (Ignore), so just after install, while
    # kube-proxy programs the Service, a request may pass unchecked: retry a
    # server-side dry run (nothing is stored) until the operator answers.
    def refused() -> str | None:
        bad = kubectl(
            release.kubeconfig, "-n", APP_NAMESPACE, "create", "--dry-run=server", "-f", "-",
            input=json.dumps(prompt_manifest("bad", "Hello {who}")), check=False,
        )  # fmt: skip
        return bad.stderr if bad.returncode != 0 else None

    message = wait_for(refused, timeout=30, interval=0.5, message="the webhook to refuse")
    assert "who" in message, message


def test_injected_app_starts_after_its_prompt_is_on_disk(app: Node) -> None:
    (pod,) = app_pods(app.kubeconfig)
    name = pod["metadata"]["name"]
    init = {c["name"]: c for c in pod["spec"]["initContainers"]}
    assert init[SIDECAR]["restartPolicy"] == "Always"
    # The app's first line is the prompt: it started after the file was written.
    first = first_log_line(app.kubeconfig, APP_NAMESPACE, name)
    assert "You are helpful. v1" in first, first
    # No API token in the app container; the sidecar has one.
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    in_app = exec_in(app.kubeconfig, APP_NAMESPACE, name, "app", "ls", token_dir, check=False)
    assert in_app.returncode != 0, in_app.stdout
    in_sidecar = exec_in(
        app.kubeconfig, APP_NAMESPACE, name, SIDECAR,
        "python3", "-c", f"import os; print(os.listdir({token_dir!r}))",
    )  # fmt: skip
    assert "token" in in_sidecar.stdout
    # The prompt directory is read-only for the app.
    write = exec_in(
        app.kubeconfig, APP_NAMESPACE, name, "app",
        "python3", "-c", "open('/prompts/x.txt', 'w')", check=False,
    )  # fmt: skip
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_an_edit_reaches_the_app_and_status_counts_delivery(app: Node) -> None:
    (pod,) = app_pods(app.kubeconfig)
    name = pod["metadata"]["name"]
    apply(app.kubeconfig, APP_NAMESPACE, prompt_manifest("system", "You are helpful. v2"))
    wait_for(
        lambda: "You are helpful. v2" in logs(app.kubeconfig, APP_NAMESPACE, name, "app"),
        timeout=30,
        interval=0.2,
        message="the app to log the edited prompt",
    )
    assert read_prompt(app.kubeconfig, name) == "You are helpful. v2"
    wait_for(
        lambda: delivery(app.kubeconfig, "system") == "1/1",
        timeout=60,
        interval=0.5,
        message=lambda: f"delivery 1/1, got {delivery(app.kubeconfig, 'system')}",
    )


def test_three_replicas_all_get_the_prompt(app: Node) -> None:
    found = scale(app.kubeconfig, 3)
    apply(app.kubeconfig, APP_NAMESPACE, prompt_manifest("system", "You are helpful. v3"))
    for pod in found:
        wait_for(
            lambda pod=pod: (
                read_prompt(app.kubeconfig, pod["metadata"]["name"]) == "You are helpful. v3"
            ),
            timeout=30,
            interval=0.2,
            message=f"v3 in {pod['metadata']['name']}",
        )
    wait_for(
        lambda: delivery(app.kubeconfig, "system") == "3/3",
        timeout=60,
        interval=0.5,
        message=lambda: f"delivery 3/3, got {delivery(app.kubeconfig, 'system')}",
    )


def _sidecar_pid(app: Node, pod: dict[str, Any]) -> int:
    """The sidecar's process on this machine, found through containerd."""
    status = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == SIDECAR)
    container_id = status["containerID"].split("://", 1)[1]
    state = app.cluster.state
    assert state is not None
    out = node_mod.ctr(Path(state.binaries["ctr"]), app.cluster.state_dir, "tasks", "ls")
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task for {container_id} in:\n{out}")


def test_a_killed_sidecar_restarts_and_converges(app: Node) -> None:
    pod = app_pods(app.kubeconfig)[0]
    name = pod["metadata"]["name"]
    before = read_prompt(app.kubeconfig, name)
    assert before is not None
    os.kill(_sidecar_pid(app, pod), signal.SIGKILL)
    # While the sidecar is down the app keeps reading the old file.
    assert read_prompt(app.kubeconfig, name) == before

    def restarted() -> bool:
        current = kubectl_json(app.kubeconfig, "-n", APP_NAMESPACE, "get", "pod", name)
        status = next(s for s in current["status"]["initContainerStatuses"] if s["name"] == SIDECAR)
        return bool(status["restartCount"] >= 1 and status.get("ready"))

    wait_for(restarted, timeout=90, interval=0.5, message="the sidecar to restart and be ready")
    apply(app.kubeconfig, APP_NAMESPACE, prompt_manifest("system", "You are helpful. v4"))
    wait_for(
        lambda: read_prompt(app.kubeconfig, name) == "You are helpful. v4",
        timeout=30,
        interval=0.2,
        message="the restarted sidecar to deliver v4",
    )
    app_log = logs(app.kubeconfig, APP_NAMESPACE, name, "app")
    assert "<missing>" not in app_log, app_log


def test_a_deleted_prompt_leaves_the_pods(app: Node) -> None:
    apply(app.kubeconfig, APP_NAMESPACE, prompt_manifest("farewell", "Goodbye."))
    name = app_pods(app.kubeconfig)[0]["metadata"]["name"]
    wait_for(
        lambda: read_prompt(app.kubeconfig, name, "farewell") == "Goodbye.",
        timeout=30,
        interval=0.2,
        message="farewell delivered",
    )
    kubectl(app.kubeconfig, "-n", APP_NAMESPACE, "delete", "prompt", "farewell")
    wait_for(
        lambda: read_prompt(app.kubeconfig, name, "farewell") is None,
        timeout=60,
        interval=0.2,
        message="farewell removed from the pod",
    )


def test_ab_variants_split_across_replicas(app: Node) -> None:
    texts = {"control": "Greet warmly.", "concise": "Say hi."}
    found = scale(app.kubeconfig, 3)
    greeting = prompt_manifest("greeting", "")
    del greeting["spec"]["template"]
    greeting["spec"]["variants"] = [
        {"name": n, "weight": 50, "template": t} for n, t in texts.items()
    ]
    apply(app.kubeconfig, APP_NAMESPACE, greeting)
    served: dict[str, str] = {}
    for pod in found:
        pod_name = pod["metadata"]["name"]
        served[pod_name] = wait_for(
            lambda pod_name=pod_name: read_prompt(app.kubeconfig, pod_name, "greeting"),
            timeout=30, interval=0.2, message=f"greeting in {pod_name}",
        )  # fmt: skip
        assert served[pod_name] in texts.values()

    def counted() -> dict[str, int] | None:
        variants = prompt_status(app.kubeconfig, APP_NAMESPACE, "greeting").get("variants") or []
        counts = {v["name"]: v.get("pods", 0) for v in variants}
        return counts if sum(counts.values()) == 3 else None

    counts = wait_for(counted, timeout=60, interval=0.5, message="3 pods counted by variant")
    expected = {n: sum(1 for s in served.values() if s == t) for n, t in texts.items()}
    assert counts == expected


def test_rollback_brings_back_an_earlier_revision(app: Node, user_venv: Path) -> None:
    name = app_pods(app.kubeconfig)[0]["metadata"]["name"]
    # The CLI a user runs from their machine, with their kubeconfig.
    result = subprocess.run(
        [str(user_venv / "prompt-operator"), "rollback", "system", "--to", "1",
         "-n", APP_NAMESPACE, f"--kubeconfig={app.kubeconfig}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: read_prompt(app.kubeconfig, name) == "You are helpful. v1",
        timeout=30, interval=0.2, message="revision 1 back in the app",
    )  # fmt: skip


def test_helm_test_passes(release: Node) -> None:
    result = release.helm_run("test", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--logs")
    assert "operator healthy" in result.stdout, result.stdout


def test_helm_upgrade_with_a_changed_value(app: Node) -> None:
    app.helm_run(
        "upgrade", RELEASE, str(app.chart), "--namespace", OPERATOR_NAMESPACE,
        "--reuse-values", "--set", "operator.deliveryRefresh=3", "--wait", "--timeout=5m",
    )  # fmt: skip
    deployment = kubectl_json(
        app.kubeconfig, "-n", OPERATOR_NAMESPACE, "get", "deployment", RELEASE
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--delivery-refresh=3" in args
    wait_rollout(app.kubeconfig, OPERATOR_NAMESPACE, RELEASE)
    # The upgraded operator still delivers.
    name = app_pods(app.kubeconfig)[0]["metadata"]["name"]
    apply(app.kubeconfig, APP_NAMESPACE, prompt_manifest("system", "You are helpful. v5"))
    wait_for(
        lambda: read_prompt(app.kubeconfig, name) == "You are helpful. v5",
        timeout=60, interval=0.2, message="v5 after the upgrade",
    )  # fmt: skip


def test_helm_uninstall_keeps_the_prompts(app: Node) -> None:
    app.helm_run("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")
    names = {
        p["metadata"]["name"]
        for p in kubectl_json(app.kubeconfig, "-n", APP_NAMESPACE, "get", "prompts")["items"]
    }
    assert {"system", "greeting"} <= names
    assert kubectl(app.kubeconfig, "get", "crd", "prompts.prompts.dev", check=False).returncode == 0
    kubectl(app.kubeconfig, "-n", APP_NAMESPACE, "delete", "deployment", APP, "--wait=true")


STATIC_NAMESPACE = "e2e-static"


def manual_sidecar_pod() -> dict[str, Any]:
    """The README's pod with the sidecar written by hand (no injection webhook)."""
    field = lambda path: {"fieldRef": {"fieldPath": path}}  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "helpdesk",
            "labels": {"prompts.dev/subscribe": "true"},
            "annotations": {"prompts.dev/selector": "", "prompts.dev/port": "8470"},
        },
        "spec": {
            "serviceAccountName": "prompt-sidecar",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "volumes": [
                {"name": "prompts", "emptyDir": {}},
                {
                    "name": "api-token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ]
                    },
                },
            ],
            "initContainers": [
                {
                    "name": "prompts",
                    "image": release_mod.default_image(),
                    "imagePullPolicy": "IfNotPresent",
                    "restartPolicy": "Always",
                    "command": ["prompt-sidecar"],
                    "args": ["--dir=/prompts"],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                        {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                        {"name": "POD_IP", "valueFrom": field("status.podIP")},
                        {
                            "name": "PROMPT_SELECTOR",
                            "valueFrom": field("metadata.annotations['prompts.dev/selector']"),
                        },
                    ],
                    "startupProbe": {
                        "httpGet": {"path": "/readyz", "port": 8470},
                        "periodSeconds": 1,
                        "failureThreshold": 120,
                    },
                    "volumeMounts": [
                        {"name": "prompts", "mountPath": "/prompts"},
                        {
                            "name": "api-token",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        },
                    ],
                }
            ],
            "containers": [
                {
                    "name": "app",
                    "image": DEMO_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": ["/prompts", "system"],
                    "volumeMounts": [
                        {"name": "prompts", "mountPath": "/prompts", "readOnly": True}
                    ],
                }
            ],
        },
    }


def test_static_manifest_installs_and_delivers_without_webhooks(
    real_node: Node, dist: Path
) -> None:
    """The release's install.yaml (the committed deploy/install.yaml, for the
    default image), as the docs give it to people without Helm.
    Runs after the helm release is gone (same namespace)."""
    kubeconfig = real_node.kubeconfig
    install = str(dist / "install.yaml")
    assert (dist / "install.yaml").read_text() == (REPO / "deploy" / "install.yaml").read_text()
    kubectl(kubeconfig, "apply", "--server-side", "-f", install)
    wait_rollout(kubeconfig, OPERATOR_NAMESPACE, RELEASE)
    # The uninstalled release's leader often stops after `helm uninstall` has
    # removed its RBAC, so it cannot give the Lease up; a new replica takes it
    # once it expires (lease-duration after it first sees it). Nothing is
    # delivered before, so the timings below start from a leader.
    wait_for(
        lambda: lease_holder(kubeconfig), timeout=60, interval=0.5,
        message="a replica of the static install to hold the Lease",
    )  # fmt: skip
    kubectl(kubeconfig, "create", "namespace", STATIC_NAMESPACE)
    ns = ("-n", STATIC_NAMESPACE)
    kubectl(kubeconfig, *ns, "create", "serviceaccount", "prompt-sidecar")
    kubectl(kubeconfig, *ns, "create", "role", "prompt-sidecar",
            "--verb=get,list", "--resource=configmaps")  # fmt: skip
    kubectl(kubeconfig, *ns, "create", "rolebinding", "prompt-sidecar", "--role=prompt-sidecar",
            f"--serviceaccount={STATIC_NAMESPACE}:prompt-sidecar")  # fmt: skip
    apply(kubeconfig, STATIC_NAMESPACE, prompt_manifest("system", "Static v1"))
    apply(kubeconfig, STATIC_NAMESPACE, manual_sidecar_pod())
    kubectl(kubeconfig, *ns, "wait", "--for=condition=Ready", "pod/helpdesk", "--timeout=120s",
            timeout=150)  # fmt: skip
    first = first_log_line(kubeconfig, STATIC_NAMESPACE, "helpdesk")
    assert "Static v1" in first, first
    apply(kubeconfig, STATIC_NAMESPACE, prompt_manifest("system", "Static v2"))
    wait_for(
        lambda: "Static v2" in logs(kubeconfig, STATIC_NAMESPACE, "helpdesk", "app"),
        timeout=30, interval=0.2, message="the edit in the app's log",
    )  # fmt: skip
    wait_for(
        lambda: str((prompt_status(kubeconfig, STATIC_NAMESPACE, "system").get("delivery") or {})
                    .get("summary")) == "1/1",
        timeout=60, interval=0.5, message="delivery 1/1",
    )  # fmt: skip


def test_a_second_node_on_the_machine_is_refused(real_node: Node, tmp_path: Path) -> None:
    other = tmp_path / "other"
    result = subprocess.run(
        [tool("prompt-cluster"), "up", "--node", "--state-dir", str(other)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"a node already runs on this machine for {real_node.cluster.state_dir}" in (
        result.stderr
    )
    # The running node is untouched.
    assert kubectl(real_node.kubeconfig, "get", "node", "prompt-node").returncode == 0
