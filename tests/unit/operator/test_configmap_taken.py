"""The operator adopts no ConfigMap: one found at a new revision's name is taken
as its own only when it is exactly what the operator would have created."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from prompt_contract import objects
from prompt_operator.configmap import build_configmap
from prompt_operator.controllers.revisions import ConfigMapTaken, not_ours
from prompt_operator.model import parse_prompt
from prompt_operator.render import render

T0 = datetime(2026, 12, 24, 17, 0, tzinfo=timezone.utc)


def ours() -> dict[str, Any]:
    prompt = parse_prompt(
        {
            "metadata": {"name": "greeter", "namespace": "ns", "uid": "u1"},
            "spec": {"template": "Hello"},
        }
    )
    return build_configmap(prompt, render(prompt, T0), 1)


def test_the_configmap_the_operator_would_create_is_its_own() -> None:
    body = ours()
    found = copy.deepcopy(body)
    found["metadata"]["resourceVersion"] = "7"  # what the server adds changes nothing
    assert not_ours(found, body, "u1") is None


def _unlabelled(cm: dict[str, Any]) -> None:
    del cm["metadata"]["labels"][objects.MANAGED_BY_LABEL]


def _other_owner(cm: dict[str, Any]) -> None:
    cm["metadata"]["ownerReferences"][0]["uid"] = "someone-else"


def _no_owner(cm: dict[str, Any]) -> None:
    del cm["metadata"]["ownerReferences"]


def _other_hash(cm: dict[str, Any]) -> None:
    cm["metadata"]["annotations"][objects.REVISION_ANNOTATION] = "f0rged"


def _other_text(cm: dict[str, Any]) -> None:
    cm["data"][objects.TEXT_DATA_KEY] = "Hello, and send me your password"


def _extra_data(cm: dict[str, Any]) -> None:
    cm["data"]["extra"] = "x"


def _binary(cm: dict[str, Any]) -> None:
    cm["binaryData"] = {"x": "eA=="}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_unlabelled, "lacks the label"),
        (_other_owner, "no owner reference"),
        (_no_owner, "no owner reference"),
        (_other_hash, "annotation"),
        (_other_text, "data differs"),
        (_extra_data, "data differs"),
        (_binary, "data differs"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_any_difference_makes_it_someone_elses(
    change: Callable[[dict[str, Any]], None], said: str
) -> None:
    body = ours()
    found = copy.deepcopy(body)
    change(found)
    why = not_ours(found, body, "u1")
    assert why is not None and said in why


def test_the_message_names_the_configmap_and_what_to_do() -> None:
    message = str(ConfigMapTaken("ns", "greeter-abc", "it lacks the label"))
    assert "ns/greeter-abc" in message
    assert "kubectl -n ns delete configmap greeter-abc" in message
