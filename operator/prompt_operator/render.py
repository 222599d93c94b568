"""Rendering: a pure function from a Prompt to the exact bytes apps will read.

The revision is a content hash of everything an app reads for the Prompt (the
text or chat messages, the model configuration, its key, its format and its
declared variables with their defaults), so
the same spec always gives the same revision, and an operator restart, which
renders again, finds nothing to write.

A text Prompt without a model is served as its text, exactly as always. When
any served text has chat messages or a model, the Prompt is served in "call"
form: each text (the one text, or every variant's) is a call document
(``prompt_contract.calls``) and the metadata says ``"form": "call"``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from prompt_contract.calls import CALL_FORM, call_document, dump_call

from .model import Message, ModelConfig, Prompt
from .schedule import SPEC_SOURCE, content_at

REVISION_LENGTH = 16  # hex characters of SHA-256; plenty to tell revisions apart


@dataclass(frozen=True)
class Rendered:
    key: str
    text: str
    format: str
    variables: tuple[str, ...]
    defaults: dict[str, str] = field(default_factory=dict)
    # A/B: (name, weight, text) for each variant; then ``text`` is "".
    variants: tuple[tuple[str, int, str], ...] = ()
    source: str = SPEC_SOURCE  # "spec", or "schedule <at>" when an entry is in effect
    descriptions: dict[str, str] = field(default_factory=dict)
    form: str = ""  # "" a text; "call": ``text`` and every variant's text are call documents

    @cached_property  # a Rendered never changes; the reconciler asks several times
    def metadata_json(self) -> str:
        """What the sidecar passes on to apps besides the text (canonical JSON)."""
        data: dict[str, Any] = {
            "variables": list(self.variables),
            "defaults": self.defaults,
            "format": self.format,
        }
        if self.form:
            data["form"] = self.form
        if self.variants:
            data["variants"] = [{"name": n, "weight": w} for n, w, _ in self.variants]
        return _canonical(data)

    @property
    def source_json(self) -> str:
        """The revision's spec without its text: what a rollback puts back."""
        data: dict[str, Any] = {
            "key": self.key,
            "format": self.format,
            "variables": [
                {
                    "name": name,
                    **(
                        {"description": self.descriptions[name]}
                        if name in self.descriptions
                        else {}
                    ),
                    **({"default": self.defaults[name]} if name in self.defaults else {}),
                }
                for name in self.variables
            ],
            "source": self.source,
        }
        if self.variants:
            data["variants"] = [{"name": n, "weight": w} for n, w, _ in self.variants]
        return _canonical(data)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(t for _, _, t in self.variants) if self.variants else (self.text,)

    @cached_property
    def revision(self) -> str:
        digest = hashlib.sha256()
        for part in (self.key, self.format, self.metadata_json, *self.texts):
            encoded = part.encode("utf-8")
            # Length-prefix each part so no two different inputs hash alike.
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
        return digest.hexdigest()[:REVISION_LENGTH]

    @property
    def size(self) -> int:
        """Bytes the rendered prompt takes in a ConfigMap's data."""
        return sum(
            len(part.encode("utf-8"))
            for part in (*self.texts, self.metadata_json, self.source_json)
        )


def _canonical(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def render(prompt: Prompt, now: datetime | None = None) -> Rendered:
    """The text and metadata apps will read for ``prompt`` at ``now`` (default: the
    current time; schedule entries whose time has passed apply). No checks here."""
    content = content_at(prompt, now or datetime.now(timezone.utc))
    form = CALL_FORM if content.is_call else ""

    def served(
        template: str | None, messages: tuple[Message, ...] | None, model: ModelConfig | None
    ) -> str:
        if not form:
            return template or ""
        return dump_call(
            call_document(
                format=prompt.format,
                variables=prompt.declared,
                defaults=prompt.defaults,
                template=None if messages is not None else template or "",
                messages=None if messages is None else [m.to_document() for m in messages],
                model=None if model is None else model.to_document(),
            )
        )

    return Rendered(
        key=prompt.key,
        text="" if content.variants else served(content.template, content.messages, content.model),
        format=prompt.format,
        variables=prompt.declared,
        defaults=prompt.defaults,
        variants=tuple(
            (v.name, v.weight, served(v.template, v.messages, v.model)) for v in content.variants
        ),
        source=content.source,
        descriptions={v.name: v.description for v in prompt.variables if v.description},
        form=form,
    )
