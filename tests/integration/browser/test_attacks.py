"""Attacks on a running `prompt-operator console` (a real process with the
admin's kubeconfig) against the local cluster and the real operator, made
the way another local process or a web page would: raw HTTP, no browser."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from prompt_cluster.testing import audit_events, kubectl, prompt_manifest, stop_process, wait_for
from tests.reliability.report import Observed

from ..helpers import apply, get, settle_audit, wait_prompt
from .conftest import Console, start_console

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def running(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[Console]:
    console = start_console(kubeconfig, tmp_path / "console.log", namespace)
    yield console
    stop_process(console.proc)


def connect(console: Console) -> http.client.HTTPConnection:
    host, port = console.url.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def call(
    console: Console,
    method: str,
    path: str,
    cookie: str = "",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, http.client.HTTPResponse]:
    conn = connect(console)
    sent = {**(headers or {}), **({"Cookie": cookie} if cookie else {})}
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    return response.status, response.read().decode(errors="replace"), response


def session(console: Console) -> str:
    """The Cookie header a browser would send after opening a printed link."""
    link = console.link()
    status, _, response = call(console, "GET", link.split(console.url, 1)[1])
    assert status == 303, status
    return response.headers["Set-Cookie"].split(";", 1)[0]


@contextmanager
def stream(console: Console, path: str, cookie: str = "") -> Iterator[http.client.HTTPResponse]:
    """An open event stream (headers read, body left flowing)."""
    conn = connect(console)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    try:
        yield conn.getresponse()
    finally:
        conn.close()


@pytest.mark.reliability(
    case="C-auth-process",
    did="against the console process: read the live stream with no cookie, and POST a "
    "rollback and an edit with a cookie and csrf_token of the client's choosing",
)
def test_a_local_process_without_the_link_reads_and_changes_nothing(
    kubeconfig: Path, namespace: str, running: Console, observed: Observed
) -> None:
    apply(kubeconfig, prompt_manifest("agent", "Secret text one."), namespace)
    apply(kubeconfig, prompt_manifest("agent", "Secret text two."), namespace)
    wait_for(
        lambda: (
            len(
                (get(kubeconfig, namespace, "prompt", "agent") or {})
                .get("status", {})
                .get("revisions")
                or []
            )
            == 2
        ),
        timeout=30,
        message="two revisions",
    )
    before = get(kubeconfig, namespace, "prompt", "agent")["metadata"]["resourceVersion"]  # type: ignore[index]
    with stream(running, f"/ns/{namespace}/prompts/stream") as response:
        assert response.status == 401
        assert "agent" not in response.read(4096).decode()
    forged = "prompt_console_csrf=x"
    for path, body in (
        (f"/ns/{namespace}/prompts/agent/rollback", "to=1&csrf_token=x"),
        (f"/ns/{namespace}/prompts/agent/edit", "template=pwned&csrf_token=x"),
    ):
        status, text, _ = call(running, "POST", path, cookie=forged, body=body)
        assert status == 401 and "Secret" not in text
        status, _, _ = call(
            running, "POST", path, cookie=f"{forged}; {session(running)}", body=body
        )
        assert status == 403  # a session, but the client's own token
    after = get(kubeconfig, namespace, "prompt", "agent")["metadata"]["resourceVersion"]  # type: ignore[index]
    assert after == before
    observed("stream 401 without rows; forged posts 401, with a session 403; no write")


@pytest.mark.reliability(
    case="C-namespace-dotdot-cluster",
    did="with a session, GET /ns/%2E%2E/prompts and its stream from the console process "
    "while another namespace holds a Prompt",
)
def test_a_dotdot_namespace_never_becomes_a_cluster_wide_list(
    kubeconfig: Path, namespace: str, running: Console, observed: Observed
) -> None:
    other = f"{namespace}-other"
    from prompt_cluster.testing import kubectl

    kubectl(kubeconfig, "create", "namespace", other)
    try:
        apply(kubeconfig, prompt_manifest("elsewhere-secret", "Not yours."), other)
        wait_prompt(kubeconfig, other, "elsewhere-secret")
        cookie = session(running)
        for path in ("/ns/%2E%2E/prompts", "/ns/%2e%2e/prompts/stream", "/?ns=.."):
            status, text, _ = call(running, "GET", path, cookie=cookie)
            assert status == 400, (path, status)
            assert "elsewhere-secret" not in text and "not a namespace name" in text
        observed("400 'not a namespace name' for each; no Prompt of another namespace shown")
    finally:
        kubectl(kubeconfig, "delete", "namespace", other, "--wait=false", check=False)


def watches(audit_log: Path, since: int, namespace: str, stage: str = "ResponseStarted") -> int:
    """Watches of the namespace's Prompts the API server began (or, with stage
    ResponseComplete, ended) after line ``since``."""
    count = 0
    for event in audit_events(audit_log, since):
        uri = str(event.get("requestURI", ""))
        if (
            event.get("verb") == "watch"
            and event.get("stage") == stage
            and f"/namespaces/{namespace}/prompts" in uri
        ):
            count += 1
    return count


@pytest.mark.reliability(
    case="C-sse-shared-watch",
    did="open 33 live list streams of one namespace on the console process, then close them",
)
def test_streams_share_one_watch_and_the_33rd_is_refused(
    kubeconfig: Path, namespace: str, running: Console, audit_log: Path, observed: Observed
) -> None:
    apply(kubeconfig, prompt_manifest("agent", "Hello."), namespace)
    cookie = session(running)
    since = settle_audit(audit_log)
    path = f"/ns/{namespace}/prompts/stream"
    conns = []
    for _ in range(32):
        conn = connect(running)
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()
        assert response.status == 200
        assert b"agent" in response.readline() + response.readline()  # "event: rows", data
        conns.append(conn)
    status, text, _ = call(running, "GET", path, cookie=cookie)
    assert status == 503 and "close some of its tabs" in text
    settle_audit(audit_log)
    shared = watches(audit_log, since, namespace)
    assert shared == 1
    for conn in conns:
        conn.close()
    # Once the last stream is gone its watch stops: the API server logs its end.
    wait_for(
        lambda: watches(audit_log, since, namespace, "ResponseComplete") == 1,
        timeout=30,
        message="the shared watch to end after its last stream",
    )
    observed(f"32 streams: {shared} watch; the 33rd: 503; all closed: the watch ended")


@pytest.mark.reliability(
    case="C-diff-quadratic-process",
    did="make a Prompt whose two revisions are 8,000 identical lines with other first "
    "and last lines (208 KB), open its revisions page on the console process, then "
    "the list page",
)
def test_a_costly_comparison_says_too_large_and_the_console_stays_responsive(
    kubeconfig: Path, namespace: str, running: Console, observed: Observed
) -> None:
    same = "the same line of a prompt\n" * 8000
    apply(kubeconfig, prompt_manifest("huge", "A\n" + same + "B\n"), namespace)
    apply(kubeconfig, prompt_manifest("huge", "C\n" + same + "D\n"), namespace)
    wait_for(
        lambda: (
            len(
                (get(kubeconfig, namespace, "prompt", "huge") or {})
                .get("status", {})
                .get("revisions")
                or []
            )
            == 2
        ),
        timeout=60,
        message="two revisions",
    )
    cookie = session(running)
    start = time.monotonic()
    status, text, _ = call(running, "GET", f"/ns/{namespace}/prompts/huge/revisions", cookie=cookie)
    took = time.monotonic() - start
    assert status == 200 and "Too large to compare" in text and "data-too-large" in text
    status, _, _ = call(running, "GET", f"/ns/{namespace}/prompts", cookie=cookie)
    assert status == 200
    observed(f"revisions page: 'too large to compare' in {took:.2f} s (was ~20 s of blocked loop)")


def test_the_list_is_read_in_pages_and_capped(kubeconfig: Path, namespace: str) -> None:
    import asyncio

    from prompt_operator.prompt_api import BadName, PromptApi
    from prompt_operator.runtime.client import KubeApi
    from prompt_operator.runtime.kubeconfig import load

    for name in ("a", "b", "c"):
        apply(kubeconfig, prompt_manifest(name, "Hi."), namespace)

    async def main() -> None:
        kube = KubeApi(load(kubeconfig).credentials())
        api = PromptApi(kube)
        try:
            items, more = await api.prompts(namespace, cap=2)
            assert [i["metadata"]["name"] for i in items] == ["a", "b"] and more
            items, more = await api.prompts(namespace, cap=3)
            assert len(items) == 3 and not more
            with pytest.raises(BadName):
                await api.prompts("..")
        finally:
            await kube.close()

    asyncio.run(main())


def _form_value(html: str, name: str) -> str:
    return html.split(f'name="{name}" value="', 1)[1].split('"', 1)[0]


def test_a_variable_another_manager_added_and_the_user_removed_is_gone_after_saving(
    kubeconfig: Path, namespace: str, running: Console
) -> None:
    """Server-side apply keeps list entries another field manager owns; the console
    writes the spec whole then (``PromptService.save``), so what the form shows is
    what is stored."""
    manifest = prompt_manifest("pair", "Hi {name} from {team}", variables=["name", "team"])
    apply(kubeconfig, manifest, namespace, server_side=True)  # field manager: kubectl
    cookie = session(running)
    status, html, _ = call(running, "GET", f"/ns/{namespace}/prompts/pair/edit", cookie=cookie)
    assert status == 200
    form = urlencode(
        {
            "csrf_token": _form_value(html, "csrf_token"),
            "resource_version": _form_value(html, "resource_version"),
            "generation": _form_value(html, "generation"),
            "key": "pair",
            "format": "python",
            "template": "Hi {name}",
            "var_name": "name",
            "var_description": "",
            "var_default": "",
            "action": "save",
        }
    )
    status, text, _ = call(
        running, "POST", f"/ns/{namespace}/prompts/pair/edit", cookie=cookie, body=form
    )
    assert status == 303, text[-2000:]
    stored = get(kubeconfig, namespace, "prompt", "pair") or {}
    assert stored["spec"]["template"] == "Hi {name}"
    assert stored["spec"]["variables"] == [{"name": "name"}]


def test_a_status_write_between_opening_and_saving_is_not_a_conflict(
    kubeconfig: Path, namespace: str, running: Console
) -> None:
    """The operator writes a Prompt's status whenever pods answer; that bumps the
    resourceVersion the form was opened at, but no one changed the spec, so the
    save goes through (a spec written in between is still a conflict:
    test_console's concurrent edit)."""
    apply(kubeconfig, prompt_manifest("steady", "Hi {name}", variables=["name"]), namespace)
    cookie = session(running)
    status, html, _ = call(running, "GET", f"/ns/{namespace}/prompts/steady/edit", cookie=cookie)
    assert status == 200
    opened_at = _form_value(html, "resource_version")
    status_write = '{"status":{"observedGeneration":12345}}'  # any status write will do
    kubectl(
        kubeconfig, "-n", namespace, "patch", "prompt", "steady",
        "--subresource=status", "--type=merge", "-p", status_write,
    )  # fmt: skip
    stored = get(kubeconfig, namespace, "prompt", "steady") or {}
    assert stored["metadata"]["resourceVersion"] != opened_at
    form = {
        "csrf_token": _form_value(html, "csrf_token"),
        "resource_version": opened_at,
        "generation": _form_value(html, "generation"),
        "key": "steady",
        "format": "python",
        "template": "Hello {name}",
        "var_name": "name",
        "var_description": "",
        "var_default": "",
        "action": "save",
    }
    status, text, _ = call(
        running, "POST", f"/ns/{namespace}/prompts/steady/edit", cookie=cookie, body=urlencode(form)
    )
    assert status == 303, text[-2000:]
    stored = get(kubeconfig, namespace, "prompt", "steady") or {}
    assert stored["spec"]["template"] == "Hello {name}"
