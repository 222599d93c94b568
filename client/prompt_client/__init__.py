"""Read prompts delivered by prompt-operator: a hot-reloading prompt registry.

A drop-in for ``prompt-hot-reloading``::

    from prompt_client import create_prompt_registry

    prompts = create_prompt_registry(outcomes=("resolved", "escalated"))  # reads PROMPT_DIR
    system = prompts.render("support_agent", customer_name="Ada")
    prompts.log_usage("support_agent", outcome="resolved")

Reads never block and never return half a file; deleted prompts disappear;
``snapshot()`` keeps one version for a whole conversation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prompt_contract.templates import (
    MissingVariableError,
    RenderError,
    TemplateError,
    UnknownVariableError,
)

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

    from prompt_contract.call_reading import (
        CallDocumentError,
        MissingPlaceholderError,
        PlaceholderValueError,
        UnknownPlaceholderError,
    )

    from .call import ChatPromptError, PromptCall
    from .registry import PromptRegistry, PromptSnapshot, PromptSource
    from .scan import PromptInfo
    from .sources import FileSystemSource, PromptDirectoryError


def __getattr__(name: str) -> Any:
    # The registry loads on first use, so the sidecar, which imports only the
    # file contract from this package, stays small.
    if name in (
        "PromptInfo",
        "PromptRegistry",
        "PromptSnapshot",
        "PromptSource",
    ):
        from . import registry

        return getattr(registry, name)
    if name in ("ChatPromptError", "PromptCall"):
        from . import call

        return getattr(call, name)
    if name in (
        "CallDocumentError",
        "MissingPlaceholderError",
        "PlaceholderValueError",
        "UnknownPlaceholderError",
    ):
        from prompt_contract import call_reading

        return getattr(call_reading, name)
    if name in ("FileSystemSource", "PromptDirectoryError"):
        from . import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'prompt_client' has no attribute {name!r}")


__all__ = [
    "CallDocumentError",
    "ChatPromptError",
    "FileSystemSource",
    "MissingPlaceholderError",
    "MissingVariableError",
    "PlaceholderValueError",
    "PromptCall",
    "PromptDirectoryError",
    "PromptInfo",
    "PromptRegistry",
    "PromptSnapshot",
    "PromptSource",
    "RenderError",
    "TemplateError",
    "UnknownPlaceholderError",
    "UnknownVariableError",
    "create_prompt_registry",
]
__version__ = "0.1.0"


def create_prompt_registry(
    *,
    defaults: Mapping[str, str] | None = None,
    outcomes: Iterable[str] = (),
    wait_for_directory: bool = False,
) -> PromptRegistry:
    """A registry configured from the environment, like ``prompt-hot-reloading``'s.

    ``PROMPT_SOURCE``: ``fs`` (the default) reads ``PROMPT_DIR`` (default
    ``prompts``), the directory the prompt-operator sidecar writes. The other
    arguments are ``PromptRegistry``'s; a directory that does not exist raises
    ``PromptDirectoryError`` unless ``wait_for_directory`` is true.
    """
    source = os.getenv("PROMPT_SOURCE", "fs").lower()
    if source == "s3":
        raise ValueError(
            "PROMPT_SOURCE=s3 is not supported by prompt_client. With prompt-operator, "
            "prompts arrive as files: set PROMPT_SOURCE=fs and PROMPT_DIR to the directory "
            "the sidecar writes (the injected sidecar sets PROMPT_DIR for you). To keep "
            "reading S3, pass prompt-hot-reloading's S3PollingSource to PromptRegistry."
        )
    if source != "fs":
        raise ValueError(f"PROMPT_SOURCE={source!r} is unknown; use 'fs' (files in PROMPT_DIR)")
    from .registry import PromptRegistry
    from .sources import FileSystemSource, check_directory

    directory = os.getenv("PROMPT_DIR")
    if not wait_for_directory:
        check_directory(
            directory or "prompts",
            f" (PROMPT_DIR={directory})" if directory else " (PROMPT_DIR is not set: the default)",
        )
    return PromptRegistry(
        FileSystemSource(directory or "prompts"),
        defaults=defaults,
        outcomes=outcomes,
        wait_for_directory=True,  # checked above, with where the path came from
    )
