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

from prompt_contract.calls import PLACEHOLDER_ROLE
from prompt_contract.keys import key_problem
from prompt_contract.templates import TemplateError, placeholders

from . import call_policies
from .model import Message, Prompt, Variant
from .render import Rendered
from .rollouts.model import MAX_PAUSE_SECONDS, MIN_PAUSE_SECONDS
from .schedule import entry_variants, has_text, spec_variants

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


def _texts(
    where: str, template: str | None, messages: tuple[Message, ...] | None, suffix: str = ""
) -> Iterator[tuple[str, str]]:
    """The texts of one call: each message's content, or the template (``where`` plus
    ``suffix``: a variant's template is named by the variant alone, as always)."""
    if messages is not None:
        for i, message in enumerate(messages):
            if message.role != PLACEHOLDER_ROLE:
                yield f"{where}.messages[{i}].content", message.content
    elif template is not None:
        yield where + suffix, template


def templates(prompt: Prompt) -> Iterator[tuple[str, str]]:
    """Every text the Prompt may ever serve (a template or each message's content),
    with where it sits in the spec: the text or variants now, and those of every
    schedule entry (checked before their time comes, so a scheduled text can never
    fail when it activates)."""
    if prompt.variants:
        for i, variant in enumerate(spec_variants(prompt)):
            where = f"spec.variants[{i}] ({variant.name})"
            yield from _texts(where, variant.template or "", variant.messages)
    else:
        yield from _texts("spec", prompt.template, prompt.messages, ".template")
    for i, entry in enumerate(prompt.schedule):
        where = f"spec.schedule[{i}] ({entry.at_text})"
        if entry.variants:
            for j, variant in enumerate(entry_variants(prompt, entry)):
                yield from _texts(
                    f"{where}.variants[{j}] ({variant.name})", variant.template, variant.messages
                )
        elif has_text(entry):
            yield from _texts(where, entry.template, entry.messages, ".template")


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
    top_text = bool(prompt.template) or prompt.messages is not None
    if prompt.variants and top_text and all(has_text(v) for v in prompt.variants):
        return Problem("InvalidVariants", "set spec.template or spec.variants, not both")
    textless = [v.name for v in prompt.variants if not has_text(v)]
    if textless and not top_text:
        return Problem(
            "InvalidVariants",
            f"spec.variants: variant {textless[0]!r} has no template or messages, and the spec "
            "has none at its top level to take them from",
        )
    why = variants_problem(prompt.variants, "spec.variants")
    for i, entry in enumerate(prompt.schedule):
        if why is not None:
            break
        where = f"spec.schedule[{i}] ({entry.at_text}).variants"
        why = variants_problem(entry.variants, where)
        if why is None:
            missing = [v.name for v in entry_variants(prompt, entry) if not has_text(v)]
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
        if has_text(entry) and entry.variants:
            return Problem(
                "InvalidSchedule",
                f"spec.schedule entry {entry.at_text} must not set both a text (template or "
                "messages) and variants",
            )
        if not (has_text(entry) or entry.variants or entry.model is not None):
            return Problem(
                "InvalidSchedule",
                f"spec.schedule entry {entry.at_text} must set template, messages, model "
                "or variants",
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


def check_messages(prompt: Prompt, rendered: Rendered) -> Problem | None:
    for where, messages, _, has_template in call_policies.calls(prompt):
        if messages is None:
            continue
        if has_template:
            return Problem("InvalidMessages", f"{where}: set template or messages, not both")
        why = call_policies.messages_problem(messages, f"{where}.messages", prompt.declared)
        if why:
            return Problem("InvalidMessages", why)
    return None


def check_model(prompt: Prompt, rendered: Rendered) -> Problem | None:
    for where, _, model, _ in call_policies.calls(prompt):
        if model is None:
            continue
        why = call_policies.parameters_problem(model.parameters, f"{where}.model.parameters")
        if why:
            return Problem("InvalidModel", why)
        why = call_policies.tools_problem(model, f"{where}.model")
        if why:
            return Problem("InvalidTool", why)
        why = call_policies.response_format_problem(model, f"{where}.model")
        if why:
            return Problem("InvalidResponseFormat", why)
    return None


ROLLOUT_WITH_VARIANTS = (
    "spec.rollout cannot be combined with spec.variants or spec.schedule: a rollout serves "
    "the stable and the candidate as two variants; drop spec.rollout, or the variants and "
    "the schedule"
)


def check_rollout(prompt: Prompt, rendered: Rendered) -> Problem | None:
    """spec.rollout alone (no variants, no schedule), pauses of 1 s to 24 h, and a
    Prometheus analysis that says what to measure."""
    rollout = prompt.rollout
    if rollout is None:
        return None
    if prompt.variants or prompt.schedule:
        return Problem("InvalidRollout", ROLLOUT_WITH_VARIANTS)
    for i, step in enumerate(rollout.steps):
        where = f"spec.rollout.steps[{i}]"
        seconds = step.pause_seconds
        if seconds is not None and not MIN_PAUSE_SECONDS <= seconds <= MAX_PAUSE_SECONDS:
            return Problem(
                "InvalidRollout",
                f"{where}.pause.duration is {step.pause_text!r}: a pause lasts 1s to 24h; "
                "for longer, pause without a duration ({}) and promote by hand",
            )
        analysis = step.prometheus
        if analysis is not None and not analysis.query and not analysis.good_outcomes:
            return Problem(
                "InvalidRollout",
                f"{where}.analysis.prometheus needs goodOutcomes (the outcome labels that "
                "count as good) or a query",
            )
    return None


CHECKS: tuple[Callable[[Prompt, Rendered], Problem | None], ...] = (
    check_key,
    check_format,
    check_variants,
    check_schedule,
    check_rollout,
    check_messages,
    check_model,
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
