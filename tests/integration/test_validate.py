"""`prompt-operator validate` and the API server agree on one corpus of manifests.

Each file in tests/corpus/prompts starts with comment lines saying what it expects:

* `# expect:` a piece of the offline message, or `ok`;
* `# server:` `reject` (the API server refuses it at admission, through the CRD's
  schema and CEL rules, without the webhook) or `accept` (template problems the
  API server lets through and the operator then reports as Ready=False, or fine);
* `# server-says:` (every rejected case) a piece of kubectl's error, which names the
  offending field wherever the API server does;
* `# warning:` (optional) a piece of the warning offline validation prints;
* `# operator:` (optional, accepted cases) `Ready` or the reason of Ready=False, when
  it does not follow from `# expect:`;
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from prompt_cluster.testing import kubectl, tool
from tests.reliability.report import Observed

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "prompts"
CASES = sorted(CORPUS.glob("*.yaml"))
HEADERS = ("expect", "server", "server-says", "warning", "operator")


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str
    server: str
    server_says: str | None = None
    warning: str | None = None
    operator: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def ready(self) -> bool:
        """Whether the operator makes it Ready (for cases the API server accepts)."""
        return self.operator == "Ready" if self.operator else self.expect == "ok"


def corpus_case(path: Path) -> Case:
    headers: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.fullmatch(r"# ([a-z-]+): (.*)", line)
        if found is None or found.group(1) not in HEADERS:
            break
        headers[found.group(1)] = found.group(2)
    assert "expect" in headers and "server" in headers, (
        f"{path.name} lacks its # expect: / # server: header"
    )
    assert headers["server"] in ("accept", "reject"), path.name
    return Case(path, **{k.replace("-", "_"): v for k, v in headers.items()})


def expectations(path: Path) -> tuple[str, str]:
    case = corpus_case(path)
    return case.expect, case.server


IDS = [p.stem for p in CASES]


def validate(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [tool("prompt-operator"), "validate", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 60
    cases = [corpus_case(p) for p in CASES]
    assert sum(c.server == "accept" and not c.ready for c in cases) >= 15
    assert sum(c.server == "reject" for c in cases) >= 30


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_every_case_says_what_a_person_needs(path: Path) -> None:
    case = corpus_case(path)
    if case.server == "reject":
        assert case.server_says, f"{path.name}: say which piece of kubectl's error to expect"
        assert case.operator is None, f"{path.name}: the operator never sees a rejected case"
    else:
        assert case.server_says is None, path.name
    assert case.operator in (None, "Ready") or re.fullmatch(r"[A-Z][A-Za-z]+", case.operator)


@pytest.mark.reliability(
    case="B-offline",
    did="`prompt-operator validate` on one corpus file: exit status, message and warning "
    "as its header says",
)
@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_offline_validation_matches_the_corpus(path: Path, observed: Observed) -> None:
    case = corpus_case(path)
    result = validate(str(path))
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    if case.warning is None:
        assert warnings == [], result.stdout
    else:
        assert any(case.warning in line for line in warnings), result.stdout
    if case.expect == "ok":
        assert result.returncode == 0, result.stdout + result.stderr
        observed(f"exit 0, {len(warnings)} warning(s)")
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert case.expect in result.stdout
    first = result.stdout.splitlines()[0]
    assert re.match(rf"^{re.escape(str(path))}:\d+: Prompt [^:]+: ", first), first
    observed(f"exit 1: {first.split(': ', 1)[1][:160]}")


@pytest.mark.reliability(
    case="B-server",
    did="server-side dry-run apply of one corpus file (CRD schema and CEL, no webhook): "
    "accepted or refused as its header says, the error naming the field",
)
@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_api_server_agrees_with_the_corpus(
    kubeconfig: Path, namespace: str, path: Path, observed: Observed
) -> None:
    case = corpus_case(path)
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
    assert (result.returncode == 0) == (case.server == "accept"), result.stderr[-500:]
    if case.server == "accept":
        observed("accepted")
        return
    assert case.server_says is not None
    assert case.server_says in result.stderr, result.stderr[-1000:]
    said = re.sub(r"\s+", " ", result.stderr.strip())
    observed(f"refused: {said[:200]}")


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_offline_verdict_is_the_clusters(path: Path) -> None:
    """A manifest validate passes is applied and becomes Ready; one it refuses is
    refused by the API server or not Ready."""
    case = corpus_case(path)
    cluster_ok = case.server == "accept" and case.ready
    assert (case.expect == "ok") == cluster_ok, (
        f"offline: {case.expect!r}; server: {case.server}; operator ready: {case.ready}"
    )


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


PROMPT_HEAD = b"apiVersion: prompts.dev/v1alpha1\nkind: Prompt\nmetadata: {name: p}\n"


@pytest.mark.reliability(
    case="B-offline invalid UTF-8",
    did="`prompt-operator validate` on a file, a directory and stdin holding bytes that "
    "are not UTF-8, and on a file with a control character",
)
def test_invalid_utf8_and_control_characters_exit_2_without_a_traceback(
    tmp_path: Path, observed: Observed
) -> None:
    body = PROMPT_HEAD + b'spec: {template: "caf\xe9 \xff\xfe"}\n'
    (tmp_path / "dir").mkdir()
    latin1 = tmp_path / "dir" / "latin1.yaml"
    latin1.write_bytes(body)
    for args, stdin in (([str(latin1)], None), ([str(tmp_path / "dir")], None), (["-"], body)):
        result = validate(*args, stdin=stdin)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.startswith("error: "), result.stderr
    assert "latin1.yaml: cannot read" in validate(str(latin1)).stderr
    assert "utf-8" in validate(str(latin1)).stderr.lower()
    control = tmp_path / "control.yaml"
    control.write_bytes(PROMPT_HEAD + b'spec: {template: "a\x01b"}\n')
    result = validate(str(control))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "not valid YAML" in result.stderr
    observed(f"exit 2 for file, directory and stdin: {validate(str(latin1)).stderr.strip()[:120]}")


def test_deeply_nested_yaml_is_an_input_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_bytes(PROMPT_HEAD + b"spec: {template: " + b"[" * 5000 + b"]" * 5000 + b"}\n")
    result = validate(str(deep))
    assert "Traceback" not in result.stderr, result.stderr[-500:]
    assert result.returncode == 2


def test_a_lone_surrogate_escape_is_refused_without_a_traceback(tmp_path: Path) -> None:
    surrogate = tmp_path / "surrogate.yaml"
    surrogate.write_bytes(PROMPT_HEAD + b'spec: {template: "a\\ud800b"}\n')
    result = validate(str(surrogate))
    assert "Traceback" not in result.stderr, result.stderr[-500:]
    assert result.returncode == 2 and "not valid Unicode" in result.stderr


def test_a_misspelt_kind_in_the_prompts_group_is_reported(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_bytes(PROMPT_HEAD.replace(b"kind: Prompt", b"kind: prompt") + b"spec: {}\n")
    result = validate(str(typo))
    assert result.returncode == 1 and "the kind is Prompt" in result.stdout, result.stdout


def test_other_kinds_are_ignored(tmp_path: Path) -> None:
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    assert validate(str(other)).returncode == 0
