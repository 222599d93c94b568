"""The sidecar alone, as a real process against the real API server.

ConfigMaps are created directly in the operator's format (no operator runs),
and the sidecar runs under its least-privilege service account (get/list on
ConfigMaps in its namespace). To make the API server unreachable for one
sidecar without touching the shared control plane, its kubeconfig points at a
TCP relay that the test can cut and restore.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import SidecarProcess, kubectl, wait_for
from prompt_contract import objects, signals

from .helpers import SidecarFactory, post_signal

pytestmark = pytest.mark.cluster


def configmap(
    namespace: str,
    prompt: str,
    text: str,
    revision: str,
    *,
    key: str | None = None,
    labels: dict[str, str] | None = None,
    managed: bool = True,
    number: int | None = None,
) -> dict[str, Any]:
    """Revision ``revision`` of ``prompt`` as the operator writes it; "rN" is number N."""
    all_labels = dict(labels or {})
    if managed:
        all_labels[objects.MANAGED_BY_LABEL] = objects.MANAGED_BY_VALUE
    if number is None:
        number = int(revision[1:]) if revision[1:].isdigit() else 1
    all_labels[objects.REVISION_NUMBER_LABEL] = str(number)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(prompt, revision),
            "namespace": namespace,
            "labels": all_labels,
            "annotations": {
                objects.PROMPT_ANNOTATION: prompt,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: key or prompt,
            },
        },
        "data": {
            objects.TEXT_DATA_KEY: text,
            objects.METADATA_DATA_KEY: json.dumps(
                {"variables": ["user"], "defaults": {"user": "you"}, "format": "python"}
            ),
        },
    }


def apply(kubeconfig: Path, *objects: dict[str, Any]) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", input=json.dumps(body))


class Relay:
    """A TCP relay to the API server that can be cut (connections dropped,
    new ones refused) and restored, on one fixed local port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()


def post(sidecar: SidecarProcess, body: bytes, ctype: str = "application/json") -> tuple[int, Any]:
    status, answer = post_signal(sidecar, body, ctype, timeout=10)
    return status, json.loads(answer or b"null")


def listing(sidecar: SidecarProcess) -> list[str]:
    return sorted(os.listdir(sidecar.dir))


