"""`prompt-operator console` as a process: what it prints, what it refuses, how it
stops. Its kubeconfig names an API server nothing listens on: none of this needs one."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_cluster.testing import free_port, start_process, stop_process, tool, wait_for
from tests.reliability.report import Observed

KUBECONFIG = """\
current-context: c
contexts: [{name: c, context: {cluster: k, user: u, namespace: team}}]
clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: s3cret}}]
"""
LINK = re.compile(r"open http://127\.0\.0\.1:(\d+)(/login\?token=\S+)")


def console_args(tmp_path: Path, *extra: str) -> list[str]:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    return [tool("prompt-operator"), "console", f"--kubeconfig={config}", *extra]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    port = free_port()
    log = tmp_path / "console.log"
    proc = start_process(console_args(tmp_path, f"--port={port}"), log=log)
    wait_for(lambda: LINK.search(log.read_text()), timeout=30, message="the printed link")
    yield proc, log, port
    stop_process(proc)


def get(port: int, path: str, cookie: str = "") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    return conn.getresponse()


@pytest.mark.reliability(
    case="C-sigterm",
    did="SIGTERM the console process while a client holds a live stream open",
)
def test_the_console_exits_within_5_s_of_sigterm_with_a_stream_open(
    console: tuple[subprocess.Popen[bytes], Path, int], observed: Observed
) -> None:
    proc, log, port = console
    match = LINK.search(log.read_text())
    assert match is not None
    login = get(port, match.group(2))
    assert login.status == 303
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    stream = get(port, "/ns/team/prompts/stream", cookie)
    assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: proc.poll() is not None, timeout=5, interval=0.05, message="the exit")
    took = time.monotonic() - start
    assert proc.returncode == 0 and "console stopped" in log.read_text()
    assert "s3cret" not in log.read_text()
    observed(f"exited 0 {took:.2f} s after SIGTERM with a stream open")


def test_sigusr1_prints_a_new_one_time_link(
    console: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    proc, log, port = console
    assert f"kill -USR1 {proc.pid}" in log.read_text()
    proc.send_signal(signal.SIGUSR1)
    links = wait_for(
        lambda: (found := LINK.findall(log.read_text())) and len(found) == 2 and found,
        timeout=10,
        message="a second link",
    )
    assert links[0] != links[1]
    assert get(port, links[1][1]).status == 303
    assert get(port, links[1][1]).status == 403  # spent


def test_a_non_loopback_address_without_allow_host_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        console_args(tmp_path, "--address=0.0.0.0", f"--port={free_port()}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--allow-host NAME" in result.stderr and "other machines" in result.stderr


def test_a_wildcard_address_warns_and_prints_a_link_for_the_named_host(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "console.log"
    proc = start_process(
        console_args(tmp_path, "--address=0.0.0.0", f"--port={port}", "--allow-host=box.test"),
        log=log,
    )
    try:
        wait_for(lambda: "login?token=" in log.read_text(), timeout=30, message="the link")
        text = log.read_text()
        assert "warning: listening on 0.0.0.0" in text and "plain HTTP" in text
        assert f"open http://box.test:{port}/login?token=" in text
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/", headers={"Host": f"evil.example:{port}"})
        assert conn.getresponse().status == 421
    finally:
        stop_process(proc)
