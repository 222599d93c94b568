"""The edit form: what it shows, what it posted, the spec it means, and its checks.

Pure: the checks are `prompt-operator validate`'s own, on the Prompt as it
would be written, so the form can never pass what the CLI refuses. The
manifest is the object as it would be committed to git (for a Prompt a GitOps
tool owns, where the change belongs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from prompt_contract import objects

from .. import validate
from .views import texts, variables

# -- the manifest to commit ---------------------------------------------------------------


def manifest_body(obj: Mapping[str, Any], spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The object as it would be committed: no server fields, no status."""
    meta = obj.get("metadata") or {}
    clean_meta: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("labels"):
        clean_meta["labels"] = dict(meta["labels"])
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        clean_meta["annotations"] = annotations
    return {
        "apiVersion": objects.API_VERSION,
        "kind": "Prompt",
        "metadata": clean_meta,
        "spec": dict(spec if spec is not None else obj.get("spec") or {}),
    }


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks (``|``), as people write them in git."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _text)


def manifest(obj: Mapping[str, Any], spec: Mapping[str, Any] | None = None) -> str:
    """The manifest to commit, as YAML."""
    return str(
        yaml.dump(
            manifest_body(obj, spec),
            Dumper=_ManifestDumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
        )
    )


def _shrunk(value: Any) -> Any:
    """``value`` with long strings cut: its YAML node only locates fields, and
    composing a megabyte of YAML in pure Python takes seconds."""
    if isinstance(value, dict):
        return {k: _shrunk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shrunk(v) for v in value]
    return value[:80] if isinstance(value, str) else value


# -- the edit form ------------------------------------------------------------------------


@dataclass
class Form:
    """What the edit form holds, as typed."""

    key: str = ""
    format: str = "python"
    template: str = ""
    variant_names: list[str] = field(default_factory=list)
    variant_weights: list[str] = field(default_factory=list)
    variant_templates: list[str] = field(default_factory=list)
    var_names: list[str] = field(default_factory=list)
    var_descriptions: list[str] = field(default_factory=list)
    var_defaults: list[str] = field(default_factory=list)
    resource_version: str = ""
    generation: str = ""  # the spec's generation when the form was opened
    call: str = ""  # YAML: the spec's messages and model (see parse_call)

    @property
    def chat(self) -> bool:
        """Messages take the template's place (the template box is not shown)."""
        return "messages" in parse_call(self.call)[0]


# The fields a chat Prompt's form edits as one YAML text: simpler to get right than
# a widget per message, parameter and tool, and checked like everything else.
CALL_KEYS = ("messages", "model")


def call_text(spec: Mapping[str, Any]) -> str:
    """The spec's messages and model as YAML; "" when it has neither."""
    call = {k: spec[k] for k in CALL_KEYS if k in spec}
    if not call:
        return ""
    return str(
        yaml.dump(call, Dumper=_ManifestDumper, sort_keys=False, allow_unicode=True, width=100)
    )


def parse_call(text: str) -> tuple[dict[str, Any], str | None]:
    """The messages and model of the form's YAML, or why it is not that."""
    if not text.strip():
        return {}, None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return {}, f"Messages and model: not valid YAML: {exc}"
    if not isinstance(value, dict):
        return {}, "Messages and model: expected a mapping with messages and/or model"
    unknown = sorted(str(k) for k in value if k not in CALL_KEYS)
    if unknown:
        return {}, f"Messages and model: only messages and model belong here, not {unknown}"
    return value, None


def form_from_spec(obj: Mapping[str, Any]) -> Form:
    spec = obj.get("spec") or {}
    variants = [t for t in texts(spec) if t.variant]
    declared = variables(spec)
    return Form(
        key=str(spec.get("key") or ""),
        format=str(spec.get("format") or "python"),
        template=str(spec.get("template") or ""),
        variant_names=[t.variant for t in variants],
        variant_weights=[str(t.weight) for t in variants],
        variant_templates=[t.template for t in variants],
        var_names=[v.name for v in declared],
        var_descriptions=[v.description for v in declared],
        var_defaults=["" if v.default is None else v.default for v in declared],
        resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        generation=str((obj.get("metadata") or {}).get("generation") or ""),
        call=call_text(spec),
    )


def precondition(obj: Mapping[str, Any], resource_version: str, generation: str) -> str:
    """The resourceVersion a write from a form opened at ``resource_version`` and
    ``generation`` must match, now that the Prompt is ``obj``.

    Any write bumps the resourceVersion, the operator's status updates too (a
    pod answering a signal is one), so a user who opened the form a moment
    earlier would be told someone else changed the Prompt when no one touched
    its spec. The generation counts spec changes only: while it is the same,
    the write is checked against the resourceVersion just read instead, which
    still refuses a spec written in between."""
    meta = obj.get("metadata") or {}
    if generation and generation == str(meta.get("generation") or ""):
        return str(meta.get("resourceVersion") or resource_version)
    return resource_version


def _normalize(text: str) -> str:
    # Browsers send textarea lines with CRLF; a prompt typed in a browser means LF.
    return text.replace("\r\n", "\n")


