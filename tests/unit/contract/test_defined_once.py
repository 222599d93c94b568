"""Each name of the contract is spelled once, in prompt_contract.

A label or an annotation written out again elsewhere drifts the day one copy
changes; every product module imports them from ``prompt_contract.objects``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PRODUCT = ("operator/prompt_operator", "sidecar/prompt_sidecar", "client/prompt_client")
# A label, annotation or finalizer of ours, as a whole string: "prompts.dev/key".
OUR_NAME = re.compile(r"^prompts\.dev/[a-z0-9.-]+$")


def spelled_again(path: Path) -> list[str]:
    """Where ``path`` writes one of the contract's label or annotation names as a literal."""
    return [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and OUR_NAME.match(node.value)
    ]


@pytest.mark.parametrize("package", PRODUCT)
def test_the_contracts_names_are_imported_not_spelled_again(package: str) -> None:
    found = [hit for path in sorted((REPO / package).rglob("*.py")) for hit in spelled_again(path)]
    assert not found, "import these from prompt_contract.objects instead:\n" + "\n".join(found)


def test_the_check_finds_a_label_but_not_a_sentence_naming_one(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text('LABEL = "prompts.dev/key"\nHINT = "label it prompts.dev/inject=true"\n')
    assert spelled_again(planted) == ["planted.py:1: 'prompts.dev/key'"]
