"""spec.includes against a real API server and operator: a snippet edit makes new
revisions of every includer (with the cause in their history), cycles and missing
includes are not Ready, and a deleted snippet keeps its includers' last good text."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import OperatorProcess, kubectl, prompt_manifest, tool, wait_for

from .helpers import apply, condition, configmap_text, get, settle_audit, wait_prompt
from .test_operator import writes_in

pytestmark = pytest.mark.usefixtures("operator")


def includer(name: str, template: str, **includes: str) -> dict[str, Any]:
    spec = {"includes": [{"name": k, "prompt": v} for k, v in includes.items()]}
    return prompt_manifest(name, template, spec_extra=spec)


def wait_text(kubeconfig: Path, namespace: str, name: str, text: str) -> dict[str, Any]:
    """The Prompt once its current ConfigMap holds ``text`` and its status says Ready."""

    def served() -> dict[str, Any] | None:
        if configmap_text(kubeconfig, namespace, name) != text:
            return None
        obj = wait_prompt(kubeconfig, namespace, name)
        records = obj["status"].get("revisions") or []
        return obj if records and records[-1]["revision"] == obj["status"]["revision"] else None

    return wait_for(served, timeout=30, message=f"{name} serving {text!r}")


def test_editing_a_snippet_gives_every_includer_a_new_revision_with_its_cause(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, prompt_manifest("safety", "Be safe."), namespace)
    names = [f"p{i}" for i in range(3)]
    for name in names:
        apply(kubeconfig, includer(name, f"{{safety}}\n{name}", safety="safety"), namespace)
    before = {n: wait_text(kubeconfig, namespace, n, f"Be safe.\n{n}") for n in names}
    apply(kubeconfig, prompt_manifest("safety", "Be safe and kind."), namespace)
    for name in names:
        after = wait_text(kubeconfig, namespace, name, f"Be safe and kind.\n{name}")
        assert after["status"]["revision"] != before[name]["status"]["revision"]
        head = after["status"]["revisions"][-1]
        assert head["number"] == 2
        assert head["summary"].startswith("include safety -> safety changed"), head
    table = subprocess.run(
        [tool("prompt-operator"), "history", "p0", "-n", namespace, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert table.returncode == 0, table.stderr
    assert "include safety -> safety changed" in table.stdout


def test_a_nested_snippet_edit_reaches_the_outer_includer(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("inner", "I1"), namespace)
    apply(kubeconfig, includer("middle", "M[{i}]", i="inner"), namespace)
    apply(kubeconfig, includer("outer", "O[{m}]", m="middle"), namespace)
    wait_text(kubeconfig, namespace, "outer", "O[M[I1]]")
    apply(kubeconfig, prompt_manifest("inner", "I2"), namespace)
    obj = wait_text(kubeconfig, namespace, "outer", "O[M[I2]]")
    assert (
        "include m -> middle changed (through inner)" in obj["status"]["revisions"][-1]["summary"]
    )


def test_a_cycle_marks_both_prompts_not_ready_naming_the_chain(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, includer("a", "A{b}", b="b"), namespace)
    apply(kubeconfig, includer("b", "B{a}", a="a"), namespace)
    a = wait_prompt(kubeconfig, namespace, "a", ready=False, reason="IncludeCycle")
    b = wait_prompt(kubeconfig, namespace, "b", ready=False, reason="IncludeCycle")
    assert "a -> b -> a" in (condition(a, "Ready") or {})["message"]
    assert "b -> a -> b" in (condition(b, "Ready") or {})["message"]
    assert configmap_text(kubeconfig, namespace, "a") is None


def test_a_missing_include_becomes_ready_when_the_snippet_is_created(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, includer("p", "{s} there", s="later"), namespace)
    obj = wait_prompt(kubeconfig, namespace, "p", ready=False, reason="IncludeMissing")
    assert f"{namespace}/later" in (condition(obj, "Ready") or {})["message"]
    apply(kubeconfig, prompt_manifest("later", "Hello"), namespace)
    wait_text(kubeconfig, namespace, "p", "Hello there")


def test_deleting_a_snippet_makes_includers_not_ready_and_keeps_their_last_text(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, prompt_manifest("s", "Kept"), namespace)
    apply(kubeconfig, includer("p", "{s}!", s="s"), namespace)
    wait_text(kubeconfig, namespace, "p", "Kept!")
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "s")
    wait_for(
        lambda: (
            (condition(get(kubeconfig, namespace, "prompt", "p") or {}, "Ready") or {}).get(
                "reason"
            )
            == "IncludeMissing"
        ),
        timeout=30,
        message="p not Ready once its snippet is gone",
    )
    assert configmap_text(kubeconfig, namespace, "p") == "Kept!"


def test_operator_restart_rereads_includes_but_writes_nothing(
    kubeconfig: Path, namespace: str, audit_log: Path, operator: OperatorProcess
) -> None:
    apply(kubeconfig, prompt_manifest("s", "Snippet"), namespace)
    apply(kubeconfig, includer("p", "{s}.", s="s"), namespace)
    wait_text(kubeconfig, namespace, "p", "Snippet.")
    operator.stop()
    start = settle_audit(audit_log)
    operator.start()
    apply(kubeconfig, prompt_manifest("marker", "m"), namespace)
    wait_prompt(kubeconfig, namespace, "marker")
    settle_audit(audit_log)
    writes = [
        w
        for w in writes_in(audit_log, start, namespace)
        if not str(w["objectRef"].get("name", "")).startswith(("marker", "prompt-marker-"))
    ]
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]
