"""The client installs alone, without the operator's heavy dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[3] / "client"


@pytest.mark.slow
def test_client_installs_alone_without_kopf_or_kubernetes(tmp_path: Path) -> None:
    # Build from a copy, so setuptools leaves no build/ or egg-info in the repo.
    source = tmp_path / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(pip), "install", "-q", str(source)], check=True, env=env)
    frozen = subprocess.run(
        [str(pip), "list", "--format=freeze"], check=True, capture_output=True, text=True, env=env
    ).stdout.lower()
    names = {line.split("==")[0] for line in frozen.split()}
    assert "prompt-operator-client" in names and "watchfiles" in names
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
        "assert not {'kopf', 'kubernetes', 'prompt_sidecar'} & set(sys.modules)\n"
        "import importlib.resources as r\n"
        "assert r.files('prompt_client').joinpath('py.typed').is_file()\n"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", check], check=True, cwd=tmp_path)
