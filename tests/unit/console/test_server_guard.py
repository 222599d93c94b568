"""The console's own guards, which act before any API call: Host check against
DNS rebinding, the CSRF token on every POST, security headers, a log line without
query strings. The API server here is an address nothing listens on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from prompt_cluster.testing import free_port
from prompt_operator.console.api import ConsoleApi
from prompt_operator.console.kubeconfig import KubeconfigError, load
from prompt_operator.console.server import (
    CSRF_COOKIE,
    Settings,
    allowed_hosts,
    make_app,
    start,
)
from prompt_operator.runtime.client import Credentials


def run(test: Callable[[aiohttp.ClientSession, int], Awaitable[None]]) -> None:
    async def main() -> None:
        api = ConsoleApi(
            Credentials("https://127.0.0.1:9", False, {"Authorization": "Bearer s3cret"})
        )
        port = free_port()
        settings = Settings("team", "ctx", "ada", allowed_hosts("127.0.0.1", port))
        runner = await start(make_app(api, settings), "127.0.0.1", port)
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as client:
            try:
                await test(client, port)
            finally:
                await runner.cleanup()

    asyncio.run(main())


def test_a_request_for_another_host_name_is_refused() -> None:
    async def test(client: aiohttp.ClientSession, port: int) -> None:
        response = await client.get(
            "/", headers={"Host": f"evil.example:{port}"}, allow_redirects=False
        )
        assert response.status == 421
        response = await client.get(
            "/", headers={"Host": f"localhost:{port}"}, allow_redirects=False
        )
        assert response.status == 302

    run(test)


def test_a_post_without_the_csrf_token_writes_nothing() -> None:
    async def test(client: aiohttp.ClientSession, port: int) -> None:
        path = "/ns/team/prompts/x/edit"
        response = await client.post(path, data={"template": "t"})
        assert response.status == 403 and "CSRF" in await response.text()
        first = await client.get("/", allow_redirects=False)
        token = first.cookies[CSRF_COOKIE].value
        assert (
            "HttpOnly" in first.headers["Set-Cookie"]
            and "SameSite=Strict" in first.headers["Set-Cookie"]
        )
        wrong = await client.post(path, data={"csrf_token": "guess"})
        assert wrong.status == 403
        other_site = await client.post(
            path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status == 403
        # With the token the request reaches the API, which is not there: 502, not 403.
        ok = await client.post(path, data={"csrf_token": token})
        assert ok.status == 502 and "unreachable" in (await ok.text()).lower()
        assert "s3cret" not in await ok.text()

    run(test)


def test_pages_carry_security_headers_and_the_log_has_no_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(client: aiohttp.ClientSession, port: int) -> None:
        with caplog.at_level(logging.INFO):
            response = await client.get("/ns/team/prompts/x/preview?var.name=SECRET-SAMPLE")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "/ns/team/prompts/x/preview" in caplog.text
        assert "SECRET-SAMPLE" not in caplog.text

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
