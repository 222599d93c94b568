"""client/README.md's Python examples run as written, against the directory its
"Run it on your machine" section makes from the repository's examples/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_operator.files_cli import main as files_main

REPO = Path(__file__).resolve().parents[3]
README = REPO / "client" / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding prompts/, written as the README says:
    `prompt-operator files examples/ --out ./prompts`."""
    root = tmp_path_factory.mktemp("readme")
    assert files_main([str(REPO / "examples"), "--out", str(root / "prompts")]) == 0
    return root


def test_the_readme_has_its_examples() -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2 and "create_prompt_registry" in blocks[0]
    assert "prompt-operator files examples/ --out ./prompts" in README.read_text()


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text(encoding="utf-8")))))
def test_each_python_example_runs_as_written_without_warnings(workdir: Path, index: int) -> None:
    code = python_blocks(README.read_text(encoding="utf-8"))[index]
    env = {**os.environ, "PROMPT_DIR": "./prompts"}
    env.pop("PROMPT_SOURCE", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"README block {index}:\n{code}\n{result.stderr}"
    # Python's last-resort logging prints warnings (an undeclared outcome, a
    # missing prompt served from defaults) to stderr: the examples cause none.
    assert result.stderr == "", result.stderr
