"""GitOps: server-side apply shows no drift, and pruning from git removes everything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from prompt_cluster.testing import SidecarProcess, kubectl, sidecar_role, wait_for

from .helpers import current_configmap, get, wait_prompt

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["support-agent", "invoice-extractor", "tool-schema"]

pytestmark = pytest.mark.usefixtures("operator")


def test_server_side_apply_leaves_no_drift(kubeconfig: Path, namespace: str) -> None:
    examples = str(REPO / "examples")
    kubectl(kubeconfig, "-n", namespace, "apply", "--server-side", "-f", examples)
    for name in EXAMPLES:
        wait_prompt(kubeconfig, namespace, name)
    diff = kubectl(
        kubeconfig, "-n", namespace, "diff", "--server-side", "-f", examples, check=False
    )
    assert diff.returncode == 0, diff.stdout


def test_pruning_from_git_removes_prompt_configmap_and_file(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    repo = tmp_path / "git"
    shutil.copytree(REPO / "examples", repo)
    env = {**os.environ, "KUBECTL_APPLYSET": "true"}

    def sync() -> None:
        import subprocess

        from prompt_cluster.testing import tool

        result = subprocess.run(
            [
                tool("kubectl"),
                f"--kubeconfig={kubeconfig}",
                "-n",
                namespace,
                "apply",
                "--server-side",
                "--prune",
                "--applyset=configmaps/prompts-from-git",
                "-f",
                str(repo),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    sync()
    for name in EXAMPLES:
        wait_prompt(kubeconfig, namespace, name)
    app = SidecarProcess(
        kubeconfig,
        sidecar_role(kubeconfig, namespace, tmp_path / "sc.kc"),
        namespace,
        "app",
        tmp_path,
    )
    app.start()
    try:
        assert app.file("invoice-extractor") is not None
        (repo / "json-extractor.yaml").unlink()  # the commit that deletes the Prompt
        sync()
        wait_for(
            lambda: get(kubeconfig, namespace, "prompt", "invoice-extractor") is None,
            timeout=30,
            message="Prompt pruned",
        )
        wait_for(
            lambda: current_configmap(kubeconfig, namespace, "invoice-extractor") is None,
            timeout=30,
            message="ConfigMap removed",
        )
        wait_for(lambda: app.file("invoice-extractor") is None, timeout=15, message="file removed")
        assert app.file("support_agent") is not None
    finally:
        app.stop()
