"""`history`, `diff` and `rollback` talk to the API server themselves, as the
console does: a user without kubectl on PATH can list, compare and roll back.
Real API server, real operator, the installed `prompt-operator` command with a
PATH that holds no kubectl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from prompt_cluster.testing import kubectl, service_account_kubeconfig, tool, wait_for

from .helpers import get
from .test_revisions import edit

pytestmark = pytest.mark.usefixtures("operator")


def bare_cli(
    kubeconfig: Path, namespace: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {"PATH": str(empty), "HOME": str(tmp_path)}
    assert shutil.which("kubectl", path=env["PATH"]) is None
    return subprocess.run(
        [tool("prompt-operator"), *args, "-n", namespace, "--kubeconfig", str(kubeconfig)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_history_diff_and_rollback_work_without_kubectl_on_path(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    first = edit(kubeconfig, namespace, "p", "Hello {name}\n", variables=["name"])
    edit(kubeconfig, namespace, "p", "Goodbye {name}\n", variables=["name"])

    table = bare_cli(kubeconfig, namespace, tmp_path, "history", "p")
    assert table.returncode == 0, table.stderr
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["1", "2"]
    assert "(current)" in table.stdout.splitlines()[-1]

    diff = bare_cli(kubeconfig, namespace, tmp_path, "diff", "p", "1", "2")
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[3:] == ["-Hello {name}", "+Goodbye {name}"], diff.stdout

    done = bare_cli(kubeconfig, namespace, tmp_path, "rollback", "p", "--to", "1")
    assert done.returncode == 0, done.stderr
    assert "rolled back to revision 1" in done.stdout
    wait_for(
        lambda: (
            (get(kubeconfig, namespace, "prompt", "p") or {}).get("status", {}).get("revision")
            == first["status"]["revision"]
        ),
        timeout=30,
        message="the rollback's revision served",
    )
    spec = (get(kubeconfig, namespace, "prompt", "p") or {})["spec"]
    assert spec["template"] == "Hello {name}\n"


def test_a_missing_prompt_names_the_namespace_and_how_to_list(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    missing = bare_cli(kubeconfig, namespace, tmp_path, "history", "nothing-here")
    assert missing.returncode == 1
    assert f"Prompt {namespace}/nothing-here not found" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_reader_sees_history_but_a_rollback_says_not_allowed(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    """The user's own RBAC decides, and the namespace comes from their context."""
    edit(kubeconfig, namespace, "p", "one\n")
    edit(kubeconfig, namespace, "p", "two\n")
    kubectl(
        kubeconfig, "-n", namespace, "create", "role", "prompt-reader",
        "--verb=get,list", "--resource=prompts.prompts.dev,configmaps",
    )  # fmt: skip
    reader = service_account_kubeconfig(kubeconfig, namespace, "reader", tmp_path / "reader")
    kubectl(
        kubeconfig, "-n", namespace, "create", "rolebinding", "reader",
        "--role=prompt-reader", f"--serviceaccount={namespace}:reader",
    )  # fmt: skip
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path), "KUBECONFIG": str(reader)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("prompt-operator"), *args], env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    shown = run("history", "p")
    assert shown.returncode == 0, shown.stderr
    refused = run("rollback", "p", "--to", "1")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: not allowed:"), refused.stderr
    assert (get(kubeconfig, namespace, "prompt", "p") or {})["spec"]["template"] == "two\n"
