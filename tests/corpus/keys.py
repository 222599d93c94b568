"""The shared list of look-alike keys (keys.json), for the unit and integration tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS_FILE = Path(__file__).with_name("keys.json")


@dataclass(frozen=True)
class KeyCase:
    key: str
    ok: bool
    says: str = ""
    server: str = ""  # "accept" where the API server's approximate NFC check lets it through
    why: str = ""

    @property
    def server_accepts(self) -> bool:
        return self.ok or self.server == "accept"

    @property
    def id(self) -> str:
        shown = self.key.encode("ascii", "backslashreplace").decode()
        return f"{shown}: {'ok' if self.ok else 'refused'}"

    def manifest(self, name: str = "lookalike") -> dict[str, Any]:
        return {
            "apiVersion": "prompts.dev/v1alpha1",
            "kind": "Prompt",
            "metadata": {"name": name},
            "spec": {"key": self.key, "template": "Hello"},
        }


def key_cases() -> list[KeyCase]:
    return [KeyCase(**case) for case in json.loads(KEYS_FILE.read_text("utf-8"))["cases"]]
