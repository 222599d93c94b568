"""The checks of a Prompt manifest: the CRD's schema, the API server's rules, the
operator's template checks, in that order, each finding with its line."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any

import yaml

from prompt_contract import objects
from prompt_contract.keys import key_problem

from ..model import SpecError, parse_prompt
from ..notices import admission_warnings
from ..policies import ROLLOUT_WITH_VARIANTS, evaluate
from ..render import render
from .reading import Document

_DNS_SUBDOMAIN = re.compile(rf"^{objects.DNS_SUBDOMAIN}$")
MAX_TEMPLATE_BYTES = 1_000_000


@dataclass(frozen=True)
class Finding:
    source: str
    line: int
    prompt: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        where = f"{self.source}:{self.line}: Prompt {_printable(self.prompt)}"
        return f"{where}: {prefix}{self.message}"


def _printable(name: str) -> str:
    """A name as it can be shown in a terminal or a CI log: a NUL or a newline in a
    (refused) name is written as an escape, never sent as is."""
    return name if name.isprintable() else repr(name)[1:-1]


OBJECT_META_FIELDS = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)


@cache
def _validator() -> Any:
    import jsonschema

    crd = yaml.safe_load(resources.files("prompt_operator").joinpath("crd.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # A manifest may carry a status (kubectl drops it); its contents are not checked.
    schema["properties"]["status"] = {}
    # ObjectMeta is checked by the API server itself, field by field, unknown ones refused.
    schema["properties"]["metadata"] = {
        "type": "object",
        "properties": {field: {} for field in OBJECT_META_FIELDS},
        "additionalProperties": False,
    }
    return jsonschema.Draft7Validator(schema)


def _strict(schema: Any) -> Any:
    """The CRD schema as JSON Schema that, like the API server, refuses unknown fields
    (except where the CRD keeps them: ``x-kubernetes-preserve-unknown-fields``)."""
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    return out


def _path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _schema_findings(doc: Document, prompt: str) -> list[Finding]:
    findings = []
    for error in sorted(_validator().iter_errors(doc.data), key=lambda e: list(e.path)):
        where = list(error.path)
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown field")
        if error.validator == "maxLength" and isinstance(error.instance, str):
            message = f"longer than {error.validator_value} characters"
        if error.validator == "maxItems" and isinstance(error.instance, list):
            message = f"{len(error.instance)} entries; at most {error.validator_value} are allowed"
        findings.append(Finding(doc.source, doc.line(where), prompt, f"{_path(where)}: {message}"))
    return findings


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _mapping(value: object) -> dict[str, Any]:
    """``value`` if it is a mapping; the schema reports it when it is not."""
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# Label syntax as the API server checks it (a selector that tries a path or a
# look-alike fails here, offline, with the same verdict).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX = _DNS_SUBDOMAIN


def _label_problem(label: str, value: object) -> str | None:
    prefix, _, name = label.rpartition("/")
    if prefix and (len(prefix) > objects.MAX_OBJECT_NAME or not _LABEL_PREFIX.match(prefix)):
        return f"{label!r}: the prefix must be a lowercase DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"{label!r}: a label name is 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    if not isinstance(value, str):
        return f"{label!r}: the value must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (
            f"{label!r}: the value {value!r} must be empty or 1-63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def _rule_findings(doc: Document, prompt: str) -> list[Finding]:
    """What the API server checks besides the schema (CEL rules, list keys, names)."""
    findings: list[Finding] = []
    meta = _mapping(doc.data.get("metadata"))
    spec = _mapping(doc.data.get("spec"))

    def add(path: Sequence[str | int], message: str) -> None:
        findings.append(Finding(doc.source, doc.line(path), prompt, message))

    name = meta.get("name")
    if name is None or name == "":
        add(["metadata"], "metadata.name is required")
    elif not isinstance(name, str):
        add(["metadata", "name"], f"metadata.name must be a string (quote it: {str(name)!r})")
    elif len(name) > objects.MAX_OBJECT_NAME or not _DNS_SUBDOMAIN.match(name):
        add(["metadata", "name"], f"metadata.name {name!r} must be a lowercase DNS subdomain")
    labels = _mapping(meta.get("labels"))
    for label, value in labels.items():
        problem = _label_problem(str(label), value)
        if problem:
            add(["metadata", "labels", label], f"metadata.labels: {problem}")
    key = spec.get("key")
    if isinstance(key, str):
        problem = key_problem(key)
        if problem:
            add(["spec", "key"], f"spec.key {key!r}: {problem}")
    template = spec.get("template")
    if isinstance(template, str) and len(template.encode("utf-8")) > MAX_TEMPLATE_BYTES:
        add(
            ["spec", "template"],
            f"spec.template is larger than {MAX_TEMPLATE_BYTES:,} bytes in "
            "UTF-8; a ConfigMap holds at most 1 MiB. Split the prompt into several Prompts.",
        )
    if isinstance(doc.data.get("spec"), dict):
        for message in _text_rule_messages(spec):
            add(["spec"], message)
    if "rollout" in spec and ("variants" in spec or "schedule" in spec):
        add(["spec", "rollout"], ROLLOUT_WITH_VARIANTS)
    times = [e.get("at") for e in _items(spec.get("schedule")) if isinstance(e, dict)]
    for i, at in enumerate(times):
        if at in times[:i]:
            add(["spec", "schedule", i], "two schedule entries have the same time")
    names = [v.get("name") for v in _items(spec.get("variables")) if isinstance(v, dict)]
    for i, item in enumerate(names):
        if item in names[:i]:
            add(["spec", "variables", i], f"spec.variables: duplicate variable {item!r}")
    return findings


def _text_rule_messages(spec: Mapping[str, Any]) -> list[str]:
    """The CRD's rules on which of template, messages and variants a spec sets."""
    has = {name: name in spec for name in ("template", "messages", "variants")}
    top = has["template"] or has["messages"]
    found = []
    if not (top or has["variants"]):
        found.append(
            "set exactly one of spec.template (one text) or spec.variants (an A/B test), "
            "or spec.messages (chat messages) instead of spec.template"
        )
    if has["template"] and has["messages"]:
        found.append("set spec.template or spec.messages, not both")
    variants = _items(spec.get("variants"))
    if (
        top
        and has["variants"]
        and all(isinstance(v, dict) and ("template" in v or "messages" in v) for v in variants)
    ):
        found.append(
            "set exactly one of spec.template (one text) or spec.variants (an A/B test) "
            "when every variant has its own text"
        )
    return found


