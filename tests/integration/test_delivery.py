"""The whole chain: kubectl, API server, operator, signal, sidecar, files, app reader."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    kubectl,
    prompt_manifest,
    wait_for,
)
from prompt_operator.controllers.signals import MAX_SIGNAL_ATTEMPTS

from .helpers import SidecarFactory, apply, condition, get, metric, wait_prompt

pytestmark = pytest.mark.usefixtures("operator")


def test_edit_reaches_the_app_file_and_the_reference_reader(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    from prompt_hot_reloading import PromptRegistry
    from prompt_hot_reloading.prompt_source.file_system_source import FileSystemSource

    apply(kubeconfig, prompt_manifest("greeting", "Hello v0", key="greeting"), namespace)
    wait_prompt(kubeconfig, namespace, "greeting")
    app = sidecars("app")
    assert app.file("greeting") == b"Hello v0"
    before = {t.ident for t in threading.enumerate()}
    registry = PromptRegistry(FileSystemSource(str(app.dir)))
    watchers = [t for t in threading.enumerate() if t.ident not in before]
    assert registry["greeting"] == "Hello v0"
    assert set(registry.keys()) == {"greeting"}  # no junk keys from our hidden directory

    texts = [f"Hello v{i}\r\nline two of v{i}\n" for i in range(1, 51)]
    for text in texts:
        apply(kubeconfig, prompt_manifest("greeting", text, key="greeting"), namespace)
    final = texts[-1]
    wait_for(
        lambda: app.file("greeting") == final.encode(),
        timeout=15,
        message="the last edit in the file",
    )
    # The reference reader opens files in text mode, so it sees LF for CRLF.
    wait_for(
        lambda: registry["greeting"] == final.replace("\r\n", "\n"),
        timeout=5,
        message="prompt-hot-reloading to see the last edit",
    )
    assert watchers and all(t.is_alive() for t in watchers)
    assert set(registry.keys()) == {"greeting"}


def test_concurrent_reader_never_sees_a_torn_or_mixed_file(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    texts = [(f"variant {i} " * 4000 + "\r\n").encode() for i in range(30)]
    apply(kubeconfig, prompt_manifest("big", texts[0].decode(), fmt="raw"), namespace)
    wait_prompt(kubeconfig, namespace, "big")
    app = sidecars("app")
    path = app.dir / "big.txt"
    valid, seen_bad, stop = set(texts), [], threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                seen_bad.append(b"<missing>")
                continue
            if data not in valid:
                seen_bad.append(data[:80])

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for text in texts[1:]:
            apply(kubeconfig, prompt_manifest("big", text.decode(), fmt="raw"), namespace)
        wait_for(lambda: path.read_bytes() == texts[-1], timeout=15, message="last text")
    finally:
        stop.set()
        reader.join()
    assert seen_bad == []


def test_empty_selector_gets_only_operator_configmaps(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "configmap",
        "someone-elses",
        "--from-literal=prompt=not ours",
    )
    wait_for(lambda: get(kubeconfig, namespace, "configmap", "kube-root-ca.crt"), timeout=30)
    apply(kubeconfig, prompt_manifest("ours", "ours"), namespace)
    wait_prompt(kubeconfig, namespace, "ours")
    app = sidecars("app")
    assert sorted(p.name for p in app.dir.iterdir()) == [".prompts", "ours.txt"]


def test_selector_picks_prompts_and_relabelling_removes_the_file(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, prompt_manifest("a", "for support", labels={"team": "support"}), namespace)
    apply(kubeconfig, prompt_manifest("b", "for sales", labels={"team": "sales"}), namespace)
    wait_prompt(kubeconfig, namespace, "a")
    wait_prompt(kubeconfig, namespace, "b")
    support = sidecars("support", selector="team=support")
    everyone = sidecars("everyone")
    assert support.file("a") == b"for support" and support.file("b") is None
    assert everyone.file("a") and everyone.file("b")
    apply(kubeconfig, prompt_manifest("a", "for support", labels={"team": "other"}), namespace)
    wait_for(lambda: support.file("a") is None, timeout=10, message="file removed on relabel")
    assert everyone.file("a") == b"for support"


def test_delete_recreate_and_rename_key(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, prompt_manifest("p", "one", key="old-name"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app = sidecars("app")
    assert app.file("old-name") == b"one"
    apply(kubeconfig, prompt_manifest("p", "one", key="new-name"), namespace)
    wait_for(
        lambda: app.file("new-name") == b"one" and app.file("old-name") is None,
        timeout=10,
        message="key renamed",
    )
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "p")
    wait_for(lambda: app.file("new-name") is None, timeout=15, message="file removed on delete")
    apply(kubeconfig, prompt_manifest("p", "two", key="new-name"), namespace)
    wait_for(lambda: app.file("new-name") == b"two", timeout=15, message="file back on recreate")


def test_api_server_unreachable_keeps_files_and_reports_degraded(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    apply(kubeconfig, prompt_manifest("p", "kept"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app = sidecars("app", resync=0.5)
    app.stop()
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text(
        re.sub(
            r"https://127\.0\.0\.1:\d+",  # the one server URL
            "https://127.0.0.1:1",
            app.kubeconfig.read_text(),
        )
    )
    app.kubeconfig = broken  # the API server is "gone" for this sidecar
    app.start(wait_ready=False)
    wait_for(
        lambda: app.health()["status"] == "degraded" if _up(app) else None,
        timeout=15,
        message="degraded health",
    )
    assert app.file("p") == b"kept"
    assert not app.ready()


def _up(app: SidecarProcess) -> bool:
    try:
        app.health()
        return True
    except OSError:
        return False


def test_delivery_status_counts_pods_and_ignores_dead_ones(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, prompt_manifest("p", "v1"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    pods = [sidecars(f"pod-{i}") for i in range(3)]
    wait_for(
        lambda: (
            (get(kubeconfig, namespace, "prompt", "p")["status"].get("delivery") or {}).get(
                "summary"
            )
            == "3/3"
        ),
        timeout=20,
        message="delivery 3/3",
    )
    pods[2].kill()
    apply(kubeconfig, prompt_manifest("p", "v2"), namespace)
    obj = wait_for(
        lambda: (
            (o := wait_prompt(kubeconfig, namespace, "p"))["status"]["delivery"]["summary"] == "2/3"
            and o
        ),
        timeout=20,
        message="delivery 2/3",
    )
    delivered = condition(obj, "Delivered")
    assert delivered is not None and delivered["status"] == "False"
    assert "pod-2" in delivered["message"]
    assert pods[0].file("p") == b"v2" and pods[1].file("p") == b"v2"
    out = kubectl(kubeconfig, "-n", namespace, "get", "prompt", "p").stdout
    assert "2/3" in out


def _failed_signals(operator: OperatorProcess) -> float:
    return metric(
        f"http://127.0.0.1:{operator.metrics_port}",
        'prompt_operator_signals_total{result="failed"}',
        default=0.0,
    )


def test_a_sidecar_that_starts_after_its_pod_is_counted_once_it_answers(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, operator: OperatorProcess
) -> None:
    """The Pod object has its address before the sidecar listens (on a real node,
    between the sandbox and the container's start); the operator keeps trying a
    pod that never answered, so delivery counts it without waiting for an edit."""
    apply(kubeconfig, prompt_manifest("p", "v1"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    failed_before = _failed_signals(operator)
    late = sidecars("late", start=False)
    # More refused signals than the operator used to try before giving up.
    wait_for(
        lambda: _failed_signals(operator) >= failed_before + MAX_SIGNAL_ATTEMPTS,
        timeout=30,
        message="the operator's signals to the pod without a sidecar to fail",
    )
    late.start()
    assert late.file("p") == b"v1"
    wait_for(
        lambda: (
            (get(kubeconfig, namespace, "prompt", "p")["status"].get("delivery") or {}).get(
                "summary"
            )
            == "1/1"
        ),
        timeout=30,
        message="delivery 1/1 once the late sidecar answers",
    )


def test_prompt_operator_files_writes_what_the_real_sidecar_wrote(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    import json

    from prompt_operator.files_cli import main as files_main

    examples = Path(__file__).resolve().parents[2] / "examples"
    manifests = [str(examples / "support-agent.yaml"), str(examples / "greeting-ab-test.yaml")]
    for manifest in manifests:
        kubectl(kubeconfig, "-n", namespace, "apply", "-f", manifest)
    for name in ("support-agent", "greeting"):
        wait_prompt(kubeconfig, namespace, name)
    app = sidecars("app")
    out = tmp_path / "laptop"
    # The pod's name chooses the A/B variant, in the pod and here.
    assert files_main([*manifests, "--out", str(out), "-n", namespace, "--pod", "app"]) == 0

    def tree(root: Path) -> dict[str, bytes]:
        found = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".json":  # only the time of the write differs
                    data = json.dumps({**json.loads(data), "updated_at": ""}).encode()
                found[str(path.relative_to(root))] = data
        return found

    assert tree(out) == tree(app.dir)
    assert sorted(tree(out)) == [
        ".prompts/meta/greeting.json",
        ".prompts/meta/support_agent.json",
        "greeting.txt",
        "support_agent.txt",
    ]
