"""Bad input the API server lets through never disturbs a Prompt that is being served.

Every corpus case the API server accepts (`# server: accept` in tests/corpus/prompts)
is applied in one namespace next to a sentinel Prompt that a sidecar serves. The
operator must report on each (Ready=False with a reason for the bad ones, Ready=True
for the good ones), the sentinel's file must stay exactly as it was (bytes, inode,
mtime), nothing may be written outside the sidecar's directory, and the operator
must neither die nor log a traceback. The cases the API server refuses never reach
the operator; test_validate.py's test_api_server_agrees_with_the_corpus checks each
of them against the real API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from prompt_cluster.testing import OperatorProcess, kubectl, prompt_manifest, wait_for
from tests.reliability.report import Observed

from .helpers import SidecarFactory, apply, condition, get, wait_prompt
from .test_validate import CASES, Case, corpus_case

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.slow]

SENTINEL_TEXT = "Sentinel: keep me byte for byte.\r\nÜnïcödé ✓ {{braces}}\n"


def _documents(case: Case) -> list[dict[str, Any]]:
    """A case is its first document; the others are the Prompts it includes."""
    return [d for d in yaml.safe_load_all(case.path.read_text(encoding="utf-8")) if d]


def _manifest(case: Case) -> dict[str, Any]:
    return _documents(case)[0]


def _key(case: Case) -> str:
    data = _manifest(case)
    return str(data["spec"].get("key") or data["metadata"]["name"])


def _ext(case: Case) -> str:
    spec = _manifest(case)["spec"]
    calls = [spec, *(spec.get("variants") or []), *(spec.get("schedule") or [])]
    return ".json" if any("messages" in c or "model" in c for c in calls) else ".txt"


def _problems(records: list[dict[str, Any]]) -> list[str]:
    """Operator log records that show a crash: a traceback, or an error with exc_info."""
    found = []
    for record in records:
        text = json.dumps(record, ensure_ascii=False)
        severity = str(record.get("severity") or record.get("levelname") or "").lower()
        if "Traceback" in text or (severity in ("error", "critical") and record.get("exc_info")):
            found.append(text[:1000])
    return found


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.reliability(
    case="B-cluster",
    did="apply every accepted corpus case, and a Prompt claiming the sentinel's key, "
    "next to a served sentinel Prompt",
)
def test_accepted_bad_input_leaves_a_served_prompt_alone(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    operator: OperatorProcess,
    tmp_path: Path,
    observed: Observed,
) -> None:
    accepted = [case for case in map(corpus_case, CASES) if case.server == "accept"]
    assert len(accepted) >= 25
    names = {case.path.stem: _manifest(case)["metadata"]["name"] for case in accepted}
    assert "sentinel" not in names.values() and "thief" not in names.values()
    keys = [_key(case) for case in accepted]
    assert "sentinel" not in keys and len(set(keys)) == len(keys), "corpus keys must differ"
    log_start = len(operator.log_records())

    apply(kubeconfig, prompt_manifest("sentinel", SENTINEL_TEXT, key="sentinel"), namespace)
    sentinel = wait_prompt(kubeconfig, namespace, "sentinel")
    app = sidecars("app")
    wait_for(
        lambda: app.file("sentinel") == SENTINEL_TEXT.encode(),
        timeout=15,
        message="the sentinel's file",
    )
    text_file = app.dir / "sentinel.txt"
    meta_file = app.dir / ".prompts" / "meta" / "sentinel.json"
    before = (text_file.stat(), text_file.read_bytes(), meta_file.read_bytes())
    tree_before = _tree(tmp_path)

    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "--server-side",
        *[arg for case in accepted for arg in ("-f", str(case.path))],
        timeout=120,
    )
    # A Prompt that claims the sentinel's key: the older one keeps it.
    apply(kubeconfig, prompt_manifest("thief", "stolen", key="sentinel"), namespace)

    def reported() -> dict[str, dict[str, Any]] | None:
        listed = json.loads(
            kubectl(kubeconfig, "-n", namespace, "get", "prompts", "-o", "json").stdout
        )
        objects = {obj["metadata"]["name"]: obj for obj in listed["items"]}
        for obj in objects.values():
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            if condition(obj, "Ready") is None:
                return None
        everything = sum(len(_documents(case)) for case in accepted) + 2
        return objects if len(objects) == everything else None

    objects = wait_for(
        reported,
        timeout=120,
        interval=0.5,
        message="the operator to report on every accepted case",
    )
    wrong = []
    not_ready = 0
    for case in accepted:
        ready = condition(objects[names[case.path.stem]], "Ready")
        assert ready is not None
        said = f"{ready['reason']}: {ready['message']}"
        if case.ready:
            if ready["status"] != "True":
                wrong.append(f"{case.name}: expected Ready=True, got {said}")
            continue
        not_ready += 1
        if ready["status"] != "False" or not ready["reason"] or not ready["message"]:
            wrong.append(f"{case.name}: expected Ready=False with a reason, got {said}")
        elif case.operator and ready["reason"] != case.operator:
            wrong.append(f"{case.name}: expected reason {case.operator}, got {said}")
        elif not case.operator and case.expect not in said:
            wrong.append(f"{case.name}: expected {case.expect!r} in {said!r}")
    assert wrong == [], "\n".join(wrong)
    thief = condition(objects["thief"], "Ready")
    assert thief is not None and (thief["status"], thief["reason"]) == ("False", "KeyConflict")

    # Every good case is served directly in the directory, nothing else: as
    # <key>.txt, or as <key>.json when it has chat messages or a model.
    wanted = {f"{_key(case)}{_ext(case)}" for case in accepted if case.ready} | {"sentinel.txt"}
    # The Prompts a case includes are served when they are Ready themselves.
    wanted |= {
        f"{doc['spec'].get('key') or doc['metadata']['name']}.txt"
        for case in accepted
        for doc in _documents(case)[1:]
        if (condition(objects[doc["metadata"]["name"]], "Ready") or {}).get("status") == "True"
    }
    wait_for(
        lambda: {p.name for p in app.dir.iterdir() if p.name != ".prompts"} == wanted,
        timeout=30,
        message=lambda: f"files {sorted(wanted)}; have {sorted(p.name for p in app.dir.iterdir())}",
    )
    app_dir = app.dir.relative_to(tmp_path)
    outside = [
        str(p)
        for p in _tree(tmp_path) - tree_before
        if p.parent != app_dir and app_dir / ".prompts" not in p.parents
    ]
    assert outside == [], f"written outside the prompt directory: {outside}"
    assert not any(p.is_symlink() for p in app.dir.rglob("*"))

    after = (text_file.stat(), text_file.read_bytes(), meta_file.read_bytes())
    assert after[1] == before[1] == SENTINEL_TEXT.encode()
    assert after[2] == before[2]
    assert (after[0].st_ino, after[0].st_mtime_ns) == (before[0].st_ino, before[0].st_mtime_ns)
    now = get(kubeconfig, namespace, "prompt", "sentinel")
    assert now is not None
    assert condition(now, "Ready")["status"] == "True"  # type: ignore[index]
    assert now["status"]["revision"] == sentinel["status"]["revision"]

    assert operator.proc is not None and operator.proc.poll() is None, "the operator died"
    assert app.proc is not None and app.proc.poll() is None and app.ready()
    records = operator.log_records()[log_start:]
    assert _problems(records) == []
    observed(
        f"{len(accepted)} cases: {not_ready} Ready=False with a reason, "
        f"{len(accepted) - not_ready} Ready=True and served as <key>.txt or .json; the Prompt "
        "claiming the sentinel's key got KeyConflict; sentinel file unchanged (bytes, "
        f"inode, mtime); nothing outside the directory; operator alive, {len(records)} "
        "log records, no traceback"
    )
