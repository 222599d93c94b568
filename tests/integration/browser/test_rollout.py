"""A Prompt's rollout in the console, in a real browser: the panel drawn from a
status.rollout written through the status subresource, and its Abort button writing
the annotation the operator acts on (seen by a watch, through the console's CSRF)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from prompt_cluster.testing import wait_for

from ..test_rollout_cli import (  # noqa: F401 (annotations is a fixture)
    ABORTED_MESSAGE,
    CANDIDATE,
    PROGRESSING,
    STABLE,
    aborted,
    annotations,
    rollout_prompt,
    write_status,
)
from .test_chat import page  # noqa: F401 (a fixture)
from .test_console import css, texts, until

# The panel is shown a status.rollout written by hand; no operator replaces it.
pytestmark = pytest.mark.usefixtures("operator_stopped")


def panel(
    kubeconfig: Path,
    ns: str,
    rollout: dict[str, object],
    browser: WebDriver,
    go: Callable[[str], None],
) -> WebElement:
    """The panel once the page shows ``rollout``'s phase. An operator that owns
    status.rollout may rewrite a hand-written one, so it is written again until seen."""

    def attempt() -> WebElement | None:
        write_status(kubeconfig, ns, "greeter", rollout)
        go(f"/ns/{ns}/prompts/greeter")
        try:
            found = css(browser, "[data-rollout]")
            return found if found.get_attribute("data-phase") == rollout["phase"] else None
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    return wait_for(attempt, timeout=30, interval=0.2, message=f"rollout panel {rollout['phase']}")


def test_the_rollout_panel_shows_steps_weights_and_measurements_and_abort_writes_the_action(
    kubeconfig: Path,
    namespace: str,
    browser: WebDriver,
    page: Callable[[str], None],  # noqa: F811
    annotations: Callable[[], list[str]],  # noqa: F811
    shot: Callable[[str], None],
) -> None:
    rollout_prompt(kubeconfig, namespace, "greeter")
    progressing = copy.deepcopy(PROGRESSING)
    progressing["message"] = "measuring <b>the canary</b>"
    found = panel(kubeconfig, namespace, progressing, browser, page)
    assert css(browser, "[data-rollout-step]").text == "2/3"
    assert css(browser, "[data-rollout-message]").text == "measuring <b>the canary</b>"
    assert texts(browser, "[data-rollout-weights] tbody tr") == [
        f"stable {STABLE} 80%",
        f"canary {CANDIDATE} 20%",
    ]
    states = [e.get_attribute("data-state") for e in found.find_elements("css selector", "li")]
    assert states == ["done", "current", "next"]
    assert css(browser, "[aria-current=step]").text.startswith("analysis: Prometheus")
    assert texts(browser, "[data-compare]") == ["0.8333 < 0.9"]
    buttons = [
        e.get_attribute("data-action") for e in found.find_elements("css selector", "button")
    ]
    assert buttons == ["promote", "promote-full", "pause", "abort"]

    shot("rollout")
    css(browser, "button[data-action=abort]").click()
    wait_for(lambda: "abort" in annotations(), timeout=30, message="the abort annotation")
    asked = until(lambda: css(browser, "[data-rollout-asked]").text, "the notice")
    assert "Asked the operator to abort the rollout" in asked

    panel(kubeconfig, namespace, aborted(), browser, page)
    served = css(browser, "[data-spec-served]").text
    assert "What is served differs from the spec; a new spec clears it." in served
    assert ABORTED_MESSAGE in served
    assert texts(browser, "[data-rollout-actions] button") == ["Retry"]
