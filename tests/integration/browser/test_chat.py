"""The console of a chat Prompt in a real browser: messages, model, tools, includes,
and a revision diff from a text to a call document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from prompt_cluster.testing import prompt_manifest, wait_for

from ..helpers import apply, get
from .conftest import Console
from .test_console import css, texts, until

MODEL = {
    "name": "gpt-4o-mini",
    "parameters": {"temperature": 0.2, "max_tokens": 512},
    "tools": [
        {
            "name": "lookup_order",
            "description": "Find an order by its id",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        }
    ],
}
MESSAGES = [
    {"role": "system", "content": "You help <b>{customer}</b>."},
    {"role": "placeholder", "name": "history"},
    {"role": "user", "content": "{question}"},
]
VARIABLES = [{"name": "customer", "default": "there"}, {"name": "question"}]


@pytest.fixture
def page(browser: WebDriver, console: Console) -> Callable[[str], None]:
    def go(path: str) -> None:
        console.login(browser)
        browser.get(console.url + path)

    return go


def chat(name: str, **spec: Any) -> dict[str, Any]:
    manifest = prompt_manifest(name, "unused")
    del manifest["spec"]["template"]
    manifest["spec"].update(messages=MESSAGES, model=MODEL, variables=VARIABLES, **spec)
    return manifest


def revisions(kubeconfig: Path, ns: str, name: str) -> int:
    obj = get(kubeconfig, ns, "prompt", name) or {}
    return len(obj.get("status", {}).get("revisions") or [])


def test_a_chat_prompt_shows_messages_model_tools_and_who_includes_a_snippet(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None]
) -> None:
    apply(kubeconfig, prompt_manifest("preamble", "Never share secrets."), namespace)
    apply(
        kubeconfig,
        chat("helper", includes=[{"name": "safety", "prompt": "preamble"}]),
        namespace,
    )
    page(f"/ns/{namespace}/prompts/helper")
    roles = [
        e.get_attribute("data-role")
        for e in browser.find_elements("css selector", "[data-messages] li")
    ]
    assert roles == ["system", "placeholder", "user"]
    assert "You help <b>{customer}</b>." in css(browser, "[data-messages]").text  # escaped
    assert "history" in css(browser, "[data-messages] .slot").text
    assert css(browser, "[data-model-name]").text == "gpt-4o-mini"
    assert texts(browser, "[data-parameters] tbody tr") == ["max_tokens 512", "temperature 0.2"]
    assert "lookup_order" in css(browser, "[data-tools] summary").text
    assert texts(browser, "[data-includes] a") == ["preamble"]
    css(browser, "#var-question").send_keys("Where is it?")
    until(
        lambda: "Where is it?" in texts(browser, "[data-preview-output] .preview-text"),
        "the messages preview",
    )
    # the default filled in, and the message's markup shown as text, not as markup
    assert "You help <b>there</b>." in css(browser, "[data-preview-output]").text
    assert css(browser, "[data-preview-output] [data-slot]").get_attribute("data-slot") == "history"
    page(f"/ns/{namespace}/prompts/preamble")
    assert texts(browser, "[data-included-by] a") == ["helper"]


def test_a_compare_from_a_text_revision_to_a_call_revision_shows_each_part(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None]
) -> None:
    apply(kubeconfig, prompt_manifest("agent", "Be kind."), namespace)
    wait_for(lambda: revisions(kubeconfig, namespace, "agent") == 1, timeout=30, message="rev 1")
    apply(kubeconfig, chat("agent"), namespace)
    wait_for(lambda: revisions(kubeconfig, namespace, "agent") == 2, timeout=30, message="rev 2")
    page(f"/ns/{namespace}/prompts/agent/revisions")
    assert "#1 → #2" in css(browser, "[data-compare-summary]").text
    headings = texts(browser, "h3.part")
    assert "message 1 · system" in headings and "tool lookup_order" in headings
    assert "model parameters" in headings
    assert "Be kind." in texts(browser, "table.diff del")
