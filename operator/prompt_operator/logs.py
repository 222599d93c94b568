"""Fields for log lines, so that JSON logs can be searched by what they are about.

``logger.info("...", extra=about(ref, revision=...))``: in JSON mode (the
default in a cluster) each becomes a field of its own, ``prompt``,
``namespace``, ``revision``, ``pod``; on a terminal the message says the same
in words. The same names everywhere, so one query finds every line about a
Prompt or a pod.
"""

from __future__ import annotations

from .model import PromptRef


def about(
    ref: PromptRef | None = None,
    *,
    revision: str | None = None,
    pod: tuple[str, str] | None = None,
) -> dict[str, str]:
    """``extra=`` for a log line about a Prompt, one of its revisions, and/or a pod."""
    fields: dict[str, str] = {}
    if ref is not None:
        fields["namespace"] = ref.namespace
        fields["prompt"] = ref.name
    if revision is not None:
        fields["revision"] = revision
    if pod is not None:
        fields["namespace"] = pod[0]
        fields["pod"] = pod[1]
    return fields
