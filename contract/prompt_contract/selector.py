"""Kubernetes label selectors: parse the string form and match labels.

The same code decides on both sides which Prompts a pod consumes: the operator
when it picks pods to signal, the sidecar when it checks a ConfigMap it read
by name (its lists pass the selector to the API server).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .objects import DNS_SUBDOMAIN

__all__ = ["Requirement", "Selector", "SelectorError", "parse_selector"]

_NAME = re.compile(rf"^({DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class SelectorError(ValueError):
    """A selector that does not parse; the message says where."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match when the label is absent, as in Kubernetes.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def everything(self) -> bool:
        return not self.requirements


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append("".join(current))
    return parts


def _key(key: str, text: str) -> str:
    key = key.strip()
    if not _NAME.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _value(value: str, text: str) -> str:
    value = value.strip()
    if not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


def _requirement(part: str, text: str) -> Requirement:
    part = part.strip()
    if not part:
        raise SelectorError(f"empty requirement in selector {text!r}")
    found = _SET.match(part)
    if found:
        values = frozenset(_value(v, text) for v in found.group(3).split(","))
        return Requirement(_key(found.group(1), text), found.group(2), values)
    for op in ("!=", "==", "="):
        if op in part:
            key, value = part.split(op, 1)
            return Requirement(
                _key(key, text), "!=" if op == "!=" else "=", frozenset({_value(value, text)})
            )
    if part.startswith("!"):
        return Requirement(_key(part[1:], text), "!")
    return Requirement(_key(part, text), "exists")


def parse_selector(text: str | None) -> Selector:
    """Parse ``a=b,c!=d,e in (f,g),h notin (i),j,!k``; empty means everything."""
    text = (text or "").strip()
    if not text:
        return Selector((), "")
    if len(text) > 4096:
        raise SelectorError("selector longer than 4096 characters")
    return Selector(tuple(_requirement(p, text) for p in _split(text)), text)
