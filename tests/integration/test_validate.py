"""`prompt-operator validate` and the API server agree on one corpus of manifests.

Each file in tests/corpus/prompts says what it expects: `# expect:` (a piece
of the offline message, or `ok`) and `# server:` (`reject` at admission, or
`accept`: template problems the API server lets through and the operator then
reports as Ready=False).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from prompt_cluster.testing import kubectl, tool

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "prompts"
CASES = sorted(CORPUS.glob("*.yaml"))


def expectations(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    expect = re.search(r"^# expect: (.*)$", text, re.M)
    server = re.search(r"^# server: (accept|reject)$", text, re.M)
    assert expect and server, f"{path.name} lacks its # expect: / # server: header"
    return expect.group(1), server.group(1)


def validate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("prompt-operator"), "validate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_offline_validation_matches_the_corpus(path: Path) -> None:
    expect, _ = expectations(path)
    result = validate(str(path))
    if expect == "ok":
        assert result.returncode == 0, result.stdout
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert expect in result.stdout
    first = result.stdout.splitlines()[0]
    assert re.match(rf"^{re.escape(str(path))}:\d+: Prompt [^:]+: ", first), first


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_api_server_agrees_with_the_corpus(kubeconfig: Path, namespace: str, path: Path) -> None:
    _, server = expectations(path)
    result = kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        str(path),
        check=False,
    )
    assert (result.returncode == 0) == (server == "accept"), result.stderr[-500:]


def test_directory_stdin_and_multi_document_input() -> None:
    good = [p for p in CASES if expectations(p)[0] == "ok"]
    assert validate(*map(str, good)).returncode == 0
    assert validate(str(CORPUS)).returncode == 1
    both = good[0].read_text() + "\n---\n" + (CORPUS / "bad-key-slash.yaml").read_text()
    result = validate("-", stdin=both)
    assert result.returncode == 1
    assert result.stdout.startswith("<stdin>:") and "slash" in result.stdout
    assert "2 Prompt(s) checked, 1 problem(s)" in result.stderr


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    assert validate(str(tmp_path / "missing.yaml")).returncode == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = validate(str(broken))
    assert result.returncode == 2 and "not valid YAML" in result.stderr


def test_other_kinds_are_ignored(tmp_path: Path) -> None:
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    assert validate(str(other)).returncode == 0
