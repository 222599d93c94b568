"""Reading manifests: YAML as kubectl reads it, with the line of every field.

Files, directories and stdin become ``Document`` values (the YAML node kept
beside the data, so a finding can name its line); anything unreadable is an
``InputError`` that says which file and why.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class InputError(Exception):
    """A file that cannot be read or parsed as YAML."""


@dataclass(frozen=True)
class Document:
    source: str
    node: yaml.Node
    data: Any

    def line(self, path: Sequence[str | int] = ()) -> int:
        """1-based line of the field at ``path`` (or of the closest parent found)."""
        node = self.node
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                child = node.value[part] if part < len(node.value) else None
            if child is None:
                break
            node = child
        return int(node.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    """YAML as kubectl reads it: an unquoted time stays a string (the CRD wants one)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def documents(text: str, source: str) -> Iterator[Document]:
    try:
        loader = _Loader(text)  # already refuses control characters
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {exc}") from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            _check_unicode(data, source)
            yield Document(source, node, data)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _check_unicode(data: Any, source: str) -> None:
    """Refuse lone surrogates (a "\\ud800" escape): no UTF-8 holds them, and kubectl
    refuses the file too."""
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise InputError(f"{source}: not valid Unicode: {exc.reason} ({bad!r})") from None


def files(arguments: Sequence[str]) -> Iterator[tuple[str, str]]:
    for argument in arguments:
        if argument == "-":
            try:
                yield "<stdin>", sys.stdin.buffer.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"<stdin>: cannot read: {exc}") from None
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        else:
            found = [path]
        for file in found:
            try:
                yield str(file), file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{file}: cannot read: {exc}") from None
