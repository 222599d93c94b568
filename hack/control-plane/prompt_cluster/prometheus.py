"""A real Prometheus for the tests: one process scraping the targets a test names.

The rollout tests judge a canary on what the apps count, so the counters go
through the same path as in a cluster: an app exposes ``prompt_usage_total``
over HTTP, Prometheus scrapes it, the operator queries Prometheus. The binary
is the one ``build.ensure_prometheus`` built from Go modules (static and file
targets only).

Targets live in a file-discovery file, so ``set_targets`` changes them while
Prometheus runs (new pods, a restarted app) without a restart; the scrape
interval is short (1s by default) so a test waits seconds, not minutes.
Everything it writes (configuration, targets, the TSDB) is in a temporary
directory removed by ``stop``.

    with PrometheusServer(["127.0.0.1:8000"]) as prom:
        prom.wait_until_scraped()
        ... query prom.url ...
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .build import ensure_prometheus
from .testing import free_port, start_process, stop_process, wait_for

JOB = "apps"  # the scrape job's name: the `job` label of every series scraped


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def config_text(targets_file: Path, scrape_interval: float) -> str:
    """The configuration: one job whose targets come from ``targets_file``."""
    interval = _duration(scrape_interval)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_interval": interval,
                "scrape_timeout": interval,  # may not exceed the interval
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    return json.dumps(config, indent=2)  # YAML reads JSON


class PrometheusServer:
    """``prometheus`` as a process on a free port of ``host`` (loopback unless given;
    see the module doc)."""

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        scrape_interval: float = 1.0,
        binary: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.binary = binary
        self.scrape_interval = scrape_interval
        self.host = host  # the node's address when pods must reach it
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self._targets = list(targets)
        self._dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start Prometheus and wait until it answers ``/-/ready``."""
        binary = self.binary or ensure_prometheus()
        self._dir = Path(tempfile.mkdtemp(prefix="prompt-prometheus-"))
        self.set_targets(self._targets)
        config = self._dir / "prometheus.yml"
        config.write_text(config_text(self._dir / "targets.json", self.scrape_interval))
        self.proc = start_process(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            log=self.log,
        )
        wait_for(self._ready, timeout=timeout, interval=0.1, message="Prometheus /-/ready")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def set_targets(self, targets: Sequence[str], labels: Mapping[str, str] | None = None) -> None:
        """Scrape ``targets`` (``host:port``) from now on, each series with ``labels``."""
        self._targets = list(targets)
        if self._dir is None:
            return
        groups = [{"targets": self._targets, "labels": dict(labels or {})}]
        staged = self._dir / ".targets.json"
        staged.write_text(json.dumps(groups))
        os.replace(staged, self._dir / "targets.json")  # never a half-written file

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a GET on the HTTP API, e.g. ``api("query", query="up")``."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as resp:
            answer = json.loads(resp.read())
        return answer["data"]

    def wait_until_scraped(self, timeout: float = 30.0) -> None:
        """Wait until every target was scraped successfully at least once."""

        def all_up() -> bool:
            active = self.api("targets", state="active")["activeTargets"]
            scraped = {t["scrapeUrl"].split("/")[2] for t in active if t["health"] == "up"}
            return bool(self._targets) and scraped >= set(self._targets)

        wait_for(all_up, timeout=timeout, interval=0.2, message=f"a scrape of {self._targets}")

    def stop(self) -> None:
        """Stop the process and remove everything it wrote."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
