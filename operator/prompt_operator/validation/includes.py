"""spec.includes, offline: resolved among the manifests given, so `validate` finds
cycles, missing and cross-namespace includes and over-size expansions; a Prompt
whose includes resolve is then checked as the operator checks it, expanded."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prompt_contract import objects

from ..includes import Expansion, all_texts, expand
from ..model import Prompt, SpecError, parse_prompt
from ..policies import Problem
from .checks import Finding
from .reading import Document

Index = Mapping[tuple[str, str], Prompt]  # (namespace, name) -> the Prompt of a manifest


def _prompt(doc: Document) -> Prompt | None:
    data = doc.data
    if not isinstance(data, Mapping) or data.get("kind") != objects.KIND:
        return None
    if not str(data.get("apiVersion", "")).startswith(objects.GROUP + "/"):
        return None
    meta = data.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    body = {"metadata": {**meta, "namespace": meta.get("namespace") or "default"}}
    try:
        return parse_prompt({**body, "spec": data.get("spec")})
    except SpecError:
        return None  # the document's own checks say why


def index(docs: Iterable[Document]) -> dict[tuple[str, str], Prompt]:
    found = {}
    for doc in docs:
        prompt = _prompt(doc)
        if prompt is not None:
            found[(prompt.ref.namespace, prompt.ref.name)] = prompt
    return found


class _Manifests(Mapping[str, "Prompt | None"]):
    """The Prompts of one namespace among the manifests, as ``expand`` reads them."""

    def __init__(self, prompts: Index, namespace: str) -> None:
        self._prompts, self._namespace = prompts, namespace

    def __getitem__(self, name: str) -> Prompt | None:
        return self._prompts.get((self._namespace, name))

    def __iter__(self) -> Any:
        return (n for ns, n in self._prompts if ns == self._namespace)

    def __len__(self) -> int:
        return sum(1 for ns, _ in self._prompts if ns == self._namespace)


def _expand_texts(spec: Any, text: Callable[[str], str]) -> Any:
    """The raw spec with ``text`` applied to every template and message content."""
    if isinstance(spec, list):
        return [_expand_texts(item, text) for item in spec]
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    for field in ("template", "content"):
        if isinstance(out.get(field), str):
            out[field] = text(out[field])
    for field in ("messages", "variants", "schedule"):
        if field in out:
            out[field] = _expand_texts(out[field], text)
    return out


def resolve(doc: Document, prompts: Index) -> tuple[Document, list[Finding]]:
    """``doc`` with its includes expanded (and removed) for the usual checks, or the
    findings that stop them. A document without includes is returned as is."""
    prompt = _prompt(doc)
    if prompt is None or not prompt.includes:
        return doc, []
    result = expand(prompt, _Manifests(prompts, prompt.ref.namespace))
    line = doc.line(["spec", "includes"])
    if isinstance(result, Problem):
        message = result.message.replace(
            "does not exist",
            "is not among the manifests given (the operator reads it "
            "from the cluster; pass its manifest too to check it)",
        )
        return doc, [Finding(doc.source, line, str(prompt.ref), f"{result.reason}: {message}")]
    warnings = [
        Finding(doc.source, line, str(prompt.ref), f"{w.reason}: {w.message}", warning=True)
        for w in result.warnings
    ]
    return _expanded_document(doc, prompt, result), warnings


def _expanded_document(doc: Document, prompt: Prompt, expansion: Expansion) -> Document:
    # A text expands the same wherever it sits, so the raw spec's texts map one to one.
    expanded = dict(zip(all_texts(prompt), all_texts(expansion.prompt), strict=True))
    spec = _expand_texts(copy.deepcopy(doc.data.get("spec")), lambda t: expanded.get(t, t))
    spec.pop("includes", None)
    return dataclasses.replace(doc, data={**doc.data, "spec": spec})
