"""Every CEL rule of the CRD has a Python twin in `validate`, checked over the corpora.

The API server enforces the CRD's CEL rules; `prompt-operator validate` says the
same offline, in Python. Here the CRD's own rules are evaluated with cel-python
on every value of every corpus manifest (and of a Prompt for each case of the
shared list of look-alike keys) they apply to, and wherever a rule
fails, validate must report it (the twin's words); for rules marked ``same``,
validate must also stay silent wherever the rule holds. A CEL rule added to
the CRD without a twin here fails the test, as does a twin the corpus never
exercises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from prompt_operator.validate import _documents, check_document
from tests.corpus.keys import key_cases


@dataclass(frozen=True)
class Twin:
    words: str  # a regex over validate's message for a value that fails the rule
    same: bool  # validate reports it exactly when CEL does (not more strictly)


REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "prompts.yaml"
CORPUS = sorted((REPO / "tests" / "corpus" / "prompts").glob("*.yaml"))


# Every rule on spec.key has one twin: validate applies the client's key rules
# (key_problem), which say the first thing wrong with a key and forbid at least
# what the CRD does.
KEY_PATH = ("spec", "key")
KEY_TWIN = Twin(r"^spec\.key ", False)
# CEL rule -> its twin in validate. validate may be stricter than the API server
# (same=False) where the operator would refuse later anyway: an impossible date
# passes the CRD's pattern and fails in the operator.
TWINS = {
    "has(self.template) || has(self.messages) || has(self.variants)": Twin(
        r"or spec\.messages \(chat messages\) instead", True
    ),
    "!(has(self.template) && has(self.messages))": Twin(
        r"set spec\.template or spec\.messages, not both", True
    ),
    (
        "!((has(self.template) || has(self.messages)) && has(self.variants) && "
        "self.variants.all(v, has(v.template) || has(v.messages)))"
    ): Twin(r"when every variant has its own text", True),
    "has(self.template) || has(self.messages) || has(self.model) || has(self.variants)": Twin(
        r"must set template, messages, model or variants", True
    ),
    "!((has(self.template) || has(self.messages)) && has(self.variants))": Twin(
        r"must not set both a text \(template or messages\) and variants", True
    ),
    "self.role != 'placeholder' || has(self.name)": Twin(r"a placeholder needs a name", True),
    "size(bytes(self)) <= 1000000": Twin(r"larger than 1,000,000 bytes", True),
    # No variant at all fails the rule too; validate says so through the schema.
    "self.exists(v, v.weight > 0)": Twin(r"every weight is 0|\[\] should be non-empty", True),
    "!has(self.rollout) || !(has(self.variants) || has(self.schedule))": Twin(
        r"spec\.rollout cannot be combined with spec\.variants", True
    ),
    "self.all(x, self.filter(y, y.at == x.at).size() == 1)": Twin(
        r"two schedule entries have the same time", True
    ),
    (
        "self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
        "([.][0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$')"
    ): Twin(r"use an RFC 3339 time with a zone", False),
}


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]  # "*" stands for every item of a list
    rule: str
    node_type: str | None


def rules_of(schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[Rule]:
    for item in schema.get("x-kubernetes-validations") or ():
        yield Rule(path, item["rule"], schema.get("type"))
    for name, child in (schema.get("properties") or {}).items():
        yield from rules_of(child, (*path, name))
    if isinstance(schema.get("items"), dict):
        yield from rules_of(schema["items"], (*path, "*"))


def crd_rules() -> list[Rule]:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return list(rules_of(schema))


TYPES = {"string": str, "object": dict, "array": list}


def values_at(data: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield data
    elif path[0] == "*":
        for item in data if isinstance(data, list) else ():
            yield from values_at(item, path[1:])
    elif isinstance(data, dict) and data.get(path[0]) is not None:
        yield from values_at(data[path[0]], path[1:])


def cel_fails(rule: Rule, data: Any) -> bool:
    """Whether the API server's rule fails anywhere in ``data`` (on values of the
    type the schema expects there: the schema refuses the others before CEL)."""
    env = celpy.Environment()
    program = env.program(env.compile(rule.rule))
    expected = TYPES.get(rule.node_type or "")
    for value in values_at(data, rule.path):
        if expected is not None and not isinstance(value, expected):
            continue
        try:
            if not program.evaluate({"self": celpy.json_to_cel(value)}):
                return True
        except celpy.CELEvalError:
            continue  # an item of the wrong shape; the schema refuses it
    return False


def documents() -> Iterator[tuple[str, Any, list[str]]]:
    """The manifest corpus, and a Prompt for each case of the shared key list."""
    texts = [(path.name, path.read_text(encoding="utf-8")) for path in CORPUS]
    texts += [(f"keys.json: {c.id}", json.dumps(c.manifest())) for c in key_cases()]
    for name, text in texts:
        for doc in _documents(text, name):
            messages = [finding.message for finding in check_document(doc)]
            yield name, doc.data, messages


def twin_of(rule: Rule) -> Twin:
    return KEY_TWIN if rule.path == KEY_PATH else TWINS[rule.rule]


def test_every_cel_rule_of_the_crd_has_a_twin() -> None:
    rules = {rule.rule for rule in crd_rules() if rule.path != KEY_PATH}
    assert rules - set(TWINS) == set(), "a CEL rule without a Python twin in validate"
    assert set(TWINS) - rules == set(), "a twin whose CEL rule is gone from the CRD"


@pytest.mark.parametrize("rule", crd_rules(), ids=lambda r: f"{'.'.join(r.path)}: {r.rule}")
def test_validate_agrees_with_the_cel_rule_over_the_corpus(rule: Rule) -> None:
    twin = twin_of(rule)
    failing = 0
    for name, data, messages in documents():
        reported = any(re.search(twin.words, message) for message in messages)
        if cel_fails(rule, data):
            failing += 1
            assert reported, (
                f"{name}: the API server refuses it ({rule.rule}); validate: {messages}"
            )
        elif twin.same and reported:
            # Another rule of the same words may fail elsewhere in the document.
            others = [r for r in crd_rules() if twin_of(r) == twin and r != rule]
            assert any(cel_fails(o, data) for o in others), (
                f"{name}: validate refuses what the API server accepts: {messages}"
            )
    assert failing, f"no corpus case breaks {rule.rule}; add one to tests/corpus/prompts"
