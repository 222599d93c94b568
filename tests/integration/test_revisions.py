"""Revisions and rollback, A/B variants per pod, scheduled activation: real API
server, real operator, real sidecar processes, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    audit_events,
    kubectl,
    prompt_manifest,
    sidecar_role,
    tool,
    wait_for,
)
from prompt_contract.files import read_meta
from prompt_operator.controllers.revisions import prune_margin

from .conftest import OPERATOR_USER
from .helpers import apply, events_for, get, revision_configmaps, settle_audit, wait_prompt
from .test_operator import writes_in

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def sidecar(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[SidecarProcess]:
    """One app pod's sidecar in the test's namespace, with the sidecar's own Role."""
    role = sidecar_role(kubeconfig, namespace, tmp_path / "sidecar.kubeconfig")
    process = SidecarProcess(kubeconfig, role, namespace, "app", tmp_path)
    process.start()
    yield process
    process.stop()


def cli(kubeconfig: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("prompt-operator"), *args, "-n", namespace, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def revisions(kubeconfig: Path, namespace: str, name: str) -> list[dict[str, Any]]:
    obj = get(kubeconfig, namespace, "prompt", name) or {}
    return list((obj.get("status") or {}).get("revisions") or [])


def edit(kubeconfig: Path, namespace: str, name: str, text: str, **kwargs: Any) -> dict[str, Any]:
    apply(kubeconfig, prompt_manifest(name, text, **kwargs), namespace)
    return wait_for(
        lambda: (
            (obj := wait_prompt(kubeconfig, namespace, name))
            and any(
                r["revision"] == obj["status"]["revision"]
                for r in obj["status"].get("revisions", [])[-1:]
            )
            and obj
        ),
        timeout=30,
        message=f"{name} at {text!r}",
    )


# -- revisions and rollback --------------------------------------------------------------


def configmap_reads(audit_log: Path, since: int, namespace: str) -> list[str]:
    """ConfigMaps the operator read one by one in ``namespace`` after line ``since``."""
    names = []
    for event in audit_events(audit_log, since):
        ref = event.get("objectRef") or {}
        if (
            event.get("user", {}).get("username") == OPERATOR_USER
            and event.get("verb") == "get"
            and ref.get("resource") == "configmaps"
            and ref.get("namespace") == namespace
        ):
            names.append(ref.get("name", ""))
    return names


def test_edits_make_numbered_revisions_and_going_back_is_a_new_number(
    kubeconfig: Path, namespace: str, audit_log: Path
) -> None:
    start = settle_audit(audit_log)
    a = edit(kubeconfig, namespace, "p", "text A\n")["status"]["revision"]
    b = edit(kubeconfig, namespace, "p", "text A\ntext B\n")["status"]["revision"]
    again = edit(kubeconfig, namespace, "p", "text A\n")["status"]["revision"]
    assert again == a != b
    # Each summary compares with the revision before, which the operator still
    # holds from writing it: no edit costs it a read of a ConfigMap.
    settle_audit(audit_log)
    assert configmap_reads(audit_log, start, namespace) == []
    records = revisions(kubeconfig, namespace, "p")
    assert [(r["number"], r["revision"]) for r in records] == [(1, a), (2, b), (3, a)]
    assert records[0]["summary"] == "first revision"
    assert records[1]["summary"] == "text +1 -0 lines"
    assert records[2]["summary"] == "same as revision 1; text +0 -1 lines"
    # Two texts, two immutable ConfigMaps: revision 3 raised A's number, no copy.
    cms = revision_configmaps(kubeconfig, namespace, "p")
    assert [cm["metadata"]["labels"]["prompts.dev/revision-number"] for cm in cms] == ["2", "3"]
    assert all(cm.get("immutable") is True for cm in cms)
    table = cli(kubeconfig, namespace, "history", "p")
    assert table.returncode == 0, table.stderr
    assert "3 (current)" in table.stdout and a in table.stdout
    # The same as a kubectl plugin: kubectl finds kubectl-prompt on PATH.
    venv_bin = str(Path(tool("prompt-operator")).parent)
    plugin = subprocess.run(
        [tool("kubectl"), "prompt", "history", "p", "-n", namespace],
        env={
            **os.environ,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "KUBECONFIG": str(kubeconfig),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stderr
    assert plugin.stdout == table.stdout


def test_history_limit_prunes_in_batches_and_users_see_only_the_limit(
    kubeconfig: Path, namespace: str, audit_log: Path, sidecar: SidecarProcess
) -> None:
    limit = 2
    room = limit + prune_margin(limit)  # ConfigMaps that may exist between batches
    limited = {"revisionHistoryLimit": limit}
    # Another Prompt whose name starts with this one's: none of its ConfigMaps go.
    for text in ("other one", "other two", "other three"):
        edit(kubeconfig, namespace, "p-2", text, spec_extra=limited)
    theirs = [cm["metadata"]["name"] for cm in revision_configmaps(kubeconfig, namespace, "p-2")]
    assert len(theirs) == 3
    start = settle_audit(audit_log)
    texts = [f"text {n}" for n in range(1, 2 * (room + 1) - limit + 2)]  # two batches, then one
    for n, text in enumerate(texts, start=1):
        obj = edit(kubeconfig, namespace, "p", text, spec_extra=limited)
        numbers = [cm_number(cm) for cm in revision_configmaps(kubeconfig, namespace, "p")]
        assert len(numbers) <= room and numbers[-1] == n, (n, numbers)
        assert [r["number"] for r in obj["status"]["revisions"]] == list(
            range(max(1, n - limit + 1), n + 1)
        )
    settle_audit(audit_log)
    batches = [
        w
        for w in writes_in(audit_log, start, namespace)
        if (w["verb"], w["objectRef"].get("resource")) == ("deletecollection", "configmaps")
    ]
    # One request per batch: at edit room + 1, and room + 1 - limit edits later.
    assert len(batches) == 2, [w["requestURI"] for w in batches]
    assert not [w for w in writes_in(audit_log, start, namespace) if w["verb"] == "delete"], (
        "no ConfigMap was deleted on its own"
    )
    last = len(texts)
    cms = revision_configmaps(kubeconfig, namespace, "p")
    assert [cm_number(cm) for cm in cms] == [last - 2, last - 1, last]  # one beyond the limit
    assert [cm["metadata"]["name"] for cm in revision_configmaps(kubeconfig, namespace, "p-2")] == (
        theirs
    )
    # The sidecar serves the highest, with the extra ConfigMap there, on a signal
    # and after a restart (which lists every ConfigMap).
    wait_for(lambda: sidecar.file("p") == texts[-1].encode(), timeout=10)
    sidecar.stop()
    sidecar.start()
    assert sidecar.file("p") == texts[-1].encode()
    # What users see is the limit: history lists two, and a rollback to the
    # revision whose ConfigMap still exists is refused like one already pruned.
    table = cli(kubeconfig, namespace, "history", "p")
    assert table.returncode == 0, table.stderr
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [str(last - 1), str(last)]
    beyond = cli(kubeconfig, namespace, "rollback", "p", "--to", str(last - 2))
    pruned = cli(kubeconfig, namespace, "rollback", "p", "--to", "1")
    assert beyond.returncode == pruned.returncode == 1
    assert f"no revision {last - 2} (kept: {last - 1}, {last})" in beyond.stderr
    assert beyond.stderr.replace(str(last - 2), "N", 1) == pruned.stderr.replace("1", "N", 1)
    diff = cli(kubeconfig, namespace, "diff", "p", str(last - 2))
    assert diff.returncode == 1 and f"no revision {last - 2}" in diff.stderr


def cm_number(cm: dict[str, Any]) -> int:
    return int(cm["metadata"]["labels"]["prompts.dev/revision-number"])


def test_rollback_restores_the_exact_bytes_and_hash(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    first_text = "Hi {name},\r\nwelcome ✓\n"
    first = edit(kubeconfig, namespace, "p", first_text, variables=["name"])
    edit(kubeconfig, namespace, "p", "Bye {name}", variables=["name"])
    wait_for(lambda: sidecar.file("p") == b"Bye {name}", timeout=10)
    diff = cli(kubeconfig, namespace, "diff", "p", "1", "2")
    assert diff.returncode == 0, diff.stderr
    lines = diff.stdout.splitlines()
    assert lines[:3] == ["--- p revision 1", "+++ p revision 2", "@@ -1,2 +1 @@"], lines
    assert lines[3:] == ["-Hi {name},", "-welcome ✓", "+Bye {name}"], lines
    done = cli(kubeconfig, namespace, "rollback", "p", "--to", "1")
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: (
            (get(kubeconfig, namespace, "prompt", "p") or {}).get("status", {}).get("revision")
            == first["status"]["revision"]
        ),
        timeout=30,
    )
    wait_for(lambda: sidecar.file("p") == first_text.encode(), timeout=10)
    records = revisions(kubeconfig, namespace, "p")
    assert (records[-1]["number"], records[-1]["revision"]) == (3, first["status"]["revision"])
    missing = cli(kubeconfig, namespace, "rollback", "p", "--to", "9")
    assert missing.returncode == 1 and "no revision 9" in missing.stderr


def test_deleting_a_prompt_removes_every_revision(kubeconfig: Path, namespace: str) -> None:
    for text in ("a", "b", "c"):
        edit(kubeconfig, namespace, "p", text)
    assert len(revision_configmaps(kubeconfig, namespace, "p")) == 3
    subprocess.run(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "delete",
            "prompt",
            "p",
        ],
        check=True,
        capture_output=True,
    )
    wait_for(lambda: revision_configmaps(kubeconfig, namespace, "p") == [], timeout=30)


# -- variants ----------------------------------------------------------------------------

SidecarFleet = Callable[[int], list[SidecarProcess]]


@pytest.fixture
def fleet(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[SidecarFleet]:
    made: list[SidecarProcess] = []
    role = sidecar_role(kubeconfig, namespace, tmp_path / "sidecar.kubeconfig")

    def make(count: int) -> list[SidecarProcess]:
        pods = [
            SidecarProcess(kubeconfig, role, namespace, f"app-{i:02d}", tmp_path)
            for i in range(count)
        ]
        made.extend(pods)
        for pod in pods:
            pod.start(wait_ready=False)
        for pod in pods:
            wait_for(pod.ready, timeout=60, message=f"{pod.name} ready")
        return pods

    yield make
    for pod in made:
        pod.stop()


def ab_manifest(weights: tuple[int, int]) -> dict[str, Any]:
    manifest = prompt_manifest("greeting", "unused")
    del manifest["spec"]["template"]
    manifest["spec"]["variants"] = [
        {"name": "a", "weight": weights[0], "template": "Hello from A"},
        {"name": "b", "weight": weights[1], "template": "Hello from B"},
    ]
    return manifest


def served(pods: list[SidecarProcess]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for pod in pods:
        meta = read_meta(str(pod.dir), "greeting")
        text = pod.file("greeting")
        assert meta is None or text is None or text.decode() == f"Hello from {meta.variant.upper()}"  # type: ignore[union-attr]
        result[pod.name] = None if meta is None else meta.variant
    return result


@pytest.mark.slow
def test_variants_split_pods_by_weight_stably_and_move_the_fewest(
    kubeconfig: Path, namespace: str, fleet: SidecarFleet
) -> None:
    pods = fleet(20)
    apply(kubeconfig, ab_manifest((50, 50)), namespace)
    wait_for(lambda: None not in served(pods).values(), timeout=30, message="every pod served")
    even = served(pods)
    count_b = sum(v == "b" for v in even.values())
    # Stated tolerance: for 20 pods the hash split is binomial; 50/50 within 10 +- 5.
    assert 5 <= count_b <= 15, even
    status = wait_prompt(kubeconfig, namespace, "greeting")["status"]
    assert {v["name"]: v["pods"] for v in status["variants"]} == {"a": 20 - count_b, "b": count_b}
    # Each pod's metadata has every variant's text, for per-user splits in the app.
    meta = read_meta(str(pods[0].dir), "greeting")
    assert meta is not None and set(meta.variants) == {"a", "b"}

    # A sidecar restart (same pod name) serves the same variant.
    pods[0].stop()
    os.remove(pods[0].dir / "greeting.txt")
    pods[0].start()
    assert served(pods)[pods[0].name] == even[pods[0].name]

    apply(kubeconfig, ab_manifest((90, 10)), namespace)
    wait_for(
        lambda: (
            sum(v == "b" for v in served(pods).values()) <= count_b
            and wait_prompt(kubeconfig, namespace, "greeting")["status"]["variants"][0]["weight"]
            == 90
        ),
        timeout=30,
    )
    skewed = served(pods)
    moved = [name for name in pods_names(pods) if skewed[name] != even[name]]
    # Only pods leaving b move (to a); no pod on a is reshuffled.
    assert all(even[name] == "b" and skewed[name] == "a" for name in moved), (even, skewed)
    assert 0 <= sum(v == "b" for v in skewed.values()) <= 5


def pods_names(pods: list[SidecarProcess]) -> list[str]:
    return [pod.name for pod in pods]


# -- schedule ----------------------------------------------------------------------------


def at(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds")


def test_schedule_entry_activates_within_a_second_of_its_time(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    when = at(timedelta(seconds=3))
    schedule = [{"at": when, "template": "launch day"}]
    obj = edit(kubeconfig, namespace, "p", "before launch", spec_extra={"schedule": schedule})
    assert obj["status"]["nextActivation"] == when[:19] + "Z"
    wait_for(lambda: sidecar.file("p") == b"launch day", timeout=15, message="activated")
    activated = os.stat(sidecar.dir / "p.txt").st_mtime
    due = datetime.fromisoformat(when).timestamp()
    assert 0 <= activated - due < 1.0, activated - due
    obj = wait_for(
        lambda: (
            (o := get(kubeconfig, namespace, "prompt", "p"))
            and o["status"].get("activeSchedule") == when
            and o
        ),
        timeout=10,
    )
    assert "nextActivation" not in obj["status"]
    assert obj["status"]["revisions"][-1]["source"] == f"schedule {when}"
    reasons = [e["reason"] for e in events_for(kubeconfig, namespace, "p")]
    assert "ScheduleActivated" in reasons


def test_operator_down_across_an_activation_applies_it_on_start(
    kubeconfig: Path, namespace: str, operator: OperatorProcess
) -> None:
    when = at(timedelta(seconds=2))
    schedule = [{"at": when, "template": "after the outage"}]
    edit(kubeconfig, namespace, "p", "before", spec_extra={"schedule": schedule})
    operator.stop()
    try:
        deadline = datetime.fromisoformat(when) + timedelta(milliseconds=200)
        wait_for(lambda: datetime.now(timezone.utc) > deadline, timeout=10, interval=0.05)
    finally:
        operator.start()
    obj = wait_for(
        lambda: (
            (o := get(kubeconfig, namespace, "prompt", "p"))
            and o["status"].get("activeSchedule") == when
            and o
        ),
        timeout=30,
    )
    records = obj["status"]["revisions"]
    assert [r["source"] for r in records] == ["spec", f"schedule {when}"]  # applied once


def test_past_schedule_entries_are_a_warning_and_bad_times_are_refused(
    kubeconfig: Path, namespace: str
) -> None:
    past = prompt_manifest(
        "p", "now", spec_extra={"schedule": [{"at": "2020-01-01T00:00:00Z", "template": "old"}]}
    )
    done = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
        input=json.dumps(past),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for bad, fragment in (
        ([{"at": "2026-12-24T18:00:00", "template": "x"}], "RFC 3339 time with a zone"),
        (
            [{"at": "2030-01-01T00:00:00Z", "template": "x"}] * 2,
            "same time",
        ),
    ):
        manifest = prompt_manifest("q", "now", spec_extra={"schedule": bad})
        refused = subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
            input=json.dumps(manifest),
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0 and fragment in refused.stderr, refused.stderr


def test_a_prompt_made_again_under_its_name_starts_over_and_is_served(
    kubeconfig: Path, namespace: str, sidecar: SidecarProcess
) -> None:
    for text in ("one", "two", "three"):
        edit(kubeconfig, namespace, "p", text)
    wait_for(lambda: sidecar.file("p") == b"three", timeout=10)
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "p", "--wait=true")
    again = edit(kubeconfig, namespace, "p", "made again")
    assert [r["number"] for r in again["status"]["revisions"]] == [1]
    wait_for(lambda: sidecar.file("p") == b"made again", timeout=10)
    edit(kubeconfig, namespace, "p", "and edited")
    wait_for(lambda: sidecar.file("p") == b"and edited", timeout=10)
