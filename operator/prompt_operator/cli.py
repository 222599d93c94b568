"""The one `prompt-operator` command; subcommands load their parts lazily."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("prompt-operator: not yet", file=sys.stderr)
    return 2
