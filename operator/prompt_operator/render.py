"""Rendering: a pure function from a Prompt to the exact bytes apps will read.

The revision is a content hash of everything an app reads for the Prompt (the
text, its key, its format and its declared variables with their defaults), so
the same spec always gives the same revision, and an operator restart, which
renders again, finds nothing to write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .model import Prompt

REVISION_LENGTH = 16  # hex characters of SHA-256; plenty to tell revisions apart


@dataclass(frozen=True)
class Rendered:
    key: str
    text: str
    format: str
    variables: tuple[str, ...]
    defaults: dict[str, str] = field(default_factory=dict)

    @property
    def metadata_json(self) -> str:
        """What the sidecar passes on to apps besides the text (canonical JSON)."""
        return json.dumps(
            {"variables": list(self.variables), "defaults": self.defaults, "format": self.format},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @property
    def revision(self) -> str:
        digest = hashlib.sha256()
        for part in (self.key, self.format, self.metadata_json, self.text):
            encoded = part.encode("utf-8")
            # Length-prefix each part so no two different inputs hash alike.
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
        return digest.hexdigest()[:REVISION_LENGTH]

    @property
    def size(self) -> int:
        """Bytes the rendered prompt takes in a ConfigMap's data."""
        return len(self.text.encode("utf-8")) + len(self.metadata_json.encode("utf-8"))


def render(prompt: Prompt) -> Rendered:
    """The text and metadata apps will read for ``prompt`` (no checks here)."""
    return Rendered(
        key=prompt.key,
        text=prompt.template,
        format=prompt.format,
        variables=prompt.declared,
        defaults=prompt.defaults,
    )
