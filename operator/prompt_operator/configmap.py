"""The ConfigMaps a Prompt renders into: one immutable ConfigMap per revision.

Its name carries the revision hash, its data never changes (``immutable``:
the API server refuses any change, and kubelets stop watching it), and its
``revision-number`` label says which revision is current: the highest. A
rollback to a text still in history only raises that label. The format is the
contract with the sidecar and is defined in ``prompt_contract``; this
module only fills it in.
"""

from __future__ import annotations

from typing import Any

from prompt_contract import objects

from .model import Prompt
from .render import Rendered


def configmap_labels(prompt: Prompt) -> dict[str, str]:
    """The Prompt's own labels (so pod selectors match the ConfigMap as they match
    the Prompt) plus the managed-by label that keeps foreign ConfigMaps out."""
    return {**prompt.labels, objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE}


def revision_labels(prompt: Prompt, number: int) -> dict[str, str]:
    return {
        **configmap_labels(prompt),
        objects.REVISION_NUMBER_LABEL: str(number),
        objects.PROMPT_UID_LABEL: prompt.uid,
    }


def configmap_data(rendered: Rendered) -> dict[str, str]:
    data = {
        objects.METADATA_DATA_KEY: rendered.metadata_json,
        objects.SOURCE_DATA_KEY: rendered.source_json,
    }
    if rendered.variants:
        data.update({objects.variant_data_key(name): text for name, _, text in rendered.variants})
    elif rendered.form:
        data[objects.CALL_DATA_KEY] = rendered.text
    else:
        data[objects.TEXT_DATA_KEY] = rendered.text
    return data


def build_configmap(prompt: Prompt, rendered: Rendered, number: int) -> dict[str, Any]:
    """The server-side apply body for revision ``number`` of ``prompt``.

    Its name is the revision hash, so an existing ConfigMap of that name already
    holds these bytes; only its labels can need a change (see ``label_patch``).
    """
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(prompt.ref.name, rendered.revision),
            "namespace": prompt.ref.namespace,
            "labels": revision_labels(prompt, number),
            "annotations": {
                objects.PROMPT_ANNOTATION: prompt.ref.name,
                objects.REVISION_ANNOTATION: rendered.revision,
                objects.KEY_ANNOTATION: rendered.key,
            },
            "ownerReferences": [
                {
                    "apiVersion": objects.API_VERSION,
                    "kind": "Prompt",
                    "name": prompt.ref.name,
                    "uid": prompt.uid,
                    "controller": True,
                }
            ],
        },
        "immutable": True,
        "data": configmap_data(rendered),
    }
    return body


def label_patch(current: dict[str, str], desired: dict[str, str]) -> dict[str, str | None]:
    """The merge patch of ``metadata.labels`` turning ``current`` into ``desired``
    (empty when equal): a rollback raising the number, a Prompt relabelled."""
    patch: dict[str, str | None] = {k: v for k, v in desired.items() if current.get(k) != v}
    patch.update({k: None for k in current if k not in desired})
    return patch
