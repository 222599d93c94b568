"""Template rules shared by the operator (which checks) and apps (which render).

A template uses Python ``str.format`` syntax restricted to plain identifiers:
``{name}`` is a placeholder and ``{{`` / ``}}`` are literal braces. Attribute
and index access (``{x.y}``, ``{x[0]}``), conversions (``{x!r}``), format
specs (``{x:>10}``) and positional fields (``{}``, ``{0}``) are refused,
because a format string that comes from a cluster object must never reach
into an application's objects.

Rendering never calls ``str.format``: it concatenates the literal parts with
``str(value)`` of each variable, so a template can do nothing but substitute.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MissingVariableError",
    "ParsedTemplate",
    "RenderError",
    "TemplateError",
    "UnknownVariableError",
    "parse_template",
    "placeholders",
    "render_template",
]

# Reasons are stable, CamelCase and machine-readable; the operator puts them
# into the Prompt's Ready condition.
MALFORMED = "MalformedTemplate"
FORBIDDEN = "ForbiddenPlaceholder"


class TemplateError(ValueError):
    """A template breaks the placeholder rules; ``reason`` is CamelCase."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RenderError(ValueError):
    """``render`` could not fill in a prompt; the message names prompt and variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingVariableError(RenderError, KeyError):
    """``render`` was called without a value for a placeholder."""

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        RenderError.__init__(self, message)
        self.missing = missing

    def __str__(self) -> str:
        return self.message


class UnknownVariableError(RenderError, TypeError):
    """``render`` was given a variable the prompt does not declare."""

    def __init__(self, message: str, unknown: tuple[str, ...]) -> None:
        RenderError.__init__(self, message)
        self.unknown = unknown

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ParsedTemplate:
    """A template split into literal text and placeholder names, in order.

    ``parts`` alternates ``(literal, name_or_None)`` pairs, as
    ``string.Formatter.parse`` yields them, already unescaped.
    """

    parts: tuple[tuple[str, str | None], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Placeholder names in first-use order, without duplicates."""
        seen: dict[str, None] = {}
        for _, name in self.parts:
            if name is not None:
                seen.setdefault(name, None)
        return tuple(seen)


def _describe(field: str, conversion: str | None, spec: str) -> str:
    text = "{" + field
    if conversion:
        text += "!" + conversion
    if spec:
        text += ":" + spec
    return text + "}"


def parse_template(text: str) -> ParsedTemplate:
    """Split ``text`` into literals and placeholders, enforcing the rules.

    Raises ``TemplateError`` with reason ``MalformedTemplate`` for unbalanced
    braces and ``ForbiddenPlaceholder`` for anything but ``{identifier}``.
    """
    try:
        raw = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(
            MALFORMED,
            f"malformed braces: {exc}; write literal braces as '{{{{' and '}}}}', "
            "or set spec.format: raw to serve the text as is",
        ) from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in raw:
        if field is None:
            parts.append((literal, None))
            continue
        shown = _describe(field, conversion, spec or "")
        if field == "" or field.isdigit():
            raise TemplateError(
                FORBIDDEN,
                f"placeholder {shown} is positional; name it, for example {{user_name}}",
            )
        if any(ch in field for ch in ".["):
            raise TemplateError(
                FORBIDDEN,
                f"placeholder {shown} uses attribute or index access; "
                "only plain names such as {user_name} are allowed",
            )
        if not (field.isascii() and field.isidentifier()):
            # The same rule as a declared variable's name (spec.variables[].name).
            raise TemplateError(
                FORBIDDEN,
                f"placeholder {shown} is not a plain name: use ASCII letters, digits and "
                "underscores, not starting with a digit, such as {user_name}",
            )
        if conversion:
            raise TemplateError(
                FORBIDDEN,
                f"placeholder {shown} uses a conversion (!{conversion}); "
                "only plain names such as {" + field + "} are allowed",
            )
        if spec:
            raise TemplateError(
                FORBIDDEN,
                f"placeholder {shown} has a format spec; "
                "only plain names such as {" + field + "} are allowed",
            )
        parts.append((literal, field))
    return ParsedTemplate(tuple(parts))


def placeholders(text: str) -> tuple[str, ...]:
    """Names used by ``text`` in first-use order (raises ``TemplateError``)."""
    return parse_template(text).names


def render_template(
    text: str,
    variables: Mapping[str, Any],
    *,
    defaults: Mapping[str, str] | None = None,
    prompt: str = "prompt",
    declared: tuple[str, ...] | None = None,
) -> str:
    """Substitute ``variables`` (falling back to ``defaults``) into ``text``.

    Raises ``MissingVariableError`` naming the prompt, the missing variables
    and the declared ones, ``UnknownVariableError`` for a variable that is not
    declared (when ``declared`` is given), and ``TemplateError`` for a template
    that breaks the rules.
    """
    parsed = parse_template(text)
    if declared is not None:
        unknown = tuple(name for name in variables if name not in declared)
        if unknown:
            listed = ", ".join(declared) if declared else "none"
            raise UnknownVariableError(
                f"prompt {prompt!r}: unknown variable(s) {', '.join(unknown)} (declared: {listed})",
                unknown,
            )
    values: dict[str, Any] = dict(defaults or {})
    values.update(variables)
    missing = tuple(name for name in parsed.names if name not in values)
    if missing:
        known = declared if declared is not None else parsed.names
        listed = ", ".join(known) if known else "none"
        raise MissingVariableError(
            f"prompt {prompt!r}: missing value for variable(s) "
            f"{', '.join(missing)} (declared: {listed})",
            missing,
        )
    out: list[str] = []
    for literal, name in parsed.parts:
        out.append(literal)
        if name is not None:
            out.append(str(values[name]))
    return "".join(out)