def test_start_writes_every_selected_file_then_reports_ready(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(
        kubeconfig,
        *[
            configmap(namespace, f"p{i}", f"text {i}\r\n{{user}}", f"r{i}", labels={"team": "a"})
            for i in range(60)  # more than one page
        ],
        configmap(namespace, "other-team", "no", "r", labels={"team": "b"}),
        configmap(namespace, "foreign", "no", "r", labels={"team": "a"}, managed=False),
        configmap(namespace, "hidden-key", "no", "r", key=".secret", labels={"team": "a"}),
    )
    app = sidecars("app", selector="team=a")  # returns once /readyz answers 200
    assert listing(app) == sorted([".prompts", *(f"p{i}.txt" for i in range(60))])
    assert app.file("p42") == b"text 42\r\n{user}"
    meta = json.loads((app.dir / ".prompts" / "meta" / "p42.json").read_text())
    assert (meta["prompt"], meta["revision"], meta["defaults"]) == (
        f"{namespace}/p42",
        "r42",
        {"user": "you"},
    )
    health = app.health()
    assert health["status"] == "ok" and health["lastSyncTime"]
    assert health["lastSyncRevisions"]["p7"] == "r7"


def test_signal_updates_the_file_and_answers_with_what_is_served(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, configmap(namespace, "greeting", "Hello v1", "r1"))
    app = sidecars("app")
    apply(kubeconfig, configmap(namespace, "greeting", "Hello v2", "r2"))
    status, answer = post(app, signals.encode_signal([("greeting", "r2")]))
    assert status == 200 and answer["pod"] == "app"
    wait_for(lambda: app.file("greeting") == b"Hello v2", timeout=10, message="updated file")
    assert post(app, signals.encode_signal([("greeting", "r2")]))[1]["served"] == {"greeting": "r2"}
    gone = [objects.configmap_name("greeting", rev) for rev in ("r1", "r2")]
    kubectl(kubeconfig, "-n", namespace, "delete", "configmap", *gone)
    post(app, signals.encode_signal([("greeting", "")]))
    wait_for(lambda: app.file("greeting") is None, timeout=10, message="removed file")


def test_forged_signals_change_nothing_and_garbage_gets_4xx(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, configmap(namespace, "p", "genuine", "r1"))
    app = sidecars("app")
    before = (app.dir / "p.txt").stat()
    status, answer = post(app, signals.encode_signal([("p", "forged"), ("nope", "x")]))
    assert (status, answer["served"]) == (200, {"p": "r1", "nope": None})
    after = (app.dir / "p.txt").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert listing(app) == [".prompts", "p.txt"]
    assert post(app, b"\xff garbage")[0] == 400
    assert post(app, b'{"prompts": [{"name": "p"}]}')[0] == 400
    assert post(app, b"[" * 100_000)[0] == 400
    assert post(app, b"{}", ctype="text/plain")[0] == 415
    assert app.ready() and app.file("p") == b"genuine"


def test_api_server_unreachable_keeps_files_degrades_and_heals(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    apply(kubeconfig, configmap(namespace, "p", "kept", "r1"))
    app = sidecars("app", start=False, resync=0.5)
    text = app.kubeconfig.read_text()
    found = re.search(r"https://127\.0\.0\.1:(\d+)", text)  # the one server URL
    assert found, text
    relay = Relay(("127.0.0.1", int(found.group(1))))
    relay.start()
    relayed = tmp_path / "relayed.kubeconfig"
    relayed.write_text(text.replace(found.group(0), f"https://127.0.0.1:{relay.port}"))
    app.kubeconfig = relayed
    try:
        app.start()
        relay.cut()  # the API server is gone for this sidecar
        wait_for(lambda: app.health()["status"] == "degraded", timeout=20, message="degraded")
        apply(kubeconfig, configmap(namespace, "p", "edited meanwhile", "r2"))
        kubectl(
            kubeconfig, "-n", namespace, "delete", "configmap", objects.configmap_name("p", "r1")
        )
        status, answer = post(app, signals.encode_signal([("p", "")]))
        assert (status, answer["served"]) == (200, {"p": "r1"})  # never removed on a failure
        assert app.file("p") == b"kept" and app.ready()
        apply(kubeconfig, configmap(namespace, "p", "after the outage", "r3"))
        relay.start()
        wait_for(lambda: app.file("p") == b"after the outage", timeout=60, message="healed")
        wait_for(lambda: app.health()["status"] == "ok", timeout=20, message="ok again")
    finally:
        relay.cut()


def test_sigterm_stops_the_sidecar_cleanly(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    apply(kubeconfig, configmap(namespace, "p", "x", "r1"))
    app = sidecars("app")
    assert app.proc is not None
    proc = app.proc
    app.stop()  # SIGTERM, then SIGKILL only after a grace period
    assert proc.returncode == 0
    assert app.file("p") == b"x"  # files stay for the app


def test_a_call_document_is_served_as_key_json_and_a_text_revision_replaces_it(
    kubeconfig: Path, namespace: str, sidecars: SidecarFactory
) -> None:
    from prompt_client import PromptRegistry
    from prompt_contract.calls import CALL_FORM, call_document, dump_call

    document = dump_call(
        call_document(
            format="python",
            variables=["user"],
            defaults={"user": "you"},
            messages=[
                {"role": "system", "content": "Help {user}."},
                {"role": "placeholder", "name": "history"},
            ],
            model={"name": "gpt-4o-mini", "parameters": {"temperature": 0.2}},
        )
    )
    chat = configmap(namespace, "assistant", "", "r1")
    chat["data"] = {
        objects.CALL_DATA_KEY: document,
        objects.METADATA_DATA_KEY: json.dumps(
            {"form": CALL_FORM, "variables": ["user"], "defaults": {"user": "you"}}
        ),
    }
    apply(kubeconfig, chat)
    app = sidecars("app")
    assert listing(app) == [".prompts", "assistant.json"]
    registry = PromptRegistry(str(app.dir), watch=False)
    call = registry.call("assistant", placeholders={"history": []}, user="Ada")
    assert call.openai() == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Help Ada."}],
        "temperature": 0.2,
    }
    assert registry.info("assistant").revision == "r1"
    apply(kubeconfig, configmap(namespace, "assistant", "Hello {user}", "r2"))
    post(app, signals.encode_signal([("assistant", "r2")]))
    wait_for(
        lambda: listing(app) == [".prompts", "assistant.txt"],
        timeout=10,
        message="the text file in place of the call document",
    )
    registry.refresh()
    assert registry.render("assistant") == "Hello you"
    assert registry.info("assistant").form is None
