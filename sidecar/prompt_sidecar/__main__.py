"""``python -m prompt_sidecar``: the same as ``prompt-sidecar``."""

from prompt_sidecar.main import run

raise SystemExit(run())
