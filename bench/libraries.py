"""How the Kubernetes client libraries would hold the operator's caches.

Not part of `make bench` and not a product dependency: run it in a scratch venv
that has the candidates installed, e.g.

    python3 -m venv /tmp/libs && /tmp/libs/bin/pip install kubernetes \
        kubernetes-asyncio lightkube kr8s
    /tmp/libs/bin/python bench/libraries.py

It builds the LIST answers the operator's watches get at 10,000 Prompts (one
revision ConfigMap each, full and metadata-only) and measures, with
tracemalloc, what each library keeps after turning them into its objects, the
way its informer/cache would. The capability rows (selected and metadata-only
watches, server-side apply, typed errors) were read from each library's source
at the installed version and are printed as they were found.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import inspect
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

N = 10_000
TEXT = "You are a helpful assistant for {user}. " * 25  # ~1 KiB of prompt text


def configmap(i: int) -> dict[str, Any]:
    name = f"p{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"prompt-{name}-0123456789ab",
            "namespace": "bench",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "app.kubernetes.io/managed-by": "prompt-operator",
                "prompts.dev/prompt-uid": f"11111111-0000-0000-0000-{i:012d}",
                "prompts.dev/revision-number": "1",
                "team": "search",
            },
            "annotations": {
                "prompts.dev/prompt": name,
                "prompts.dev/revision": "0123456789ab",
                "prompts.dev/key": name,
            },
            "ownerReferences": [
                {
                    "apiVersion": "prompts.dev/v1alpha1",
                    "kind": "Prompt",
                    "name": name,
                    "uid": f"11111111-0000-0000-0000-{i:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"prompt": TEXT},
    }


def metadata_only(cm: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        **{"metadata": cm["metadata"]},
    }


def kept(build: Callable[[bytes], Any], raw: bytes) -> float:
    """MiB still allocated after ``build`` turned ``raw`` into its cache."""
    build(b'{"items": []}')  # imports and one-time set-up are not the cache
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = build(raw)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del cache
    return (after - before) / 2**20


def as_dicts(raw: bytes) -> Any:
    return json.loads(raw)["items"]


def ours_entries(raw: bytes) -> Any:
    # What prompt_operator keeps per ConfigMap: name, Prompt, revision, number, labels.
    items = json.loads(raw)["items"]
    return {
        (m["namespace"], m["name"]): (
            m["annotations"]["prompts.dev/prompt"],
            m["annotations"]["prompts.dev/revision"],
            1,
            dict(m["labels"]),
        )
        for m in (i["metadata"] for i in items)
    }


def _deserialize(client: Any, resp: Any) -> Any:
    if "content_type" in inspect.signature(client.deserialize).parameters:
        # kubernetes 3x takes the text and its content type
        return client.deserialize(resp.data, "V1ConfigMapList", "application/json").items
    return client.deserialize(resp, "V1ConfigMapList").items


def official(raw: bytes) -> Any:
    import kubernetes

    class Resp:
        data = raw

    return _deserialize(kubernetes.client.ApiClient(), Resp())


def asyncio_official(raw: bytes) -> Any:
    import kubernetes_asyncio

    class Resp:
        data = raw

    async def client() -> Any:  # its constructor wants a running loop
        return kubernetes_asyncio.client.ApiClient()

    return _deserialize(asyncio.run(client()), Resp())


def lightkube_models(raw: bytes) -> Any:
    from lightkube.resources.core_v1 import ConfigMap

    return [ConfigMap.from_dict(i) for i in json.loads(raw)["items"]]


def kr8s_objects(raw: bytes) -> Any:
    from kr8s.asyncio.objects import ConfigMap

    return [ConfigMap(i) for i in json.loads(raw)["items"]]


# Read from each library's source (version printed beside it).
CAPABILITIES = {
    "kubernetes": {
        "label-selected watch": "yes (label_selector=)",
        "metadata-only list/watch": "only through the dynamic client with a hand-set Accept header",
        "server-side apply": "yes (patch with _content_type=application/apply-patch+yaml)",
        "async": "no (threads; kopf is asyncio)",
        "typed errors": "no: one ApiException with .status",
    },
    "kubernetes_asyncio": {
        "label-selected watch": "yes",
        "metadata-only list/watch": "same as kubernetes (dynamic client, hand-set header)",
        "server-side apply": "yes (same as kubernetes)",
        "async": "yes (aiohttp)",
        "typed errors": "no: one ApiException with .status",
    },
    "lightkube": {
        "label-selected watch": "yes (labels=)",
        "metadata-only list/watch": "no",
        "server-side apply": "yes (client.apply(field_manager=, force=))",
        "async": "yes (httpx)",
        "typed errors": "one ApiError with .status",
    },
    "kr8s": {
        "label-selected watch": "yes (label_selector=)",
        "metadata-only list/watch": "no",
        "server-side apply": "no (merge and JSON patch only)",
        "async": "yes (httpx)",
        "typed errors": "NotFoundError, ServerError",
    },
}


def main() -> None:
    full = json.dumps({"kind": "ConfigMapList", "items": [configmap(i) for i in range(N)]}).encode()
    meta = json.dumps(
        {
            "kind": "PartialObjectMetadataList",
            "items": [metadata_only(configmap(i)) for i in range(N)],
        }
    ).encode()
    print(
        f"{N} revision ConfigMaps: LIST answer {len(full) / 2**20:.1f} MiB full, "
        f"{len(meta) / 2**20:.1f} MiB metadata-only"
    )
    rows = [
        ("ours: metadata-only list, Entry per ConfigMap", ours_entries, meta),
        ("plain dicts, metadata-only list", as_dicts, meta),
        ("plain dicts, full list", as_dicts, full),
        ("kubernetes: V1ConfigMap models, full list", official, full),
        ("kubernetes_asyncio: V1ConfigMap models, full list", asyncio_official, full),
        ("lightkube: ConfigMap dataclasses, full list", lightkube_models, full),
        ("kr8s: ConfigMap objects, full list", kr8s_objects, full),
    ]
    print(f"{'cache built from the LIST':55} {'MiB kept':>9}")
    for label, build, raw in rows:
        try:
            print(f"{label:55} {kept(build, raw):9.1f}")
        except ImportError as exc:
            print(f"{label:55} {'n/a':>9}  ({exc.name} not installed)")
    print()
    for lib, caps in CAPABILITIES.items():
        try:
            version = importlib.metadata.version(lib.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"{lib} {version}")
        for what, answer in caps.items():
            print(f"  {what:26} {answer}")


if __name__ == "__main__":
    main()
