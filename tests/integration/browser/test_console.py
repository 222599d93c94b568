"""The console in a real browser against the local cluster: what a person sees.

Each test works in a namespace of its own, writes with the real kubectl where
"someone else" acts, and checks both the page and the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from prompt_cluster.testing import kubectl, prompt_manifest, stop_process, wait_for

from ..helpers import apply, get, wait_prompt
from .conftest import Console, start_console

REPO = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def until(check: Callable[[], T | None], what: str, timeout: float = 20) -> T:
    """Wait for a page condition; an element that is not there (yet) is a False."""

    def attempt() -> T | None:
        try:
            return check()
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    return wait_for(attempt, timeout=timeout, interval=0.05, message=what)


def css(browser: WebDriver, selector: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, selector)


def texts(browser: WebDriver, selector: str) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]


def make(kubeconfig: Path, ns: str, name: str, template: str, **kw: Any) -> dict[str, Any]:
    apply(kubeconfig, prompt_manifest(name, template, **kw), ns)
    return wait_prompt(kubeconfig, ns, name)


def type_into(element: WebElement, text: str) -> None:
    element.clear()
    element.send_keys(text)


@pytest.fixture
def page(browser: WebDriver, console: Console) -> Callable[[str], None]:
    def go(path: str) -> None:
        console.login(browser)
        browser.get(console.url + path)

    return go


def test_list_shows_readiness_revision_delivery_and_labels_and_filters(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    for example in ("support-agent", "greeting-ab-test", "holiday-notice", "json-extractor"):
        kubectl(
            kubeconfig, "-n", namespace, "apply", "-f", str(REPO / "examples" / f"{example}.yaml")
        )
    apply(
        kubeconfig,
        prompt_manifest("broken", "Hello {who}", labels={"prompts.dev/team": "growth"}),
        namespace,
    )
    wait_prompt(kubeconfig, namespace, "broken", ready=False, reason="UndeclaredVariable")
    wait_prompt(kubeconfig, namespace, "support-agent")
    page(f"/ns/{namespace}/prompts")
    names = until(lambda: texts(browser, "tbody [data-prompt] a.name") or None, "rows")
    assert {"support-agent", "greeting", "broken"} <= set(names)
    # The live stream may replace the rows at any moment: read them through until().
    broken = until(lambda: css(browser, "tr[data-prompt=broken]").text, "broken's row")
    assert "Not ready" in broken and "UndeclaredVariable" in broken and "{who}" in broken
    agent = until(lambda: css(browser, "tr[data-prompt=support-agent]").text, "a row")
    assert "Ready" in agent and "#1" in agent and "prompts.dev/team=support" in agent
    assert "key support_agent" in agent
    until(lambda: css(browser, "[data-live-status]").text == "Live", "live status")
    shot("list")

    type_into(css(browser, "#label"), "prompts.dev/team=support")
    css(browser, "form.filters button[type=submit]").click()
    until(lambda: texts(browser, "tbody a.name") == ["support-agent"], "label filter")
    page(f"/ns/{namespace}/prompts?q=SUPPORT_")  # search finds the key
    until(lambda: texts(browser, "tbody a.name") == ["support-agent"], "search by key")
    page(f"/ns/{namespace}/prompts?label=team+in+(")
    assert "Not a label selector" in css(browser, "#label-error").text


def test_list_updates_live_after_kubectl_apply_without_a_reload(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None]
) -> None:
    make(kubeconfig, namespace, "first", "one")
    page(f"/ns/{namespace}/prompts")
    until(lambda: css(browser, "[data-live-status]").text == "Live", "the event stream")
    browser.execute_script("window.__sameDocument = true")
    apply(kubeconfig, prompt_manifest("second", "two {x}"), namespace)  # not ready: undeclared
    row = until(lambda: css(browser, "tr[data-prompt=second]").text, "the new row", timeout=30)
    assert "second" in row
    until(
        lambda: "UndeclaredVariable" in css(browser, "tr[data-prompt=second]").text,
        "the operator's verdict to arrive live",
        timeout=30,
    )
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "first")
    until(lambda: not browser.find_elements(By.CSS_SELECTOR, "tr[data-prompt=first]"), "removal")
    assert browser.execute_script("return window.__sameDocument") is True  # never reloaded


def test_prompt_page_highlights_placeholders_and_previews_with_the_client_render(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    kubectl(
        kubeconfig, "-n", namespace, "apply", "-f", str(REPO / "examples" / "support-agent.yaml")
    )
    wait_prompt(kubeconfig, namespace, "support-agent")
    page(f"/ns/{namespace}/prompts/support-agent")
    marks = texts(browser, "pre.template mark.ph")
    assert marks[:2] == ["{product}", "{customer_name}"]
    assert "The customer's first name" in css(browser, "dl.vars").text
    assert "Ready True" in css(browser, "ul.conditions").text
    # Empty fields: the default fills product, customer_name has none.
    assert (
        "missing value for variable(s) customer_name" in css(browser, "[data-preview-output]").text
    )
    css(browser, "#var-customer_name").send_keys("Ada")
    until(
        lambda: "talking to Ada." in css(browser, "[data-preview-output]").text,
        "the preview to render",
    )
    assert "support agent for Acme Cloud" in css(browser, "[data-preview-output]").text
    shot("prompt")
    # Keyboard: the first Tab reaches the skip link, and focus is visible.
    browser.get(browser.current_url)
    css(browser, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    style = "return getComputedStyle(document.activeElement).outlineStyle"
    assert browser.execute_script(style) != "none"


def _two_revisions(kubeconfig: Path, ns: str) -> None:
    make(kubeconfig, ns, "agent", "Be kind and brief.\nSign as Acme.\n")
    apply(kubeconfig, prompt_manifest("agent", "Be kind and thorough.\nSign as Acme.\n"), ns)
    wait_for(
        lambda: (
            len(
                (get(kubeconfig, ns, "prompt", "agent") or {}).get("status", {}).get("revisions")
                or []
            )
            == 2
        ),
        timeout=30,
        message="two revisions",
    )


def test_revisions_compare_two_side_by_side_with_the_changed_word_marked(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    _two_revisions(kubeconfig, namespace)
    page(f"/ns/{namespace}/prompts/agent/revisions")
    assert texts(browser, "ol.timeline-list .rev")[:2] == ["#2", "#1"]
    assert "#1 → #2" in css(browser, "[data-compare-summary]").text
    assert "text +1 -1 lines" in css(browser, "[data-compare-summary]").text
    assert texts(browser, "table.diff del") == ["brief"]
    assert texts(browser, "table.diff ins") == ["thorough"]
    shot("revisions")


def test_rollback_names_what_changes_then_serves_the_old_text(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    _two_revisions(kubeconfig, namespace)
    first = get(kubeconfig, namespace, "prompt", "agent")["status"]["revisions"][0]["revision"]  # type: ignore[index]
    page(f"/ns/{namespace}/prompts/agent/revisions")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Roll back to #1").click()
    summary = until(lambda: css(browser, "[data-rollback-summary]").text, "confirmation")
    assert "text +1 -1 lines" in summary
    assert texts(browser, "table.diff del") == ["thorough"]  # now -> after
    assert texts(browser, "table.diff ins") == ["brief"]
    assert get(kubeconfig, namespace, "prompt", "agent")["spec"]["template"].startswith(  # type: ignore[index]
        "Be kind and thorough"
    )  # nothing written before the confirmation
    shot("rollback")
    css(browser, "button.danger").click()
    until(lambda: "Rolled back to revision #1" in css(browser, ".notice.ok").text, "notice")
    obj = wait_for(
        lambda: (
            (o := get(kubeconfig, namespace, "prompt", "agent"))
            and o["status"].get("revision") == first
            and o
        ),
        timeout=30,
        message="the old revision to be current again",
    )
    assert obj["spec"]["template"] == "Be kind and brief.\nSign as Acme.\n"
    assert [r["number"] for r in obj["status"]["revisions"]] == [1, 2, 3]


def test_an_edit_that_fails_a_check_writes_nothing_then_one_that_passes_saves(
    kubeconfig: Path,
    namespace: str,
    browser: WebDriver,
    page: Callable[[str], None],
    console: Console,
    shot: Any,
) -> None:
    make(kubeconfig, namespace, "agent", "Hello {name}", variables=["name"])
    before = get(kubeconfig, namespace, "prompt", "agent")
    page(f"/ns/{namespace}/prompts/agent/edit")
    template = css(browser, "#template")
    template.send_keys(" from {team}")
    message = until(lambda: css(browser, "#err-template .error").text, "the live check")
    assert "{team}" in message and "not declared in spec.variables" in message
    assert css(browser, "#template").get_attribute("aria-invalid") == "true"
    shot("edit-check")
    css(browser, "button[value=save]").click()
    until(lambda: css(browser, "[data-outcome=invalid]"), "refusal")
    assert "{team}" in css(browser, "#err-template").text  # next to the field, after reload too
    after = get(kubeconfig, namespace, "prompt", "agent")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]

    # Declare the variable in the empty row, dry-run, then save.
    css(browser, "[data-var-row]:last-child input[name=var_name]").send_keys("team")
    css(browser, "[data-var-row]:last-child input[name=var_default]").send_keys("Support")
    until(lambda: css(browser, "[data-checks-status]").text == "All checks pass.", "checks pass")
    css(browser, "button[value=dry-run]").click()
    assert "Dry run passed" in until(lambda: css(browser, "[data-outcome=dry-run]").text, "dry run")
    assert get(kubeconfig, namespace, "prompt", "agent")["spec"]["template"] == "Hello {name}"  # type: ignore[index]
    css(browser, "button[value=save]").click()
    until(lambda: css(browser, "[data-saved]"), "the saved notice")
    obj = wait_prompt(kubeconfig, namespace, "agent")
    assert obj["spec"]["template"] == "Hello {name} from {team}"
    assert obj["spec"]["variables"] == [{"name": "name"}, {"name": "team", "default": "Support"}]
    fields = json.loads(
        kubectl(
            kubeconfig,
            "-n",
            namespace,
            "get",
            "prompt",
            "agent",
            "-o",
            "json",
            "--show-managed-fields",
        ).stdout
    )["metadata"]["managedFields"]
    assert "prompt-console" in {m["manager"] for m in fields}
    # The log names paths, never the prompt text.
    log = console.log_text()
    assert "/ns/" in log and "from {team}" not in log and "Hello {name}" not in log


def test_a_conflicting_edit_is_shown_and_never_overwrites(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    make(kubeconfig, namespace, "agent", "Version one.")
    page(f"/ns/{namespace}/prompts/agent/edit")
    until(lambda: css(browser, "#template"), "the form")
    apply(kubeconfig, prompt_manifest("agent", "Their version two."), namespace)  # someone else
    type_into(css(browser, "#template"), "My version two.")
    css(browser, "button[value=save]").click()
    notice = until(lambda: css(browser, "[data-outcome=conflict]").text, "the conflict")
    assert "Someone else changed this Prompt" in notice and "nothing was written" in notice
    assert texts(browser, "[data-outcome=conflict] table.diff del") == ["Their"]
    assert texts(browser, "[data-outcome=conflict] table.diff ins") == ["My"]
    assert css(browser, "#template").get_attribute("value") == "My version two."  # kept
    shot("conflict")
    assert get(kubeconfig, namespace, "prompt", "agent")["spec"]["template"] == "Their version two."  # type: ignore[index]


def test_a_gitops_managed_prompt_is_read_only_with_the_manifest_to_commit(
    kubeconfig: Path, namespace: str, browser: WebDriver, page: Callable[[str], None], shot: Any
) -> None:
    make(
        kubeconfig,
        namespace,
        "agent",
        "From git.",
        labels={"argocd.argoproj.io/instance": "helpdesk"},
    )
    before = get(kubeconfig, namespace, "prompt", "agent")
    page(f"/ns/{namespace}/prompts/agent/edit")
    notice = css(browser, ".notice.gitops").text
    assert "Read-only here" in notice and "Argo CD" in notice
    manifest = css(browser, "[data-manifest]").text
    assert (
        "kind: Prompt" in manifest and "From git." in manifest and "resourceVersion" not in manifest
    )
    assert not css(browser, "button[value=save]").is_enabled()  # the fieldset is disabled
    shot("gitops")
    # A post that gets past the disabled form is refused by the server too.
    browser.execute_script("document.querySelector('form.edit fieldset').disabled = false")
    type_into(css(browser, "#template"), "Edited in the console.")
    css(browser, "button[value=save]").click()
    refused = until(lambda: css(browser, "[data-outcome=refused]").text, "the refusal")
    assert "Nothing was written" in refused and "Argo CD" in refused
    assert "Edited in the console." in css(browser, "[data-manifest]").text  # to commit
    page(f"/ns/{namespace}/prompts/agent/revisions")
    assert "Read-only here" in css(browser, ".notice.gitops").text
    # No labels, but Flux's controller owns the spec (its server-side apply).
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "--server-side",
        "--field-manager=kustomize-controller",
        "-f",
        "-",
        input=json.dumps(prompt_manifest("synced", "From Flux.")),
    )
    page(f"/ns/{namespace}/prompts/synced/edit")
    notice = css(browser, ".notice.gitops").text
    assert "Flux" in notice and "kustomize-controller" in notice
    after = get(kubeconfig, namespace, "prompt", "agent")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]


def test_a_user_whose_rbac_forbids_writes_is_told_not_allowed(
    kubeconfig: Path,
    namespace: str,
    browser: WebDriver,
    tmp_path: Path,
    operator: object,
) -> None:
    make(kubeconfig, namespace, "agent", "Read me.")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "prompt-reader", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["prompts.dev"],
                "resources": ["prompts"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["configmaps", "events", "pods"],
                "verbs": ["get", "list"],
            },
        ],
    }
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(role))
    kubectl(kubeconfig, "-n", namespace, "create", "serviceaccount", "reader")
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "rolebinding",
        "reader",
        "--role=prompt-reader",
        f"--serviceaccount={namespace}:reader",
    )
    from prompt_cluster.testing import service_account_kubeconfig

    reader = service_account_kubeconfig(
        kubeconfig, namespace, "reader", tmp_path / "reader.kubeconfig"
    )
    limited = start_console(reader, tmp_path / "reader-console.log", namespace)
    try:
        limited.login(browser)
        browser.get(f"{limited.url}/ns/{namespace}/prompts/agent/edit")
        banner = css(browser, "[data-not-allowed]").text
        assert "Not allowed to change this Prompt" in banner
        type_into(css(browser, "#template"), "Changed by a reader.")
        css(browser, "button[value=save]").click()
        outcome = until(lambda: css(browser, "[data-outcome=forbidden]").text, "the refusal")
        assert "Not allowed." in outcome and "RBAC" in outcome and "forbidden" in outcome
        assert get(kubeconfig, namespace, "prompt", "agent")["spec"]["template"] == "Read me."  # type: ignore[index]
        token = yaml.safe_load(reader.read_text())["users"][0]["user"]["token"]
        assert token not in browser.page_source
        browser.get(f"{limited.url}/ns/{namespace}/prompts/agent/revisions")
        assert texts(browser, "ol.timeline-list .rev") == ["#1"]  # reading still works
        assert token not in browser.page_source  # the user's token never reaches a page
    finally:
        stop_process(limited.proc)


def test_the_printed_link_signs_a_browser_in_once_and_nothing_shows_without_it(
    kubeconfig: Path, namespace: str, browser: WebDriver, tmp_path: Path, operator: object
) -> None:
    make(kubeconfig, namespace, "agent", "Private text.")
    fresh = start_console(kubeconfig, tmp_path / "console.log", namespace)
    try:
        browser.get(f"{fresh.url}/ns/{namespace}/prompts")
        assert "printed on its terminal" in css(browser, "body").text
        assert "agent" not in browser.page_source
        link = fresh.link()
        browser.get(link)
        until(lambda: texts(browser, "tbody a.name") == ["agent"], "the list after the link")
        assert "token" not in browser.current_url  # redirected to the clean URL
        cookies = {c["name"]: c for c in browser.get_cookies()}
        session = cookies[f"prompt_console_session_{fresh.url.rsplit(':', 1)[1]}"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        until(lambda: css(browser, "[data-live-status]").text == "Live", "the event stream")
        browser.delete_cookie(session["name"])
        browser.get(link)  # spent
        assert "This link is spent" in css(browser, "body").text
        fresh.login(browser)  # SIGUSR1 printed a new one
        browser.get(f"{fresh.url}/ns/{namespace}/prompts/agent")
        assert "Private text." in css(browser, "pre.template").text
        # The terminal shows the token once; the access log line of /login does not.
        assert fresh.log_text().count(link.split("token=")[1]) == 1
        assert "GET /login 303" in fresh.log_text()
    finally:
        stop_process(fresh.proc)
