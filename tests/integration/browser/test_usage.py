"""Usage per revision, variant and outcome: a real Prometheus (Debian's package,
installed by `make test-deps`) scrapes a demo app that reads a real sidecar's
files; the console's Prompt page shows each variant's share of each outcome."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from prompt_cluster.testing import free_port, kubectl, start_process, stop_process, wait_for

from ..helpers import SidecarFactory, condition, get, wait_prompt

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Prometheus of its own; the test writes its scrape targets file."""
    assert Path(PROMETHEUS).exists(), f"{PROMETHEUS} is missing: run `make test-deps`"
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: demo-app\n"
        f"    file_sd_configs: [{{files: ['{targets}'], refresh_interval: 1s}}]\n"
    )
    port = free_port()
    proc = start_process(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=tmp_path / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for(ready, timeout=60, message="prometheus ready")
    yield url, targets
    stop_process(proc)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=5
    ) as resp:
        return list(json.loads(resp.read())["data"]["result"])


def test_usage_per_variant_and_outcome_from_a_real_prometheus(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    prometheus: tuple[str, Path],
    browser: WebDriver,
    tmp_path: Path,
    operator: object,
    shot: Any,
) -> None:
    kubectl(
        kubeconfig, "-n", namespace, "apply", "-f", str(REPO / "examples/greeting-ab-test.yaml")
    )
    obj = wait_prompt(kubeconfig, namespace, "greeting")
    revision = obj["status"]["revision"]
    pod = sidecars("app")
    wait_for(lambda: pod.file("greeting"), timeout=30, message="greeting.txt from the sidecar")
    sidecars("stuck", start=False)  # a subscribed pod whose sidecar never answers

    def waiting_for_stuck() -> bool:
        cond = condition(get(kubeconfig, namespace, "prompt", "greeting") or {}, "Delivered")
        return "stuck" in str((cond or {}).get("message"))

    wait_for(waiting_for_stuck, timeout=30, message="the Delivered condition to name the pod")

    port = free_port()
    app_log = tmp_path / "app.log"
    app = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("usage_app.py")), str(pod.dir), str(port)],
        stdout=subprocess.PIPE,
        stderr=app_log.open("wb"),
        text=True,
    )
    console = None
    try:
        assert app.stdout is not None
        logged: dict[str, dict[str, int]] = json.loads(app.stdout.readline() or "{}")
        assert set(logged) == {"control", "concise"}, app_log.read_text()
        url, targets = prometheus
        targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
        total = sum(sum(v.values()) for v in logged.values())
        promql = 'sum(prompt_usage_total{prompt="greeting"})'
        wait_for(
            lambda: (r := query(url, promql)) and float(r[0]["value"][1]) == total,
            timeout=60,
            message="Prometheus to scrape every use",
        )
        # Cardinality stays fixed: the free-text outcome is "other".
        series = query(url, 'prompt_usage_total{prompt="greeting"}')
        assert {s["metric"]["outcome"] for s in series} <= {"resolved", "escalated", "other"}

        from .conftest import start_console

        console = start_console(
            kubeconfig, tmp_path / "console.log", namespace, "--prometheus", url
        )
        console.login(browser)
        browser.get(f"{console.url}/ns/{namespace}/prompts/greeting")
        # Delivery: the pod and the variant its name hashes to, which its sidecar wrote.
        delivery = browser.find_element(By.CSS_SELECTOR, "[data-delivery]").text
        served = json.loads((pod.dir / ".prompts" / "meta" / "greeting.json").read_text())
        assert "app" in delivery and served["variant"] in delivery
        stale = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "[data-delivery] tr.stale")]
        assert any(r.startswith("stuck") and "older revision" in r for r in stale), stale
        table = browser.find_element(By.CSS_SELECTOR, "table[data-usage]")
        for variant, outcomes in logged.items():
            row = table.find_element(By.CSS_SELECTOR, f"tr[data-variant={variant}]")
            uses = sum(outcomes.values())
            assert revision[:12] in row.text and f"{uses}" in row.text
            for outcome, count in outcomes.items():
                cell = row.find_element(By.CSS_SELECTOR, f"td[data-outcome={outcome}]")
                assert cell.text.startswith(f"{round(100 * count / uses, 1)}%"), cell.text
                assert f"({count})" in cell.text
        browser.execute_script("document.getElementById('h-variants').scrollIntoView()")
        shot("variants-usage")
    finally:
        app.terminate()
        app.wait(10)
        if console is not None:
            stop_process(console.proc)
