"""One list of look-alike keys (tests/corpus/keys.json) for the client's key rule and
for `prompt-operator validate`; tests/integration/test_keys.py puts the same list
to the CRD's CEL on a real API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_contract.keys import key_problem
from prompt_operator.validate import validate
from tests.corpus.keys import KeyCase, key_cases
from tests.reliability.report import Observed

CASES = key_cases()


@pytest.mark.reliability(
    case="S-keys client {case.key!a}",
    did="the client's key rule on one key of tests/corpus/keys.json (NFC, blank and "
    "invisible characters, separators, scripts mixed in a word)",
)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_client_key_rule_agrees_with_the_shared_list(case: KeyCase, observed: Observed) -> None:
    problem = key_problem(case.key)
    assert (problem is None) == case.ok, problem
    if not case.ok:
        assert problem is not None and case.says in problem
    observed("accepted" if problem is None else f"refused: {problem}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_agrees_with_the_shared_list(case: KeyCase, tmp_path: Path) -> None:
    manifest = tmp_path / "prompt.yaml"
    manifest.write_text(json.dumps(case.manifest(), ensure_ascii=False), "utf-8")
    findings, count = validate([str(manifest)])
    assert count == 1
    problems = [str(f) for f in findings if not f.warning]
    assert (problems == []) == case.ok, problems
    if not case.ok:
        assert any("spec.key" in p and case.says in p for p in problems), problems


def test_a_non_nfc_key_is_told_its_nfc_form() -> None:
    problem = key_problem("cafe\u0301")
    assert problem is not None and "'caf\u00e9'" in problem and "U+00E9" in problem


def test_the_shared_list_covers_every_rule() -> None:
    says = {c.says for c in CASES if not c.ok}
    for rule in ("NFC", "renders as nothing", "mixes", "LINE SEPARATOR", "NO-BREAK SPACE"):
        assert any(rule in s for s in says), rule
    assert sum(c.ok for c in CASES) >= 5