def form_from_fields(fields: Mapping[str, Sequence[str]]) -> Form:
    """The form as posted (``fields``: name -> every value of that name)."""

    def one(name: str) -> str:
        values = fields.get(name) or [""]
        return values[0]

    def many(name: str) -> list[str]:
        return list(fields.get(name) or [])

    return Form(
        key=one("key").strip(),
        format=one("format") or "python",
        template=_normalize(one("template")),
        variant_names=many("variant_name"),
        variant_weights=many("variant_weight"),
        variant_templates=[_normalize(t) for t in many("variant_template")],
        var_names=[n.strip() for n in many("var_name")],
        var_descriptions=many("var_description"),
        var_defaults=many("var_default"),
        resource_version=one("resource_version"),
        generation=one("generation"),
        call=_normalize(one("call")),
    )


def _weight(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # the schema check says "not of type integer" next to the field


def spec_from_form(current: Mapping[str, Any], form: Form) -> dict[str, Any]:
    """The spec to write: the current one with the form's fields in place. Fields the
    form does not show (schedule, history limit, includes, what a variant sets besides
    its text) are kept as they are; messages and model that do not parse are kept too
    (``check`` with the form then refuses the save)."""
    before = current.get("spec") or {}
    spec: dict[str, Any] = {
        k: v
        for k, v in before.items()
        if k not in ("template", "variants", "variables", "key", "format", *CALL_KEYS)
    }
    call, problem = parse_call(form.call)
    spec.update({k: before[k] for k in CALL_KEYS if k in before} if problem else call)
    name = str((current.get("metadata") or {}).get("name") or "")
    spec["key"] = form.key or name
    spec["format"] = form.format
    if form.variant_names:
        spec["variants"] = _variants(before, form, chat="messages" in spec)
    elif "messages" not in spec:
        spec["template"] = form.template
    declared = []
    for i, var in enumerate(form.var_names):
        if not var:
            continue  # an empty row is no variable
        item: dict[str, Any] = {"name": var}
        description = form.var_descriptions[i] if i < len(form.var_descriptions) else ""
        default = form.var_defaults[i] if i < len(form.var_defaults) else ""
        if description:
            item["description"] = description
        if default:
            item["default"] = default
        declared.append(item)
    if declared:
        spec["variables"] = declared
    return spec


def _variants(before: Mapping[str, Any], form: Form, chat: bool) -> list[dict[str, Any]]:
    """The form's variants, each keeping what it sets besides name, weight and text;
    a variant that had no text of its own (it overrides messages or the model) gets none."""
    stored = {str(v.get("name")): v for v in before.get("variants") or [] if isinstance(v, Mapping)}
    out = []
    for n, w, t in zip(
        form.variant_names, form.variant_weights, form.variant_templates, strict=False
    ):
        base = stored.get(n, {})
        item = {"name": n, "weight": _weight(w)}
        item.update({k: v for k, v in base.items() if k not in ("name", "weight", "template")})
        if "template" in base or (not base and not chat):
            item["template"] = t
        out.append(item)
    return out


FIELDS = ("key", "format", "template", "variables", "variants", "call")


@dataclass(frozen=True)
class Checks:
    """Problems by form field (``general`` for the rest) and warnings."""

    errors: dict[str, list[str]]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not any(self.errors.values())


_TEXT_REASONS = (
    "UndeclaredVariable",
    "MalformedTemplate",
    "ForbiddenPlaceholder",
    "PromptTooLarge",
)


def _field_of(message: str) -> str:
    if message.startswith(_TEXT_REASONS):
        return "template"  # a text's problem, also in a variant's text
    for name in ("spec.key", "InvalidKey"):
        if name in message:
            return "key"
    if "spec.format" in message:
        return "format"
    if "spec.variables" in message and "used in" not in message:
        return "variables"
    if any(f"spec.{name}" in message for name in (*CALL_KEYS, "includes")):
        return "call"
    if "spec.variants" in message or "InvalidVariants" in message:
        return "variants"
    if "template" in message or "Template" in message or "Placeholder" in message:
        return "template"
    return "general"


def check(obj: Mapping[str, Any], spec: Mapping[str, Any], form: Form | None = None) -> Checks:
    """`prompt-operator validate`'s checks on the Prompt with ``spec``, by field, and
    the ``form``'s own (messages and model that are not YAML)."""
    body = manifest_body(obj, spec)
    node = yaml.compose(yaml.safe_dump(_shrunk(body)))
    assert node is not None  # a dumped mapping always composes to a node
    doc = validate.Document("form", node, body)
    errors: dict[str, list[str]] = {name: [] for name in (*FIELDS, "general")}
    warnings: list[str] = []
    for finding in validate.check_document(doc):
        if finding.warning:
            warnings.append(finding.message)
        else:
            errors[_field_of(finding.message)].append(finding.message)
    problem = parse_call(form.call)[1] if form else None
    if problem:
        errors["call"].append(problem)
    return Checks(errors, warnings)
