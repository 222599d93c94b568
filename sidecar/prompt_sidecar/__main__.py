"""``python -m prompt_sidecar``: the same as ``prompt-operator sidecar``."""

from prompt_sidecar.main import run

raise SystemExit(run())
