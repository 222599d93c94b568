"""The sidecar reads a served Prompt's signalled revision from the watch cache first.

A cached answer is acted on only when it leads to a write (a revision's data
never changes); a 404 or anything else that would not write is read again
from etcd first, because the cache may lag behind a ConfigMap just created.
The audit log shows each GET, cached (``resourceVersion=0``) or not.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.api import Api
from prompt_cluster.testing import audit_events, audit_line_count
from prompt_contract import objects, signals
from tests.reliability.report import Observed

from .helpers import SidecarFactory, post_signal, settle_audit

EDITS = 150  # each revision created and signalled at once: the cache's closest race
FLOODERS = 3  # clients creating other ConfigMaps meanwhile, so the cache lags more often


def revision_configmap(prompt: str, number: int) -> dict[str, Any]:
    """Revision number ``number`` of Prompt ``prompt`` as the operator writes it."""
    revision = f"r{number}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(prompt, revision),
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: str(number),
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: prompt,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: prompt,
            },
        },
        "immutable": True,
        "data": {objects.TEXT_DATA_KEY: f"text {number}", objects.METADATA_DATA_KEY: "{}"},
    }


def sidecar_gets(audit_log: Path, since: int, user: str) -> list[tuple[str, bool, int]]:
    """The user's finished ConfigMap GETs after line ``since``: (name, cached, status)."""
    gets = []
    for event in audit_events(audit_log, since):
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


def flood(api: Api, namespace: str, stop: threading.Event, n: int) -> None:
    """ConfigMaps the sidecar never reads, created back to back: they queue ahead of
    ours in the API server's watch cache, so it lags more often."""
    i = 0
    while not stop.is_set():
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"noise-{n}-{i}"}}
        api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        i += 1


@pytest.mark.reliability(
    case="S-cached read lag",
    did="a signal naming a revision of a served Prompt that does not exist; then 150 "
    "revisions, each signalled as soon as it is created, while another client floods the "
    "API server with creates; every sidecar GET read from the audit log",
)
def test_a_cached_404_is_read_again_from_etcd_and_never_acted_on(
    kubeconfig: Path,
    namespace: str,
    sidecars: SidecarFactory,
    audit_log: Path,
    observed: Observed,
) -> None:
    api = Api(kubeconfig)
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    api.request("POST", configmaps, revision_configmap("p", 1))
    app = sidecars("app")  # ready once it serves p at r1
    assert app.file("p") == b"text 1"
    user = f"system:serviceaccount:{namespace}:prompt-sidecar"
    since = audit_line_count(audit_log)

    def signal(revision: str) -> str | None:
        status, body = post_signal(app, signals.encode_signal([("p", revision)]))
        assert status == 200
        return signals.parse_signal_response(body, ["p"])["p"]

    # A revision that does not exist: the cache's 404, then etcd's, then the list
    # that decides for a served Prompt; the file stays.
    assert signal("forged") == "r1"
    stop = threading.Event()
    noise = [
        threading.Thread(target=flood, args=(Api(kubeconfig), namespace, stop, n))
        for n in range(FLOODERS)
    ]
    for thread in noise:
        thread.start()
    try:
        for number in range(2, EDITS + 2):
            api.request("POST", configmaps, revision_configmap("p", number))
            assert signal(f"r{number}") == f"r{number}"
    finally:
        stop.set()
        for thread in noise:
            thread.join()
    assert app.file("p") == f"text {EDITS + 1}".encode()
    settle_audit(audit_log)
    gets = sidecar_gets(audit_log, since, user)
    forged = objects.configmap_name("p", "forged")
    assert gets[:2] == [(forged, True, 404), (forged, False, 404)]
    lagged = 0
    rest = iter(gets[2:])
    for name, cached, code in rest:
        assert cached, f"{name}: the first read is the cache's"
        if code == 404:  # the cache lagged: etcd's answer comes next, and it is the one used
            lagged += 1
            assert next(rest) == (name, False, 200)
        else:
            assert code == 200
    assert len(gets) == 2 + EDITS + lagged  # one read each, two where the cache lagged
    observed(
        f"a forged revision: a cached 404, then etcd's 404 and a list, the file kept; {EDITS} "
        f"revisions created and signalled at once, under a flood of other creates: "
        f"{lagged} cached GETs found nothing, each was read again from etcd and written"
    )
