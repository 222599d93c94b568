"""prompt-operator's sidecar: keeps an app pod's prompt files current (`prompt-sidecar`)."""

__version__ = "0.1.0"
