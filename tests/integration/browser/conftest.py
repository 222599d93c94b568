"""Browser tests of `prompt-operator console`: Debian's chromium, driven through
chromium-driver by Selenium (no browser download), against the local cluster and
the real operator, the console running as its own process with a kubeconfig.

`pytest tests/integration/browser --screenshots docs/console` also saves the
pages the README shows.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prompt_cluster.testing import free_port, start_process, stop_process, tool, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        default=None,
        help="directory to save screenshots of the console's main pages into",
    )


LINK = re.compile(r"open (http://\S+/login\?token=\S+)")


@dataclass
class Console:
    """A running `prompt-operator console`: its base URL, its log file (where it
    prints its one-time links, as on a terminal) and how many links were used."""

    url: str
    log: Path
    proc: subprocess.Popen[bytes]
    used: int = 0
    signed_in: set[int] = field(default_factory=set)  # id() of browsers with a session

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def links(self) -> list[str]:
        return LINK.findall(self.log_text())

    def link(self) -> str:
        """An unused one-time link: the printed one, then new ones asked for with
        SIGUSR1, as a user would."""
        if len(self.links()) <= self.used:
            printed = len(self.links())
            self.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: len(self.links()) > printed, timeout=10, message="a new link")
        self.used += 1
        return self.links()[self.used - 1]

    def login(self, browser: object) -> None:
        """Open a link in ``browser`` once (its session cookie does the rest)."""
        if id(browser) not in self.signed_in:
            browser.get(self.link())  # type: ignore[attr-defined]
            self.signed_in.add(id(browser))


def start_console(kubeconfig: Path, log: Path, namespace: str = "default", *extra: str) -> Console:
    port = free_port()
    proc = start_process(
        [
            tool("prompt-operator"),
            "console",
            f"--port={port}",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={namespace}",
            *extra,
        ],
        log=log,
    )
    running = Console(f"http://127.0.0.1:{port}", log, proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"console exited:\n{log.read_text()}")
        return bool(running.links())  # printed once it listens

    wait_for(up, timeout=30, message="console to listen")
    return running


@pytest.fixture(scope="session")
def console(
    kubeconfig: Path, operator: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """The console with the cluster admin's kubeconfig (the operator runs too)."""
    running = start_console(kubeconfig, tmp_path_factory.mktemp("console") / "console.log")
    yield running
    stop_process(running.proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} is missing: run `make test-deps`"
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1360,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shot(request: pytest.FixtureRequest, browser: object) -> object:
    """``shot(name)`` saves a PNG of the page when --screenshots is given."""
    directory = request.config.getoption("--screenshots", default=None)

    def save(name: str) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(directory) / f"{name}.png"))  # type: ignore[attr-defined]

    return save


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
    """A fresh namespace per test, named like a team's (it shows in the screenshots)."""
    import uuid

    from prompt_cluster.testing import kubectl

    name = f"helpdesk-{uuid.uuid4().hex[:5]}"
    kubectl(kubeconfig, "create", "namespace", name)
    wait_for(
        lambda: (
            kubectl(kubeconfig, "-n", name, "get", "sa", "default", check=False).returncode == 0
        ),
        timeout=30,
        message=f"default service account in {name}",
    )
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)
