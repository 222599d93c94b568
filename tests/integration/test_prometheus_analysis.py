"""Prometheus analysis end to end without a cluster: a real app process counts
outcomes through the real prompt_client and prometheus_client, a real
Prometheus (built from Go modules) scrapes it, and ``query_scalar`` over
``outcome_share_queries`` measures each variant of a composite revision
(``stable`` and ``canary``) the way the operator's analysis does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_client import PromptRegistry
from prompt_cluster.prometheus import PrometheusServer
from prompt_cluster.testing import free_port, start_process, stop_process, tool, wait_for
from prompt_contract.files import read_meta
from prompt_operator.rollouts.prometheus import (
    PrometheusUnavailable,
    outcome_share_queries,
    query_scalar,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KEY = "support-reply"
WINDOW = 10  # seconds: the rate window of the measurements
# A composite revision as a rollout serves it: the stable text and the candidate
# as two variants. Their markers set the app's outcomes: 9 or 5 good of 10.
MANIFEST = f"""\
apiVersion: prompts.dev/v1alpha1
kind: Prompt
metadata: {{name: {KEY}}}
spec:
  variants:
    - name: stable
      weight: 50
      template: "Help the customer. [quality 9/10]"
    - name: canary
      weight: 50
      template: "Help the customer in one line. [quality 5/10]"
"""


def measure(url: str, promql: str) -> float | None:
    return asyncio.run(query_scalar(url, promql))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The prompt directory `prompt-operator files` writes, and an app serving it
    to 20 users, its metrics at the returned address."""
    (tmp_path / "prompt.yaml").write_text(MANIFEST)
    directory = tmp_path / "prompts"
    written = subprocess.run(
        [tool("prompt-operator"), "files", str(tmp_path / "prompt.yaml"), "--out", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    port = free_port()
    proc = start_process(
        [
            sys.executable,
            str(Path(__file__).with_name("outcome_app.py")),
            str(directory),
            KEY,
            str(port),
        ],
        log=tmp_path / "app.log",
    )
    try:
        yield directory, f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_each_variants_share_of_good_outcomes_and_its_samples(app: tuple[Path, str]) -> None:
    directory, target = app
    meta = read_meta(str(directory), KEY)
    assert meta is not None and set(meta.variants) == {"stable", "canary"}
    registry = PromptRegistry(str(directory), watch=False)
    users = [registry.info(KEY, variant_key=f"user-{i}").variant for i in range(20)]
    canary_users = users.count("canary")
    assert 0 < canary_users < 20  # both variants serve someone
    queries = {
        variant: outcome_share_queries(KEY, [meta.revision], variant, ["resolved"], WINDOW)
        for variant in ("stable", "canary")
    }
    with PrometheusServer([target]) as prometheus:
        prometheus.wait_until_scraped()

        def measured() -> dict[str, tuple[float, float]] | None:
            found = {}
            for variant, (share, samples) in queries.items():
                value, count = measure(prometheus.url, share), measure(prometheus.url, samples)
                if value is None or count is None or count < 100:
                    return None
                found[variant] = (value, count)
            return found

        values = wait_for(measured, timeout=30, interval=0.5, message="100 uses of each variant")
        assert values["stable"][0] == pytest.approx(0.9, abs=0.05)
        assert values["canary"][0] == pytest.approx(0.5, abs=0.05)
        samples = values["stable"][1] + values["canary"][1]
        assert values["canary"][1] / samples == pytest.approx(canary_users / 20, abs=0.05)

        # Another revision: no uses, so no number (not 0, which would fail a canary).
        other = outcome_share_queries(KEY, ["0" * 16], "canary", ["resolved"], WINDOW)
        assert (measure(prometheus.url, other[0]), measure(prometheus.url, other[1])) == (
            None,
            None,
        )
        # Uses but none good: 0, though no series of a good outcome exists.
        none_good = outcome_share_queries(KEY, [meta.revision], "canary", ["thanked"], WINDOW)
        assert measure(prometheus.url, none_good[0]) == 0.0
        # Escaped label values are PromQL Prometheus accepts.
        odd = outcome_share_queries('a "key"\\\n', ["x.y|z"], "c\u00e9", ["(ok)"], WINDOW)
        assert measure(prometheus.url, odd[0]) is None
        with pytest.raises(PrometheusUnavailable, match="HTTP 400, bad_data"):
            measure(prometheus.url, "sum(")
        with pytest.raises(PrometheusUnavailable, match="series; an analysis query must give one"):
            measure(prometheus.url, "prompt_usage_total")
        url = prometheus.url

    with pytest.raises(PrometheusUnavailable, match=f"cannot reach Prometheus at {url}"):
        measure(url, queries["canary"][0])
