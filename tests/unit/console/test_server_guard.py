"""The console's own guards, which act before any API call: the one-time link and
the session, the CSRF token derived by the server, the Host check against DNS
rebinding, names in URLs, the cap on live views, security headers, a log line
without query strings. The API server here is an address nothing listens on, so
a request that got past every guard answers 502 "unreachable"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import yarl

from prompt_cluster.testing import free_port
from prompt_operator.console.auth import Keys, session_cookie_name
from prompt_operator.console.command import login_url
from prompt_operator.console.hosts import HostsError, allowed_hosts
from prompt_operator.console.server import make_app, start
from prompt_operator.console.service import PromptService
from prompt_operator.console.settings import Settings
from prompt_operator.runtime.client import Credentials
from prompt_operator.runtime.kubeconfig import KubeconfigError, load
from tests.reliability.report import Observed

UNREACHABLE = Credentials("https://127.0.0.1:9", False, {"Authorization": "Bearer s3cret"})


class Console:
    """A console app on loopback, its keys, and a client with no session yet."""

    def __init__(
        self, client: aiohttp.ClientSession, port: int, keys: Keys, service: PromptService
    ):
        self.client, self.port, self.keys, self.service = client, port, keys, service

    async def log_in(self, client: aiohttp.ClientSession | None = None) -> aiohttp.ClientResponse:
        url = login_url("127.0.0.1", self.port, [], self.keys.new_login_token())
        return await (client or self.client).get(url, allow_redirects=False)

    async def csrf(self) -> str:
        page = await (await self.client.get("/ns/team/prompts/x/edit")).text()
        # The API is unreachable, but the error page still carries the session's token.
        return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def run(
    test: Callable[[Console], Awaitable[None]],
    address: str = "127.0.0.1",
    names: tuple[str, ...] = (),
    max_streams: int = 32,
) -> None:
    async def main() -> None:
        service = PromptService.connect(UNREACHABLE, max_streams=max_streams)
        port = free_port()
        settings = Settings("team", "ctx", "ada", allowed_hosts(address, port, names), port)
        keys = Keys()
        runner = await start(make_app(service, settings, keys), address, port)
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as client:
            try:
                await test(Console(client, port, keys, service))
            finally:
                await runner.cleanup()

    asyncio.run(main())


PAGES = [
    ("GET", "/"),
    ("GET", "/ns/team/prompts"),
    ("GET", "/ns/team/prompts/stream"),
    ("GET", "/ns/team/prompts/x"),
    ("GET", "/ns/team/prompts/x/preview"),
    ("GET", "/ns/team/prompts/x/revisions"),
    ("GET", "/ns/team/prompts/x/rollback?to=1"),
    ("POST", "/ns/team/prompts/x/rollback"),
    ("POST", "/ns/team/prompts/x/rollout"),
    ("GET", "/ns/team/prompts/x/edit"),
    ("POST", "/ns/team/prompts/x/edit"),
    ("POST", "/ns/team/prompts/x/check"),
]


@pytest.mark.reliability(
    case="C-auth-no-cookie",
    did="call every console route, the event stream included, with no cookie, with a "
    "made-up session cookie and with the old scheme's client-chosen CSRF cookie",
)
def test_no_route_answers_without_the_session(observed: Observed) -> None:
    async def test(console: Console) -> None:
        cookie = session_cookie_name(console.port)
        for jar in ({}, {cookie: "made-up.0000"}, {"prompt_console_csrf": "x"}):
            for method, path in PAGES:
                response = await console.client.request(
                    method, path, cookies=jar, data={"csrf_token": "x"}, allow_redirects=False
                )
                text = await response.text()
                assert response.status == 401, (method, path, jar, response.status)
                assert "printed on its terminal" in text and "team" not in text
        # The static files hold no data and answer without a session.
        static = await console.client.get("/static/console.css")
        assert static.status == 200
        observed(f"{len(PAGES)} routes x 3 cookie jars: 401 each; only /static answers")

    run(test)


@pytest.mark.reliability(
    case="C-auth-token-once",
    did="open the printed one-time link, then open it again from a second client",
)
def test_the_link_works_once_and_becomes_a_strict_httponly_session(observed: Observed) -> None:
    async def test(console: Console) -> None:
        token = console.keys.new_login_token()
        url = login_url("127.0.0.1", console.port, [], token)
        first = await console.client.get(url, allow_redirects=False)
        assert first.status == 303 and first.headers["Location"] == "/"  # the clean URL
        assert first.headers["Referrer-Policy"] == "no-referrer"
        set_cookie = first.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        assert token not in set_cookie
        signed_in = await console.client.get("/ns/team/prompts", allow_redirects=False)
        assert signed_in.status == 502  # past every guard, to the API that is not there
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            again = await other.get(url, allow_redirects=False)
            assert again.status == 403 and "spent" in await again.text()
            assert (await other.get(url.split("/login")[0] + "/")).status == 401
            fresh = await console.log_in(other)  # what SIGUSR1 prints
            assert fresh.status == 303
            assert (await other.get(url.split("/login")[0] + "/ns/team/prompts")).status == 502
        observed("first use: 303 to / with an HttpOnly SameSite=Strict cookie; second: 403")

    run(test)


@pytest.mark.reliability(
    case="C-csrf-forged",
    did="with a valid session, POST an edit whose CSRF field the client chose, one "
    "matching a cookie it set itself, and one from another Origin",
)
def test_the_csrf_token_is_the_servers_not_the_clients(observed: Observed) -> None:
    async def test(console: Console) -> None:
        await console.log_in()
        path = "/ns/team/prompts/x/edit"
        for cookies, field in (({}, "guess"), ({"prompt_console_csrf": "x"}, "x"), ({}, "")):
            forged = await console.client.post(path, data={"csrf_token": field}, cookies=cookies)
            assert forged.status == 403 and "CSRF" in await forged.text()
        token = await console.csrf()
        other_site = await console.client.post(
            path, data={"csrf_token": token}, headers={"Origin": "http://evil.example"}
        )
        assert other_site.status == 403
        # The server's token reaches the API, which is not there: 502, not 403.
        ok = await console.client.post(path, data={"csrf_token": token})
        assert ok.status == 502 and "unreachable" in (await ok.text()).lower()
        assert "s3cret" not in await ok.text()
        header = await console.client.post(
            "/ns/team/prompts/x/check", headers={"X-CSRF-Token": token}
        )
        assert header.status == 502
        # Another session's token is not this session's.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            await console.log_in(other)
            base = f"http://127.0.0.1:{console.port}"
            crossed = await other.post(base + path, data={"csrf_token": token})
            assert crossed.status == 403
        observed("chosen, self-matching and cross-session tokens: 403; the server's: passes")

    run(test)


@pytest.mark.reliability(
    case="C-host-rebinding",
    did="send the Host names a DNS-rebinding page would (evil.example:PORT, evil.example, "
    "localhost.evil.example:PORT) to a console on {address}",
)
@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
def test_a_request_for_another_host_name_is_refused(address: str, observed: Observed) -> None:
    async def test(console: Console) -> None:
        await console.log_in()
        port = console.port
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
            response = await console.client.get("/", headers={"Host": host}, allow_redirects=False)
            assert response.status == 421, host
        for host in (f"localhost:{port}", f"LOCALHOST:{port}", f"127.0.0.1:{port}"):
            response = await console.client.get("/", headers={"Host": host}, allow_redirects=False)
            assert response.status == 302, host
        if address == "0.0.0.0":
            named = await console.client.get(
                "/", headers={"Host": f"console.example.internal:{port}"}, allow_redirects=False
            )
            assert named.status == 302
        observed(f"{address}: a foreign Host gets 421, the console's names get through")

    run(test, address, ("console.example.internal",) if address == "0.0.0.0" else ())


def test_a_non_loopback_address_needs_its_host_names_spelled_out() -> None:
    for address in ("0.0.0.0", "::", "192.0.2.10"):
        with pytest.raises(HostsError, match="--allow-host NAME"):
            allowed_hosts(address, 8471)
    assert allowed_hosts("0.0.0.0", 8471, ["Box.Example"]) == {
        "box.example:8471",
        "127.0.0.1:8471",
        "localhost:8471",
        "[::1]:8471",
    }
    assert allowed_hosts("192.0.2.10", 80, ["box"]) == {
        "192.0.2.10:80",
        "box:80",
        "192.0.2.10",
        "box",
    }
    assert allowed_hosts("::1", 8471) >= {"[::1]:8471", "localhost:8471"}
    for bad in ("*", "*.example", "box:8080", "http://box", "", "0.0.0.0"):
        with pytest.raises(HostsError):
            allowed_hosts("0.0.0.0", 8471, [bad])
    assert (
        login_url("0.0.0.0", 8471, ["box.example"], "t") == "http://box.example:8471/login?token=t"
    )
    assert login_url("::1", 8471, [], "t") == "http://[::1]:8471/login?token=t"


@pytest.mark.reliability(
    case="C-namespace-dotdot",
    did="request /ns/%2E%2E/prompts, /ns/Team/prompts, /ns/x/prompts/..%2Fsecrets and "
    "/?ns=.. with a valid session",
)
def test_names_in_urls_are_kubernetes_names(observed: Observed) -> None:
    async def test(console: Console) -> None:
        await console.log_in()
        for path in (
            "/ns/%2E%2E/prompts",
            "/ns/%2E%2E/prompts/stream",
            "/ns/Team/prompts",
            "/ns/team/prompts/..%2Fsecrets",
            "/ns/team/prompts/UPPER/revisions",
            "/?ns=..",
            "/?ns=a%2Fb",
        ):
            url = yarl.URL(f"http://127.0.0.1:{console.port}{path}", encoded=True)
            response = await console.client.get(url, allow_redirects=False)
            text = await response.text()
            assert response.status == 400, (path, response.status)
            assert "is not a" in text and "lower-case letters" in text, path
        observed("each answered 400 naming the rule, before any API call")

    run(test)


@pytest.mark.reliability(
    case="C-sse-cap",
    did="open more live list streams than the cap (4 here, 32 by default), all of one "
    "namespace, then close them",
)
def test_live_views_share_one_watch_and_are_capped(observed: Observed) -> None:
    async def test(console: Console) -> None:
        await console.log_in()
        hub = console.service.streams
        opened = []
        for _ in range(hub.cap):
            response = await console.client.get("/ns/team/prompts/stream")
            assert response.status == 200
            opened.append(response)
        await _until(lambda: hub.streams == hub.cap)
        assert hub.watches == 1  # one shared watch for every stream of (team, "")
        extra = await console.client.get("/ns/team/prompts/stream")
        assert extra.status == 503 and "close some of its tabs" in await extra.text()
        other = await console.client.get("/ns/other/prompts/stream?label=a%3Db")
        assert other.status == 503
        for response in opened:
            response.close()
        await _until(lambda: hub.streams == 0 and hub.watches == 0)
        again = await console.client.get("/ns/team/prompts/stream")
        assert again.status == 200
        again.close()
        observed(f"{hub.cap} streams, 1 watch; the next got 503; closed: no watch left")

    run(test, max_streams=4)


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_pages_carry_security_headers_and_the_log_has_no_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(console: Console) -> None:
        with caplog.at_level(logging.INFO):
            await console.log_in()
            response = await console.client.get("/ns/team/prompts/x/preview?var.name=SECRET")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "/ns/team/prompts/x/preview" in caplog.text and "/login" in caplog.text
        assert "SECRET" not in caplog.text and "token" not in caplog.text

    run(test)


def test_a_kubeconfig_with_an_exec_plugin_is_refused_with_what_to_do(tmp_path: Any) -> None:
    path = tmp_path / "config"
    path.write_text(
        "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {exec: {command: aws}}}]\n"
    )
    with pytest.raises(KubeconfigError, match="kubectl create token"):
        load(path)
    with pytest.raises(KubeconfigError, match="cannot read"):
        load(tmp_path / "missing")


def test_the_api_paths_refuse_what_is_not_a_kubernetes_name() -> None:
    from prompt_operator.prompt_api import BadName, prompt_path

    assert (
        prompt_path("team", "a.b-c") == "/apis/prompts.dev/v1alpha1/namespaces/team/prompts/a.b-c"
    )
    for namespace, name in (
        (".", None),
        ("..", None),
        ("a/b", None),
        ("x" * 64, None),
        ("team", ".."),
        ("team", "A"),
        ("team", "a..b"),
        ("team", "x" * 254),
    ):
        with pytest.raises(BadName):
            prompt_path(namespace, name)
