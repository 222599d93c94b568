"""Revision history: numbered records in the Prompt's status, and what changed.

Every change of what apps read gets the next number; the record keeps the
content hash (so going back to an earlier text shows as a new number with the
old hash), the time, the source (spec or a schedule entry) and a one-line
summary. The texts themselves live in the revision ConfigMaps, never in
status. Pure functions only; the revisions controller does the I/O.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects

from .render import Rendered


@dataclass(frozen=True)
class Record:
    number: int
    revision: str
    time: str
    source: str
    summary: str

    def to_status(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "revision": self.revision,
            "time": self.time,
            "source": self.source,
            "summary": self.summary,
        }


def records_from(status: Mapping[str, Any]) -> list[Record]:
    """The records in ``status.revisions`` (malformed entries are skipped)."""
    records = []
    for item in status.get("revisions") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("number"), int):
            continue
        records.append(
            Record(
                number=item["number"],
                revision=str(item.get("revision") or ""),
                time=str(item.get("time") or ""),
                source=str(item.get("source") or "spec"),
                summary=str(item.get("summary") or ""),
            )
        )
    return sorted(records, key=lambda r: r.number)


def retained(records: Sequence[Record], new: Record | None, limit: int) -> list[Record]:
    """``records`` plus ``new``, the newest ``limit`` of them."""
    result = list(records) + ([new] if new is not None else [])
    return result[-max(1, limit) :]


def next_number(records: Iterable[Record], numbers_in_use: Iterable[int]) -> int:
    return max([r.number for r in records] + list(numbers_in_use), default=0) + 1


@dataclass(frozen=True)
class Snapshot:
    """What apps read at one revision: enough to summarize and diff, nothing else."""

    key: str
    format: str
    variables: tuple[str, ...]
    texts: tuple[tuple[str, str], ...]  # (variant name or "", text or readable call document)
    weights: tuple[tuple[str, int], ...] = ()
    form: str = ""  # "call": each text is a call document, pretty-printed to diff by line


def readable(text: str, form: str) -> str:
    """A served text as people diff it: a call document pretty-printed (one field
    or message part a line, keys sorted), a text as it is."""
    if not form:
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    except ValueError:
        return text


def snapshot_from_configmap(data: Mapping[str, str], key: str) -> Snapshot:
    """The snapshot of a revision ConfigMap's data."""
    source = _json(data.get(objects.SOURCE_DATA_KEY))
    meta = _json(data.get(objects.METADATA_DATA_KEY))
    weights = tuple(
        (str(v.get("name")), int(v.get("weight") or 0))
        for v in meta.get("variants") or []
        if isinstance(v, Mapping)
    )
    form = str(meta.get("form") or "")
    if weights:
        texts = tuple((name, data.get(objects.variant_data_key(name), "")) for name, _ in weights)
    else:
        text_key = objects.CALL_DATA_KEY if form else objects.TEXT_DATA_KEY
        texts = (("", data.get(text_key, "")),)
    return Snapshot(
        key=str(source.get("key") or key),
        format=str(meta.get("format") or "python"),
        variables=tuple(str(v) for v in meta.get("variables") or []),
        texts=tuple((name, readable(text, form)) for name, text in texts),
        weights=weights,
        form=form,
    )


