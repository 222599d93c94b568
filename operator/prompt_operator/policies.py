"""Checks on a Prompt before anything reaches an app.

Each check is a pure function returning ``None`` or a ``Problem`` (a stable
CamelCase reason and a message for a person); ``evaluate`` runs them in order
and the first failure becomes the Prompt's ``Ready=False`` condition. The
template rules are the client library's own, so a check here can never
disagree with the app's render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prompt_client.contract import key_problem
from prompt_client.templates import TemplateError, placeholders

from .model import Prompt
from .render import Rendered

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


def check_template(prompt: Prompt, rendered: Rendered) -> Problem | None:
    if prompt.format != "python":
        return None
    try:
        used = placeholders(prompt.template)
    except TemplateError as exc:
        return Problem(exc.reason, f"spec.template: {exc.message}")
    undeclared = [name for name in used if name not in prompt.declared]
    if not undeclared:
        return None
    names = ", ".join(f"{{{name}}}" for name in undeclared)
    noun = "variable" if len(undeclared) == 1 else "variables"
    verb = "is" if len(undeclared) == 1 else "are"
    return Problem(
        "UndeclaredVariable",
        f"{noun} {names} {verb} used in spec.template but not declared in spec.variables; "
        "declare it, or write literal braces as {{ and }}",
    )


def unused_variables(prompt: Prompt) -> Problem | None:
    if not prompt.variables:
        return None
    if prompt.format == "raw":
        return Problem(
            "UnusedVariable",
            "spec.variables are declared but spec.format is raw, so the text has no placeholders",
        )
    used = set(placeholders(prompt.template))
    unused = [name for name in prompt.declared if name not in used]
    if not unused:
        return None
    return Problem(
        "UnusedVariable",
        f"declared variable(s) {', '.join(unused)} are not used in spec.template "
        "(apps may still pass them; this is only a warning)",
    )


CHECKS: tuple[Callable[[Prompt, Rendered], Problem | None], ...] = (
    check_key,
    check_format,
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
