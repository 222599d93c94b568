"""Checks on a Prompt before anything reaches an app.

Each check is a pure function returning ``None`` or a ``Problem`` (a stable
CamelCase reason and a message for a person); ``evaluate`` runs them in order
and the first failure becomes the Prompt's ``Ready=False`` condition. The
template rules are the client library's own, so a check here can never
disagree with the app's render.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prompt_contract.keys import key_problem
from prompt_contract.templates import TemplateError, placeholders

from .model import Prompt, Variant
from .render import Rendered
from .schedule import entry_variants

_VARIANT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# A ConfigMap holds at most 1 MiB; leave room for metadata, labels and annotations.
MAX_CONFIGMAP_DATA_BYTES = 1_000_000


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of all checks: a blocking problem, or warnings only."""

    problem: Problem | None
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_key(prompt: Prompt, rendered: Rendered) -> Problem | None:
    why = key_problem(prompt.key)
    if why is None:
        return None
    source = "spec.key" if prompt.key != prompt.ref.name else "the Prompt's name (the default key)"
    return Problem("InvalidKey", f"{source} {prompt.key!r} cannot name a file: {why}")


def check_format(prompt: Prompt, rendered: Rendered) -> Problem | None:
    if prompt.format in ("python", "raw"):
        return None
    return Problem(
        "InvalidFormat", f'spec.format is {prompt.format!r}; use "python" (default) or "raw"'
    )


def check_size(prompt: Prompt, rendered: Rendered) -> Problem | None:
    if rendered.size <= MAX_CONFIGMAP_DATA_BYTES:
        return None
    return Problem(
        "PromptTooLarge",
        f"the rendered prompt takes {rendered.size:,} bytes, more than the "
        f"{MAX_CONFIGMAP_DATA_BYTES:,} a ConfigMap can hold; split it into several Prompts",
    )


def templates(prompt: Prompt) -> Iterator[tuple[str, str]]:
    """Every text the Prompt may ever serve, with where it sits in the spec: the
    template or variants now, and those of every schedule entry (checked before
    their time comes, so a scheduled text can never fail when it activates)."""
    if prompt.variants:
        for i, variant in enumerate(prompt.variants):
            yield f"spec.variants[{i}] ({variant.name})", variant.template or ""
    else:
        yield "spec.template", prompt.template
    for i, entry in enumerate(prompt.schedule):
        where = f"spec.schedule[{i}] ({entry.at_text})"
        if entry.variants:
            for j, variant in enumerate(entry_variants(prompt, entry)):
                if variant.template is not None:
                    yield f"{where}.variants[{j}] ({variant.name})", variant.template
        else:
            yield f"{where}.template", entry.template or ""


def check_template(prompt: Prompt, rendered: Rendered) -> Problem | None:
    if prompt.format != "python":
        return None
    for where, text in templates(prompt):
        try:
            used = placeholders(text)
        except TemplateError as exc:
            return Problem(exc.reason, f"{where}: {exc.message}")
        undeclared = [name for name in used if name not in prompt.declared]
        if undeclared:
            names = ", ".join(f"{{{name}}}" for name in undeclared)
            noun = "variable" if len(undeclared) == 1 else "variables"
            verb = "is" if len(undeclared) == 1 else "are"
            return Problem(
                "UndeclaredVariable",
                f"{noun} {names} {verb} used in {where} but not declared in spec.variables; "
                "declare it, or write literal braces as {{ and }}",
            )
    return None


def variants_problem(variants: tuple[Variant, ...], where: str) -> str | None:
    """Why a list of variants cannot split traffic, or None."""
    seen: set[str] = set()
    for variant in variants:
        if not _VARIANT_NAME.fullmatch(variant.name) or len(variant.name) > 63:
            return (
                f"{where}: variant name {variant.name!r} must be lower-case letters, digits "
                "and '-', at most 63 characters"
            )
        if variant.name in seen:
            return f"{where}: two variants are named {variant.name!r}; names must be unique"
        seen.add(variant.name)
        if variant.weight < 0:
            return f"{where}: variant {variant.name!r} has weight {variant.weight}; use 0 or more"
    if variants and not any(v.weight > 0 for v in variants):
        return f"{where}: every weight is 0; give at least one variant a weight above 0"
    return None


def check_variants(prompt: Prompt, rendered: Rendered) -> Problem | None:
    if prompt.variants and prompt.template:
        return Problem("InvalidVariants", "set spec.template or spec.variants, not both")
    why = variants_problem(prompt.variants, "spec.variants")
    for i, entry in enumerate(prompt.schedule):
        if why is not None:
            break
        where = f"spec.schedule[{i}] ({entry.at_text}).variants"
        why = variants_problem(entry.variants, where)
        if why is None:
            missing = [v.name for v in entry_variants(prompt, entry) if v.template is None]
            if missing:
                why = (
                    f"{where}: variant {missing[0]!r} has no template and spec.variants has "
                    "no variant of that name to take it from; add its template"
                )
    return None if why is None else Problem("InvalidVariants", why)


def check_schedule(prompt: Prompt, rendered: Rendered) -> Problem | None:
    seen: dict[object, str] = {}
    for entry in prompt.schedule:
        if entry.at in seen:
            return Problem(
                "InvalidSchedule",
                f"spec.schedule has two entries for the same time ({seen[entry.at]} and "
                f"{entry.at_text}); merge them or move one",
            )
        if (entry.template is None) == (not entry.variants):
            return Problem(
                "InvalidSchedule",
                f"spec.schedule entry {entry.at_text} must set exactly one of template or variants",
            )
        seen[entry.at] = entry.at_text
    return None


def unused_variables(prompt: Prompt) -> Problem | None:
    if not prompt.variables:
        return None
    if prompt.format == "raw":
        return Problem(
            "UnusedVariable",
            "spec.variables are declared but spec.format is raw, so the text has no placeholders",
        )
    used: set[str] = set()
    for _, text in templates(prompt):
        used.update(placeholders(text))
    unused = [name for name in prompt.declared if name not in used]
    if not unused:
        return None
    return Problem(
        "UnusedVariable",
        f"declared variable(s) {', '.join(unused)} are not used in any template "
        "(apps may still pass them; this is only a warning)",
    )


CHECKS: tuple[Callable[[Prompt, Rendered], Problem | None], ...] = (
    check_key,
    check_format,
    check_variants,
    check_schedule,
    check_size,
    check_template,
)


def evaluate(prompt: Prompt, rendered: Rendered) -> Verdict:
    for check in CHECKS:
        problem = check(prompt, rendered)
        if problem is not None:
            return Verdict(problem)
    warning = unused_variables(prompt)
    return Verdict(None, (warning,) if warning else ())