def check_document(doc: Document) -> list[Finding]:
    """What is wrong with one YAML document, as the API server and the operator
    would find it (nothing for another project's kinds)."""
    if not isinstance(doc.data, dict):
        return []
    api = str(doc.data.get("apiVersion", ""))
    if not api.startswith(objects.GROUP + "/"):
        return []  # another project's kind
    # The API server drops nulls before it checks and defaults; so do we.
    doc = dataclasses.replace(doc, data=_without_nulls(doc.data))
    data = doc.data
    if data.get("kind") != objects.KIND:
        name = str(_mapping(data.get("metadata")).get("name") or "<unnamed>")
        message = f"kind {data.get('kind')!r} is not served by {objects.GROUP}; the kind is Prompt"
        return [Finding(doc.source, doc.line(["kind"]), name, message)]
    raw_meta = data.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name") or "<unnamed>")
    prompt = f"{meta['namespace']}/{name}" if meta.get("namespace") else name
    if api != objects.API_VERSION:
        message = f"apiVersion {api} is not served; use {objects.API_VERSION}"
        return [Finding(doc.source, doc.line(["apiVersion"]), prompt, message)]
    findings = _schema_findings(doc, prompt) + _rule_findings(doc, prompt)
    return findings or _operator_findings(doc, prompt, meta)


def _operator_findings(doc: Document, prompt: str, meta: Mapping[str, Any]) -> list[Finding]:
    """What the operator would refuse or warn about in a Prompt the API server accepts."""
    body = {
        "metadata": {"namespace": meta.get("namespace") or "default", **meta},
        "spec": doc.data.get("spec"),
    }
    try:
        parsed = parse_prompt(body)
    except SpecError as exc:
        return [Finding(doc.source, doc.line(["spec"]), prompt, str(exc))]
    verdict = evaluate(parsed, render(parsed))
    if verdict.problem is not None:
        field = "key" if verdict.problem.reason == "InvalidKey" else "template"
        message = f"{verdict.problem.reason}: {verdict.problem.message}"
        return [Finding(doc.source, doc.line(["spec", field]), prompt, message)]
    past = [
        Finding(doc.source, doc.line(["spec", "schedule"]), prompt, message, warning=True)
        for message in admission_warnings(body, datetime.now(timezone.utc))
    ]
    return past + [
        Finding(
            doc.source,
            doc.line(["spec", "variables"]),
            prompt,
            f"{w.reason}: {w.message}",
            warning=True,
        )
        for w in verdict.warnings
    ]
