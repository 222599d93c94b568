"""`prompt-operator rollout` against the real API server and the real kubectl: it reads
a status.rollout written through the status subresource, as the operator writes it,
and its actions write the annotation the operator acts on (seen by a watch, since an
operator may act on it and remove it at once)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import kubectl, prompt_manifest, tool, wait_for
from prompt_contract import objects

from .helpers import apply, get

# These tests show the CLI a status.rollout written by hand; the operator would
# replace it with its own (test_rollouts.py drives real rollouts).
pytestmark = pytest.mark.usefixtures("operator_stopped")

STABLE = "1f0e2d3c4b5a6978"
CANDIDATE = "9a8b7c6d5e4f3021"
SPEC_ROLLOUT = {
    "steps": [
        {"setWeight": 20},
        {
            "analysis": {
                "prometheus": {
                    "goodOutcomes": ["resolved"],
                    "threshold": {"minimum": 0.9},
                    "minSamples": 20,
                    "interval": "30s",
                    "count": 3,
                }
            }
        },
        {"pause": {"duration": "2m"}},
    ]
}
PROGRESSING = {
    "phase": "Progressing",
    "stableRevision": STABLE,
    "candidateRevision": CANDIDATE,
    "revisions": ["c0ffee0000000001"],
    "step": 1,
    "steps": 3,
    "weight": 20,
    "stepStartedAt": "2026-12-05T07:00:00Z",
    "message": "measuring the canary's share of good outcomes",
    "analysisRuns": [
        {
            "step": 1,
            "provider": "prometheus",
            "phase": "Running",
            "startedAt": "2026-12-05T07:00:00Z",
            "failures": 1,
            "measurements": [
                {
                    "at": "2026-12-05T07:00:30Z",
                    "value": 0.8333,
                    "threshold": 0.9,
                    "samples": 36,
                    "phase": "Failed",
                }
            ],
        }
    ],
}
ABORTED_MESSAGE = (
    f"the rollout was aborted at step 2: serving the stable revision {STABLE}, not the "
    f"spec's {CANDIDATE}; a new spec clears it, or `prompt-operator rollout retry`"
)


def aborted() -> dict[str, Any]:
    raw = copy.deepcopy(PROGRESSING)
    raw.update(phase="Aborted", weight=0)
    raw["analysisRuns"][0]["phase"] = "Failed"
    return raw


def rollout_prompt(kubeconfig: Path, namespace: str, name: str) -> None:
    apply(
        kubeconfig,
        prompt_manifest(
            name, "Hello {user}", variables=["user"], spec_extra={"rollout": SPEC_ROLLOUT}
        ),
        namespace,
    )


def write_status(kubeconfig: Path, namespace: str, name: str, rollout: dict[str, Any]) -> None:
    """status.rollout (and SpecServed when aborted) through the status subresource."""
    status: dict[str, Any] = {"rollout": rollout}
    if rollout["phase"] == "Aborted":
        status["conditions"] = [
            {
                "type": "SpecServed",
                "status": "False",
                "reason": "RolloutAborted",
                "message": ABORTED_MESSAGE,
                "lastTransitionTime": "2026-12-05T07:02:00Z",
            }
        ]
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "patch",
        "prompt",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def with_status(
    kubeconfig: Path,
    namespace: str,
    name: str,
    rollout: dict[str, Any],
    seen: Callable[[], Any],
) -> Any:
    """Write ``rollout`` and return what ``seen`` makes of it. An operator that owns
    status.rollout may rewrite a hand-written one at any moment, so the write is
    repeated until ``seen`` has read it."""

    def attempt() -> Any:
        write_status(kubeconfig, namespace, name, rollout)
        return seen()

    return wait_for(attempt, timeout=30, interval=0.2, message=f"status.rollout {rollout['phase']}")


@pytest.fixture
def annotations(kubeconfig: Path, namespace: str) -> Iterator[Callable[[], list[str]]]:
    """Every value of the rollout-action annotation a watch on the namespace's Prompts
    has seen, in order ("" when absent)."""
    path = objects.ROLLOUT_ACTION_ANNOTATION.replace(".", "\\.")
    out = Path(kubeconfig).parent / f"watch-{namespace}.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                tool("kubectl"),
                f"--kubeconfig={kubeconfig}",
                "-n",
                namespace,
                "get",
                "prompts",
                "--watch",
                "-o",
                f'jsonpath={{.metadata.annotations.{path}}}{{"\\n"}}',
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield lambda: out.read_text().splitlines()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rollout_cli(
    kubeconfig: Path, namespace: str, *args: str, plugin: bool = False
) -> subprocess.CompletedProcess[str]:
    """`prompt-operator rollout ARGS`, or as the kubectl plugin `kubectl prompt rollout
    ARGS` (kubectl finds kubectl-prompt on PATH)."""
    venv_bin = str(Path(tool("prompt-operator")).parent)
    command = [tool("kubectl"), "prompt"] if plugin else [tool("prompt-operator")]
    return subprocess.run(
        [*command, "rollout", *args, "-n", namespace, "--kubeconfig", str(kubeconfig)],
        env={**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_prints_phase_step_weights_and_measurements_against_thresholds(
    kubeconfig: Path, namespace: str
) -> None:
    rollout_prompt(kubeconfig, namespace, "greeter")

    def printed() -> str | None:
        done = rollout_cli(kubeconfig, namespace, "status", "greeter", plugin=True)
        assert done.returncode == 0, done.stderr
        return done.stdout if "rollout Progressing" in done.stdout else None

    text = with_status(kubeconfig, namespace, "greeter", PROGRESSING, printed)
    assert text.splitlines()[:3] == [
        "Prompt greeter: rollout Progressing, step 2/3, canary 20%",
        f"  stable     {STABLE}  (served to 80%)",
        f"  candidate  {CANDIDATE}  (served to 20%)",
    ]
    assert "     > 2  analysis: Prometheus, candidate >= 0.9, 3 times" in text
    assert "0.8333 < 0.9  36 samples  Failed" in text

    def aborted_text() -> str | None:
        done = rollout_cli(kubeconfig, namespace, "status", "greeter")
        return done.stdout if "rollout Aborted" in done.stdout else None

    text = with_status(kubeconfig, namespace, "greeter", aborted(), aborted_text)
    assert f"served differs from the spec: {ABORTED_MESSAGE}" in text
    assert "`prompt-operator rollout retry greeter`" in text


def test_abort_writes_the_annotation_and_a_senseless_action_is_refused(
    kubeconfig: Path, namespace: str, annotations: Callable[[], list[str]]
) -> None:
    rollout_prompt(kubeconfig, namespace, "greeter")
    refused = rollout_cli(kubeconfig, namespace, "promote", "greeter")
    assert refused.returncode == 1
    assert "has no rollout running" in refused.stderr

    def aborts() -> subprocess.CompletedProcess[str] | None:
        done = rollout_cli(kubeconfig, namespace, "abort", "greeter")
        return done if done.returncode == 0 else None

    done = with_status(kubeconfig, namespace, "greeter", PROGRESSING, aborts)
    assert "abort asked for (prompts.dev/rollout-action=abort)" in done.stdout
    wait_for(lambda: "abort" in annotations(), timeout=30, message="the abort annotation")

    def refuses() -> subprocess.CompletedProcess[str] | None:
        done = rollout_cli(kubeconfig, namespace, "promote", "greeter", "--full")
        return done if "was aborted" in done.stderr else None

    refused = with_status(kubeconfig, namespace, "greeter", aborted(), refuses)
    assert refused.returncode == 1
    assert "`retry` starts it again from the first step" in refused.stderr
    assert "promote-full" not in annotations()
    obj = get(kubeconfig, namespace, "prompt", "greeter") or {}
    assert (obj["metadata"].get("annotations") or {}).get(objects.ROLLOUT_ACTION_ANNOTATION) in (
        None,
        "abort",
    )
