"""Test support for the sidecar: ConfigMaps in the operator's format, a fake API
server that counts reads, and the HTTP server running on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prompt_contract import objects
from prompt_contract.selector import parse_selector
from prompt_sidecar.kubeapi import ApiError, NotFound
from prompt_sidecar.server import SidecarServer
from prompt_sidecar.sync import Syncer


def configmap(
    name: str,
    text: str,
    revision: str = "r1",
    key: str | None = None,
    number: int | None = None,
    **labels: str,
) -> dict[str, Any]:
    """Revision ``revision`` of Prompt ``name``; revision "rN" is number N+1 unless given."""
    if number is None:
        number = int(revision[1:]) + 1 if revision[1:].isdigit() else 1
    return {
        "metadata": {
            "name": objects.configmap_name(name, revision),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: str(number),
                **labels,
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: name,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: key or name,
            },
        },
        "data": {objects.TEXT_DATA_KEY: text, objects.METADATA_DATA_KEY: "{}"},
    }


class FakeApi:
    """ConfigMaps by name; counts reads; can fail or hold reads at a gate."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.gets: list[str] = []
        self.cached_gets = 0
        # What a watch cache that lags answers (None: it is up to date).
        self.cache: dict[str, dict[str, Any]] | None = None
        self.lists = 0
        self.down = False
        self.gate = threading.Event()
        self.gate.set()

    def put(self, cm: dict[str, Any]) -> None:
        self.objects[cm["metadata"]["name"]] = cm

    def get_configmap(self, namespace: str, name: str, *, cached: bool = False) -> dict[str, Any]:
        self.gate.wait(5)
        if self.down:
            raise ApiError("API server unreachable: connection refused")
        self.gets.append(name)
        self.cached_gets += cached
        source = self.cache if cached and self.cache is not None else self.objects
        if name not in source:
            raise NotFound(name, 404)
        return source[name]

    def list_configmaps(
        self, namespace: str, label_selector: str, page_size: int = 50
    ) -> Iterator[list[dict[str, Any]]]:
        self.gate.wait(5)
        if self.down:
            raise ApiError("API server unreachable: connection refused")
        self.lists += 1
        selector = parse_selector(label_selector)
        items = [c for c in self.objects.values() if selector.matches(c["metadata"]["labels"])]
        for start in range(0, len(items), page_size):
            yield items[start : start + page_size]


@contextmanager
def serving(syncer: Syncer, pod: str) -> Iterator[SidecarServer]:
    """The sidecar's HTTP server for ``syncer`` on a free loopback port."""
    server = SidecarServer(("127.0.0.1", 0), syncer, pod)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
