"""Includes: ``{safety}`` in a Prompt's texts is the text of another Prompt.

``spec.includes: [{name: safety, prompt: safety-preamble}]`` names a Prompt of
the same namespace; ``expand`` replaces every ``{safety}`` in the includer's
template, message contents, variants and schedule entries by that Prompt's
text, when a revision is built, so the revision hash covers the snippet as
resolved and render, checks and history work on the expanded Prompt unchanged.

A snippet's text is inserted as template text: its own placeholders become
the includer's (checked as usual after expansion). A raw snippet is inserted
literally (its braces escaped). Snippets may include snippets. Pure: the
caller fetches the snippets and passes them in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prompt_contract.templates import TemplateError, parse_template

from .model import Include, Message, Prompt, Variant
from .policies import MAX_CONFIGMAP_DATA_BYTES, Problem

MAX_DEPTH = 8  # includes of includes, from the includer down
MAX_SNIPPETS = 64  # Prompts one includer may reach, directly or through others


@dataclass(frozen=True)
class Resolved:
    """One of the includer's own includes, as resolved for a revision."""

    name: str
    prompt: str
    digest: str  # of the snippet's expanded text: it changes when what is inserted does
    reaches: tuple[str, ...]  # every Prompt inserted through it (``prompt`` first)


@dataclass(frozen=True)
class Expansion:
    prompt: Prompt  # texts expanded; ``includes`` kept (they are the spec as written)
    resolved: tuple[Resolved, ...]
    warnings: tuple[Problem, ...] = ()


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def include_problem(prompt: Prompt, index: int, include: Include, where: str) -> Problem | None:
    """Why ``prompt``'s ``spec.includes[index]`` (``where``) cannot be resolved on its
    own terms."""
    if "/" in include.prompt or not include.prompt:
        return Problem(
            "InvalidInclude",
            f"{where} names {include.prompt!r}: a Prompt includes only Prompts of its own "
            "namespace; give the name alone",
        )
    if include.name in prompt.declared:
        return Problem(
            "InvalidInclude",
            f"{where}: {{{include.name}}} is also declared in spec.variables; rename one",
        )
    if any(other.name == include.name for other in prompt.includes[:index]):
        return Problem("InvalidInclude", f"{where}: two includes are named {include.name!r}")
    return None


def _snippet_problem(snippet: Prompt, where: str) -> Problem | None:
    if snippet.messages is not None or snippet.variants or snippet.schedule:
        return Problem(
            "InvalidInclude",
            f"{where}: Prompt {snippet.ref} has messages, variants or a schedule; "
            "an included Prompt must be one plain spec.template",
        )
    if snippet.includes and snippet.format != "python":
        return Problem(
            "InvalidInclude",
            f"{where}: Prompt {snippet.ref} has spec.includes but spec.format raw; "
            "includes need format python",
        )
    return None


class _Expander:
    """Expands texts against one set of snippets, within one size budget."""

    def __init__(self, snippets: Mapping[str, Prompt | None], limit: int) -> None:
        self._snippets = snippets
        self._left = limit  # characters the includer's texts may still take
        self._texts: dict[str, tuple[str, tuple[str, ...]]] = {}  # expanded snippets

    def text(self, owner: Prompt, template: str, chain: tuple[str, ...]) -> str:
        """``template`` of ``owner`` with its includes replaced; ``chain`` is the path
        of Prompt names from the includer to ``owner``."""
        by_name = {include.name: include for include in owner.includes}
        if not by_name or owner.format != "python":
            return template
        try:
            parts = parse_template(template).parts
        except TemplateError:
            return template  # the template checks name it
        out: list[str] = []
        for literal, field in parts:
            out.append(self._take(escape(literal), None))
            if field is None:
                continue
            include = by_name.get(field)
            if include is None:
                out.append(self._take("{" + field + "}", None))
            else:
                out.append(self._take(self.snippet(owner, include, chain)[0], include))
        return "".join(out)

    def _take(self, piece: str, include: Include | None) -> str:
        self._left -= len(piece.encode("utf-8", "surrogatepass"))  # the limit is in bytes
        if self._left < 0:
            culprit = f"include {include.name} -> {include.prompt}" if include else "its text"
            raise _Refused(
                Problem(
                    "IncludeTooLarge",
                    f"expanding the includes passes the limit of {MAX_CONFIGMAP_DATA_BYTES:,} "
                    f"bytes at {culprit}; include less, or split the Prompt",
                )
            )
        return piece

    def snippet(
        self, owner: Prompt, include: Include, chain: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...]]:
        """The expanded text ``include`` inserts and every Prompt name it reaches."""
        index = owner.includes.index(include)
        where = f"spec.includes[{index}] ({include.name})"
        if len(chain) > 1:  # in an included Prompt: say which
            where = f"Prompt {owner.ref}: {where}"
        problem = include_problem(owner, index, include, where)
        if problem is None and include.prompt in chain:
            cycle = " -> ".join((*chain[chain.index(include.prompt) :], include.prompt))
            problem = Problem("IncludeCycle", f"{where}: includes form a cycle: {cycle}")
        if problem is None and len(chain) >= MAX_DEPTH:
            problem = Problem(
                "InvalidInclude",
                f"{where}: includes nest deeper than {MAX_DEPTH} ({' -> '.join(chain)} -> ...)",
            )
        if problem is not None:
            raise _Refused(problem)
        if include.prompt in self._texts:
            return self._texts[include.prompt]
        snippet = self._snippets.get(include.prompt)
        if snippet is None:
            raise _Refused(
                Problem(
                    "IncludeMissing",
                    f"{where}: Prompt {owner.ref.namespace}/{include.prompt} does not exist",
                )
            )
        problem = _snippet_problem(snippet, where)
        if problem is not None:
            raise _Refused(problem)
        inner = (*chain, include.prompt)
        text = self._inner(snippet, inner)
        reaches = [include.prompt]
        for nested in snippet.includes:
            reaches += [n for n in self.snippet(snippet, nested, inner)[1] if n not in reaches]
        self._texts[include.prompt] = (text, tuple(reaches))
        return self._texts[include.prompt]

    def _inner(self, snippet: Prompt, chain: tuple[str, ...]) -> str:
        if snippet.format != "python":
            return escape(snippet.template)
        # A snippet's expansion is counted again wherever it is inserted; its own
        # budget is the includer's, so a snippet that alone is too large stops here.
        saved = self._left
        text = self.text(snippet, snippet.template, chain)
        self._left = saved
        return text


