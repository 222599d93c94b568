"""The ConfigMap a Prompt renders into: a pure function of the Prompt.

The format is the contract with the sidecar and is defined in
``prompt_sidecar.wire``; this module only fills it in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prompt_sidecar import wire

from .model import Prompt
from .render import Rendered

API_VERSION = "prompts.dev/v1alpha1"
DIGEST_ANNOTATION = "prompts.dev/digest"


def configmap_labels(prompt: Prompt) -> dict[str, str]:
    """The Prompt's own labels (so pod selectors match the ConfigMap as they match
    the Prompt) plus the managed-by label that keeps foreign ConfigMaps out."""
    return {**prompt.labels, wire.MANAGED_BY_LABEL: wire.MANAGED_BY_VALUE}


def build_configmap(prompt: Prompt, rendered: Rendered) -> dict[str, Any]:
    """The server-side apply body for ``prompt``'s ConfigMap.

    It carries a digest of itself, so the operator can tell from metadata alone
    (without the text) whether the ConfigMap in the cluster is up to date.
    """
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": wire.configmap_name(prompt.ref.name),
            "namespace": prompt.ref.namespace,
            "labels": configmap_labels(prompt),
            "annotations": {
                wire.PROMPT_ANNOTATION: prompt.ref.name,
                wire.REVISION_ANNOTATION: rendered.revision,
                wire.KEY_ANNOTATION: rendered.key,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Prompt",
                    "name": prompt.ref.name,
                    "uid": prompt.uid,
                    "controller": True,
                }
            ],
        },
        "data": {
            wire.TEXT_DATA_KEY: rendered.text,
            wire.METADATA_DATA_KEY: rendered.metadata_json,
        },
    }
    body["metadata"]["annotations"][DIGEST_ANNOTATION] = configmap_digest(body)
    return body


def configmap_digest(body: dict[str, Any]) -> str:
    """Hash of everything we set on the ConfigMap, except the digest itself."""
    meta = dict(body["metadata"])
    meta["annotations"] = {
        k: v for k, v in meta.get("annotations", {}).items() if k != DIGEST_ANNOTATION
    }
    canonical = json.dumps(
        {"metadata": meta, "data": body["data"]}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
