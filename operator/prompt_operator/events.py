"""Kubernetes Events for what a person looks for in `kubectl describe prompt`:
rejected templates, oversized content, failed writes, warnings. Not for every
success: a normal edit posts no Event, so it stays within its write budget."""

from __future__ import annotations

import datetime as dt
import logging
import socket

from prompt_contract import objects

from .logs import about
from .model import PromptRef
from .runtime.client import KubeApi, object_path
from .runtime.errors import ApiError

logger = logging.getLogger(__name__)

COMPONENT = "prompt-operator"
MAX_MESSAGE = 1024


def now_rfc3339() -> str:
    # Seconds only: an Event's and a condition's times are metav1.Time, which the
    # API server writes without a fraction (prompt_contract.timing keeps microseconds
    # for file metadata).
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post_event(
    api: KubeApi, ref: PromptRef, uid: str, *, warning: bool, reason: str, message: str
) -> None:
    """Post one Event about a Prompt; a failure is logged, never raised."""
    now = now_rfc3339()
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": objects.API_VERSION,
            "kind": "Prompt",
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": uid,
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await api.request("POST", object_path("v1", "events", ref.namespace), body=body)
    except ApiError as exc:  # network failures included: the client raises nothing else
        logger.warning(
            "could not post event %s for Prompt %s: %s", reason, ref, exc, extra=about(ref)
        )
