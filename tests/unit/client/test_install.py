"""The client and the sidecar each install alone (with the contract they
require), without the operator's heavy dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def install_alone(tmp_path: Path, *projects: str) -> tuple[Path, set[str]]:
    """A fresh venv with ``projects`` (folders of the repository) installed from
    copies, so setuptools leaves no build/ or egg-info in the repo; and the names
    of every distribution that ended up in it."""
    sources = []
    for project in projects:
        sources.append(tmp_path / project)
        shutil.copytree(
            REPO / project, sources[-1], ignore=shutil.ignore_patterns("build", "*.egg-info")
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(pip), "install", "-q", *map(str, sources)], check=True, env=env)
    frozen = subprocess.run(
        [str(pip), "list", "--format=freeze"], check=True, capture_output=True, text=True, env=env
    ).stdout.lower()
    return venv, {line.split("==")[0] for line in frozen.split()}


@pytest.mark.slow
def test_client_installs_alone_without_kopf_or_kubernetes(tmp_path: Path) -> None:
    # The contract is not on an index here: pip takes it from the folder beside.
    venv, names = install_alone(tmp_path, "contract", "client")
    assert {"prompt-operator-client", "prompt-operator-contract", "watchfiles"} <= names
    assert not names & {"kopf", "kubernetes", "boto3", "aiohttp", "pyyaml", "watchdog"}, names
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "hello.txt").write_text("Hi {name}")
    check = (
        "import sys, prompt_client\n"
        "from prompt_client.prompt_source.file_system_source import FileSystemSource\n"
        "from prompt_client import PromptRegistry\n"
        f"reg = PromptRegistry(FileSystemSource({str(prompts)!r}))\n"
        "assert reg.render('hello', name='Ada') == 'Hi Ada', dict(reg)\n"
        "assert not {'kopf', 'kubernetes', 'prompt_sidecar', 'prompt_contract.hops'}"
        " & set(sys.modules), sorted(sys.modules)\n"
        "import importlib.resources as r\n"
        "assert r.files('prompt_client').joinpath('py.typed').is_file()\n"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", check], check=True, cwd=tmp_path)


@pytest.mark.slow
def test_sidecar_installs_alone_with_the_contract_and_pynacl(
    tmp_path: Path,
) -> None:
    venv, names = install_alone(tmp_path, "contract", "sidecar")
    # pip and setuptools come with the venv (setuptools on Python < 3.12); PyNaCl
    # (and its cffi) verifies signed signals.
    assert names - {"pip", "setuptools"} == {
        "prompt-operator-contract",
        "prompt-operator-sidecar",
        "pynacl",
        "cffi",
        "pycparser",
    }
    shown = subprocess.run(
        [str(venv / "bin" / "prompt-sidecar"), "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert shown.startswith("usage: prompt-sidecar") and "--dir" in shown
