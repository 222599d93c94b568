"""The sidecar reads a signalled revision from the API server's watch cache first.

A cached answer is acted on only when it leads to a write (a revision's data
never changes); a 404 or anything else that would change nothing is read
again from etcd first, because the cache may lag behind a ConfigMap just
created. The audit log shows each GET, cached (``resourceVersion=0``) or not.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.api import Api
from prompt_cluster.testing import audit_line_count
from prompt_contract import objects, signals
from tests.reliability.report import Observed

from .helpers import SidecarFactory, post_signal, settle_audit

NEW_PROMPTS = 150  # each created and signalled at once: the cache's closest race


def revision_configmap(prompt: str, revision: str) -> dict[str, Any]:
    """Revision ``revision`` of Prompt ``prompt`` as the operator writes it (number 1)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(prompt, revision),
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: "1",
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: prompt,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: prompt,
            },
        },
        "immutable": True,
        "data": {objects.TEXT_DATA_KEY: f"text of {prompt}", objects.METADATA_DATA_KEY: "{}"},
    }


def sidecar_gets(audit_log: Path, since: int, user: str) -> list[tuple[str, bool, int]]:
    """The user's finished ConfigMap GETs after line ``since``: (name, cached, status)."""
    gets = []
    with open(audit_log, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number < since:
                continue
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                event.get("user", {}).get("username") == user
                and event.get("stage") == "ResponseComplete"
                and ref.get("resource") == "configmaps"
                and event.get("verb") == "get"
            ):
                cached = "resourceVersion=0" in event["requestURI"]
                gets.append((ref["name"], cached, event["responseStatus"]["code"]))
    return gets


def flood(api: Api, namespace: str, stop: threading.Event) -> None:
    """ConfigMaps the sidecar never reads, created back to back: they queue ahead of
    ours in the API server's watch cache, so it lags more often."""
    i = 0
    while not stop.is_set():
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"noise-{i}"}}
        api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        i += 1


@pytest.mark.reliability(
    case="S-cached read lag",
    did="a signal naming a revision that does not exist; then 150 revision ConfigMaps "
    "each signalled as soon as it is created, while another client floods the API server "
    "with creates; every sidecar GET read from the audit log",
)
def test_a_cached_404_is_read_again_from_etcd_and_never_acted_on(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    audit_log: Path,
    observed: Observed,
) -> None:
    app = sidecars("app")  # no Prompts yet: ready after an empty list
    api = Api(kubeconfig)
    user = f"system:serviceaccount:{namespace}:prompt-sidecar"
    since = audit_line_count(audit_log)

    def signal(prompt: str, revision: str) -> str | None:
        status, body = post_signal(app, signals.encode_signal([(prompt, revision)]))
        assert status == 200
        return signals.parse_signal_response(body, [prompt])[prompt]

    # A revision that does not exist: the cache's 404, then etcd's; nothing written.
    assert signal("ghost", "r1") is None
    stop = threading.Event()
    noise = threading.Thread(target=flood, args=(Api(kubeconfig), namespace, stop))
    noise.start()
    try:
        for i in range(NEW_PROMPTS):
            prompt = f"new-{i}"
            api.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                revision_configmap(prompt, "r1"),
            )
            # Trusting a cached 404 would answer None: a Prompt never served
            # changes nothing on a 404, and would wait for the resync.
            assert signal(prompt, "r1") == "r1", prompt
    finally:
        stop.set()
        noise.join()
    assert app.file("new-0") == b"text of new-0"
    settle_audit(audit_log)
    gets = sidecar_gets(audit_log, since, user)
    ghost = objects.configmap_name("ghost", "r1")
    assert gets[:2] == [(ghost, True, 404), (ghost, False, 404)]
    lagged = 0
    rest = iter(gets[2:])
    for name, cached, code in rest:
        assert cached, f"{name}: the first read is the cache's"
        if code == 404:  # the cache lagged: etcd's answer comes next, and it is the one used
            lagged += 1
            assert next(rest) == (name, False, 200)
        else:
            assert code == 200
    assert len(gets) == 2 + NEW_PROMPTS + lagged  # one read each, two where the cache lagged
    observed(
        f"a forged revision: a cached 404, then etcd's 404, nothing written; {NEW_PROMPTS} "
        f"revisions created and signalled at once, under a flood of other creates: "
        f"{lagged} cached GETs found nothing, each was read again from etcd and written"
    )