def _json(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def line_changes(old: str, new: str) -> tuple[int, int]:
    """Lines added and removed from ``old`` to ``new``, in time linear in their size.

    A Prompt author chooses both texts, and a line diff (difflib) is worse than
    quadratic in lines on texts made for it: random lines from ~120 values, 98 KB
    a side, took 5 s of CPU a pair, on the operator's event loop, up to ten
    variants an edit (bench/history_cost.py). So no alignment is searched: the
    common first and last lines are set aside and the rest counted as multisets.
    That is exact for lines inserted, deleted or replaced anywhere, the edits
    people make; a line that only moved counts as unchanged.
    """
    a, b = old.splitlines(), new.splitlines()
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end = 0
    while end < len(a) - start and end < len(b) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    before = Counter(a[start : len(a) - end])
    after = Counter(b[start : len(b) - end])
    return sum((after - before).values()), sum((before - after).values())


def summarize(old: Snapshot | None, new: Snapshot) -> str:
    """One line saying what changed from ``old`` to ``new``."""
    if old is None:
        return "first revision"
    parts: list[str] = []
    if old.key != new.key:
        parts.append(f"key {old.key!r} -> {new.key!r}")
    if old.format != new.format:
        parts.append(f"format {old.format} -> {new.format}")
    if old.form != new.form:
        parts.append(f"form {old.form or 'text'} -> {new.form or 'text'}")
    added = [v for v in new.variables if v not in old.variables]
    dropped = [v for v in old.variables if v not in new.variables]
    if added:
        parts.append("variables +" + ", +".join(added))
    if dropped:
        parts.append("variables -" + ", -".join(dropped))
    if old.weights != new.weights:
        before = "/".join(f"{n} {w}" for n, w in old.weights) or "one text"
        after = "/".join(f"{n} {w}" for n, w in new.weights) or "one text"
        parts.append(f"variants {before} -> {after}")
    old_texts = dict(old.texts)
    for name, text in new.texts:
        previous = old_texts.get(name)
        if previous is None or previous == text:
            continue
        where = f"variant {name}" if name else "text"
        if old.form and new.form:
            parts.extend(
                f"{where} {change}" if name else change for change in call_changes(previous, text)
            )
            continue
        plus, minus = line_changes(previous, text)
        moved = " (lines moved or line endings changed)" if plus == minus == 0 else ""
        parts.append(f"{where} +{plus} -{minus} lines{moved}")
    return "; ".join(parts) or "no change in what apps read"


def call_changes(old: str, new: str) -> list[str]:
    """What changed between two call documents, by part: messages (lines), the
    model's name and each parameter (old -> new), tools added and removed."""
    before, after = _json(old), _json(new)
    changes: list[str] = []
    for part in ("template", "messages"):
        a = json.dumps(before.get(part), ensure_ascii=False, indent=2, sort_keys=True)
        b = json.dumps(after.get(part), ensure_ascii=False, indent=2, sort_keys=True)
        if a != b:
            plus, minus = line_changes(a if part in before else "", b if part in after else "")
            changes.append(f"{part} +{plus} -{minus} lines")
    old_model, new_model = _mapping(before.get("model")), _mapping(after.get("model"))
    if old_model.get("name") != new_model.get("name"):
        changes.append(f"model {old_model.get('name')!r} -> {new_model.get('name')!r}")
    old_params, new_params = (
        _mapping(old_model.get("parameters")),
        _mapping(new_model.get("parameters")),
    )
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key) != new_params.get(key):
            changes.append(f"{key} {old_params.get(key)!r} -> {new_params.get(key)!r}")
    old_tools = {
        str(t.get("name")): t for t in old_model.get("tools") or [] if isinstance(t, Mapping)
    }
    new_tools = {
        str(t.get("name")): t for t in new_model.get("tools") or [] if isinstance(t, Mapping)
    }
    changes += [f"tool +{n}" for n in new_tools if n not in old_tools]
    changes += [f"tool -{n}" for n in old_tools if n not in new_tools]
    changes += [
        f"tool {n} changed" for n in new_tools if n in old_tools and old_tools[n] != new_tools[n]
    ]
    if old_model.get("responseFormat") != new_model.get("responseFormat"):
        changes.append("responseFormat changed")
    return changes or ["call document reformatted"]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def unified_diff(old: Snapshot, new: Snapshot, old_label: str, new_label: str) -> str:
    """A unified diff of two revisions' texts (every variant), for `prompt-operator diff`."""
    out: list[str] = []
    names = [n for n, _ in old.texts] + [n for n, _ in new.texts if n not in dict(old.texts)]
    old_texts, new_texts = dict(old.texts), dict(new.texts)
    for name in names:
        suffix = f" (variant {name})" if name else ""
        out.extend(
            difflib.unified_diff(
                old_texts.get(name, "").splitlines(keepends=True),
                new_texts.get(name, "").splitlines(keepends=True),
                fromfile=old_label + suffix,
                tofile=new_label + suffix,
            )
        )
    if old.weights != new.weights:
        out.append(f"weights: {dict(old.weights)} -> {dict(new.weights)}\n")
    if old.variables != new.variables:
        out.append(f"variables: {list(old.variables)} -> {list(new.variables)}\n")
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def snapshot_of(rendered: Rendered) -> Snapshot:
    """The snapshot of what the operator is about to write."""
    return Snapshot(
        key=rendered.key,
        format=rendered.format,
        variables=rendered.variables,
        texts=tuple(
            (n, readable(t, rendered.form))
            for n, t in (tuple((n, t) for n, _, t in rendered.variants) or (("", rendered.text),))
        ),
        weights=tuple((n, w) for n, w, _ in rendered.variants),
        form=rendered.form,
    )
