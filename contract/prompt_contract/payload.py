"""What a revision ConfigMap puts on disk: one prompt file and its metadata.

The sidecar (in each pod) and `prompt-operator files` (on a laptop) both turn a
revision ConfigMap into one prompt file and its metadata with these functions,
so the two write the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .calls import CALL_FORM
from .files import PromptMeta, text_sha256
from .keys import key_problem
from .objects import (
    CALL_DATA_KEY,
    KEY_ANNOTATION,
    METADATA_DATA_KEY,
    PROMPT_ANNOTATION,
    REVISION_ANNOTATION,
    TEXT_DATA_KEY,
    variant_data_key,
)
from .variants import choose_variant

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class FileContent:
    """One prompt as a revision ConfigMap says a pod should have it on disk."""

    prompt: str  # the Prompt's name (without namespace)
    key: str
    revision: str
    text: bytes  # this pod's variant's text (or call document) when the revision has variants
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    format: str = "python"
    variant: str | None = None
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> weight, text
    form: str | None = None  # "call": ``text`` is a call document, written to <key>.json

    def meta(self, namespace: str, updated_at: str) -> PromptMeta:
        """The metadata file's content for this text (``updated_at``: RFC 3339, UTC)."""
        return PromptMeta(
            key=self.key,
            prompt=f"{namespace}/{self.prompt}",
            revision=self.revision,
            sha256=text_sha256(self.text),
            updated_at=updated_at,
            variables=self.variables,
            defaults=self.defaults,
            format=self.format,
            variant=self.variant,
            variants=self.variants,
            form=self.form,
        )


def configmap_metadata(configmap: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ConfigMap's ``metadata.json`` as a dict ({} when absent), None when unreadable."""
    try:
        extra = json.loads((configmap.get("data") or {}).get(METADATA_DATA_KEY) or "{}")
    except ValueError:
        return None
    return extra if isinstance(extra, dict) else None


def variant_texts(data: Mapping[str, Any], listed: Any) -> dict[str, dict[str, Any]] | str:
    """Every variant as name -> {"weight", "text"}, or why the ConfigMap's variants are unusable."""
    if not isinstance(listed, list):
        return "its variants are not a list"
    variants: dict[str, dict[str, Any]] = {}
    for entry in listed:
        name = entry.get("name") if isinstance(entry, dict) else None
        weight = entry.get("weight") if isinstance(entry, dict) else None
        text = data.get(variant_data_key(name)) if isinstance(name, str) else None
        if not isinstance(name, str) or not isinstance(weight, int) or not isinstance(text, str):
            return f"variant {name!r} lacks a weight or a text"
        variants[name] = {"weight": weight, "text": text}
    return variants


def _identity(annotations: Mapping[str, Any]) -> tuple[str, str, str] | str:
    """The (Prompt name, revision, key) a revision ConfigMap is annotated with, or why not."""
    found = [
        annotations.get(name) for name in (PROMPT_ANNOTATION, REVISION_ANNOTATION, KEY_ANNOTATION)
    ]
    prompt, revision, key = (v if isinstance(v, str) else "" for v in found)
    if not (prompt and revision and key):
        return "missing prompt, revision or key"
    problem = key_problem(key)
    if problem:
        return f"key {key!r} cannot name a file: {problem}"
    return prompt, revision, key


def _served_text(
    data: Mapping[str, Any], extra: Mapping[str, Any], pod: str, prompt: str
) -> tuple[str, str | None, dict[str, dict[str, Any]]] | str:
    """(text, chosen variant, every variant) this pod is served, or why none.

    In the call form the texts are call documents: under ``call.json``, or
    under each ``variant.<name>`` key with variants.
    """
    if not extra.get("variants"):
        data_key = CALL_DATA_KEY if extra.get("form") == CALL_FORM else TEXT_DATA_KEY
        text = data.get(data_key)
        return (text, None, {}) if isinstance(text, str) else f"missing the {data_key!r} data key"
    variants = variant_texts(data, extra["variants"])
    if isinstance(variants, str):
        return variants
    chosen = choose_variant(pod, prompt, ((n, v["weight"]) for n, v in variants.items()))
    if chosen is None:
        return "no variant has a positive weight"
    return variants[chosen]["text"], chosen, variants


def file_content(
    configmap: Mapping[str, Any], pod: str, extra: Mapping[str, Any]
) -> FileContent | str:
    """What revision ConfigMap ``configmap`` puts on disk in pod ``pod``, or why it cannot.

    ``extra`` is its ``configmap_metadata`` ({} when unreadable: the text is then
    served without it). With variants, ``pod`` (the pod's name; any stable name
    off the cluster) chooses the variant, as the operator counts it in status.
    """
    identity = _identity((configmap.get("metadata") or {}).get("annotations") or {})
    if isinstance(identity, str):
        return identity
    prompt, revision, key = identity
    served = _served_text(configmap.get("data") or {}, extra, pod, prompt)
    if isinstance(served, str):
        return served
    text, chosen, variants = served
    try:
        variables = tuple(str(v) for v in extra.get("variables") or ())
        defaults = {str(k): str(v) for k, v in (extra.get("defaults") or {}).items()}
    except (AttributeError, TypeError):  # garbled metadata: the text is served without it
        variables, defaults = (), {}
    return FileContent(
        prompt,
        key,
        revision,
        text.encode("utf-8"),
        variables=variables,
        defaults=defaults,
        format=str(extra.get("format") or "python"),
        variant=chosen,
        variants=variants,
        form=CALL_FORM if extra.get("form") == CALL_FORM else None,
    )
