"""The local control plane and the Prompt CRD, driven by the real kubectl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from prompt_cluster.cluster import ClusterState
from prompt_cluster.testing import (
    kubectl,
    prompt_manifest,
    service_account_kubeconfig,
    tool,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("prompt-cluster"), *args], capture_output=True, text=True, timeout=180, check=False
    )


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_cluster_starts_and_stops_cleanly_twice(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    for _ in range(2):
        up = cli("up", "--state-dir", str(state_dir))
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={state_dir / 'kubeconfig'}"
        again = cli("up", "--state-dir", str(state_dir))
        assert "already running" in again.stderr
        state = ClusterState.load(state_dir)
        assert state is not None
        pids = list(state.pids.values())
        assert len(pids) == 3 and all(pid_alive(p) for p in pids)
        status = json.loads(cli("status", "--state-dir", str(state_dir)).stdout)
        assert status["running"] and status["ready"]
        version = kubectl(state_dir / "kubeconfig", "version", "-o", "json").stdout
        assert json.loads(version)["serverVersion"]["gitVersion"] == "v1.37.2"
        down = cli("down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert not any(pid_alive(p) for p in pids)
        assert not state_dir.exists()
    status = cli("status", "--state-dir", str(state_dir))
    assert status.returncode == 3 and not json.loads(status.stdout)["running"]


def test_cluster_is_configured_like_a_real_one(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # RBAC is enforced: a fresh service account can do nothing.
    can = kubectl(
        kubeconfig,
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:default",
        check=False,
    )
    assert can.stdout.strip() == "no"
    # Service-account tokens are issued and accepted.
    as_default = service_account_kubeconfig(kubeconfig, namespace, "default", tmp_path / "sa")
    who = kubectl(as_default, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{namespace}:default"
    )
    # The API server's metrics are readable by the admin.
    metrics = kubectl(kubeconfig, "get", "--raw", "/metrics").stdout
    assert "apiserver_request_total" in metrics
    # Every namespace gets kube-root-ca.crt, as in a real cluster.
    wait_for(
        lambda: (
            kubectl(
                kubeconfig, "-n", namespace, "get", "configmap", "kube-root-ca.crt", check=False
            ).returncode
            == 0
        ),
        timeout=30,
    )


def test_examples_apply_and_print_columns(kubeconfig: Path, namespace: str) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", str(REPO / "examples"))
    out = kubectl(kubeconfig, "-n", namespace, "get", "prompts").stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "REVISION", "DELIVERY", "ROLLOUT", "NEXT", "AGE"]
    assert {"support-agent", "invoice-extractor", "tool-schema"} <= {
        line.split()[0] for line in out.splitlines()[1:]
    }


def test_kubectl_explain_shows_descriptions(kubeconfig: Path) -> None:
    out = kubectl(kubeconfig, "explain", "prompt.spec.template").stdout
    assert "str.format" in out and "server-side" in out
    out = kubectl(kubeconfig, "explain", "prompt.spec.variables.name").stdout
    assert "placeholder name" in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"template": "x", "key": "a/b"}, "must not contain a slash"),
        ({"template": "x", "key": "../up"}, 'must not start with "."'),
        ({"template": "x", "key": ".hidden"}, 'must not start with "."'),
        ({"template": "x", "key": "é" * 101}, "longer than 200 bytes"),
        ({"template": "x", "key": "a\nb"}, "control characters"),
        ({"template": "é" * 500_001}, "larger than 1,000,000 bytes"),
        ({"key": "no-template"}, "set exactly one of spec.template (one text) or spec.variants"),
        ({"template": "x", "variables": [{"name": "user.name"}]}, "should match"),
        ({"template": "x", "variables": [{"name": "a"}, {"name": "a"}]}, "duplicate entries"),
        ({"template": "x", "format": "jinja"}, 'supported values: "python", "raw"'),
        ({"template": "x", "consumers": ["app"]}, "spec.consumers: field not declared in schema"),
    ],
)
def test_bad_prompts_are_rejected_by_the_api_server(
    kubeconfig: Path, namespace: str, spec: dict[str, object], message: str
) -> None:
    manifest = {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": spec,
    }
    result = kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(manifest),
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-600:]


@pytest.mark.slow
def test_garbage_collector_deletes_configmap_owned_by_deleted_prompt(
    kubeconfig: Path, namespace: str
) -> None:
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=json.dumps(prompt_manifest("owner", "text")),
    )
    uid = kubectl(
        kubeconfig, "-n", namespace, "get", "prompt", "owner", "-o", "jsonpath={.metadata.uid}"
    ).stdout
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned-by-prompt",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "prompts.dev/v1alpha1",
                    "kind": "Prompt",
                    "name": "owner",
                    "uid": uid,
                }
            ],
        },
        "data": {"x": "y"},
    }
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(owned))
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "owner")
    wait_for(
        lambda: (
            kubectl(
                kubeconfig, "-n", namespace, "get", "configmap", "owned-by-prompt", check=False
            ).returncode
            != 0
        ),
        timeout=90,
        interval=0.5,
        message="garbage collection of the owned ConfigMap",
    )