def _messages(
    messages: tuple[Message, ...] | None, text: Callable[[str], str]
) -> tuple[Message, ...] | None:
    if messages is None:
        return None
    return tuple(dataclasses.replace(m, content=text(m.content)) for m in messages)


def _variant(variant: Variant, text: Callable[[str], str]) -> Variant:
    return dataclasses.replace(
        variant,
        template=None if variant.template is None else text(variant.template),
        messages=_messages(variant.messages, text),
    )


def expanded_prompt(prompt: Prompt, text: Callable[[str], str]) -> Prompt:
    """``prompt`` with ``text`` applied to every text it may serve."""
    schedule = tuple(
        dataclasses.replace(
            entry,
            template=None if entry.template is None else text(entry.template),
            variants=tuple(_variant(v, text) for v in entry.variants),
            messages=_messages(entry.messages, text),
        )
        for entry in prompt.schedule
    )
    return dataclasses.replace(
        prompt,
        template=text(prompt.template),
        messages=_messages(prompt.messages, text),
        variants=tuple(_variant(v, text) for v in prompt.variants),
        schedule=schedule,
    )


def all_texts(prompt: Prompt) -> list[str]:
    """Every text ``expanded_prompt`` expands, in its order."""
    seen: list[str] = []

    def keep(text: str) -> str:
        seen.append(text)
        return text

    expanded_prompt(prompt, keep)
    return seen


def _unused(prompt: Prompt) -> tuple[Problem, ...]:
    used: set[str] = set()
    for text in all_texts(prompt):
        try:
            used.update(name for _, name in parse_template(text).parts if name)
        except TemplateError:
            return ()
    unused = [i.name for i in prompt.includes if i.name not in used]
    if not unused:
        return ()
    return (
        Problem(
            "UnusedInclude",
            f"spec.includes {', '.join(unused)} are not used in any text "
            "(only a warning: their text appears nowhere, so their edits change nothing here)",
        ),
    )


def expand(
    prompt: Prompt,
    snippets: Mapping[str, Prompt | None],
    limit: int = MAX_CONFIGMAP_DATA_BYTES,
) -> Expansion | Problem:
    """``prompt`` with every include resolved from ``snippets`` (Prompt name -> Prompt,
    None or absent: it does not exist), or the Problem that stops it."""
    if not prompt.includes:
        return Expansion(prompt, ())
    if prompt.format != "python":
        return Problem(
            "InvalidInclude",
            "spec.includes need placeholders, but spec.format is raw; "
            "use format python (write literal braces as {{ and }})",
        )
    expander = _Expander(snippets, limit)
    chain = (prompt.ref.name,)
    try:
        resolved = []
        for include in prompt.includes:
            text, reaches = expander.snippet(prompt, include, chain)
            resolved.append(Resolved(include.name, include.prompt, _digest(text), reaches))
        expanded = expanded_prompt(prompt, lambda t: expander.text(prompt, t, chain))
    except _Refused as refused:
        return refused.problem
    return Expansion(expanded, tuple(resolved), _unused(prompt))


def included_names(spec: Any) -> tuple[str, ...]:
    """The Prompt names a raw spec includes (for the controller's reverse index;
    no parse, no text kept)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("includes"), list):
        return ()
    names = (item.get("prompt") for item in spec["includes"] if isinstance(item, Mapping))
    return tuple(sorted({n for n in names if isinstance(n, str) and n and "/" not in n}))
