"""The CRD's CEL on a real API server against the shared list of look-alike keys
(tests/corpus/keys.json), which the client's rule and `validate` also pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_cluster.testing import kubectl
from tests.corpus.keys import KeyCase, key_cases
from tests.reliability.report import Observed

CASES = key_cases()


@pytest.mark.reliability(
    case="S-keys server {case.key!a}",
    did="server-side dry-run apply of a Prompt with one key of tests/corpus/keys.json "
    "(the CRD's CEL, no webhook)",
)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_crds_cel_agrees_with_the_shared_list(
    kubeconfig: Path, namespace: str, case: KeyCase, observed: Observed
) -> None:
    result = kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(case.manifest(), ensure_ascii=False),
        check=False,
    )
    assert (result.returncode == 0) == case.server_accepts, result.stderr[-800:]
    if result.returncode == 0:
        note = " (CEL has no NFC: validate and the webhook refuse it)" if not case.ok else ""
        observed("accepted" + note)
    else:
        assert "spec.key" in result.stderr, result.stderr[-800:]
        observed("refused: " + result.stderr.split("spec.key", 1)[1].strip()[:120])
