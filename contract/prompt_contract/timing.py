"""The clock and the retry delay, shared by the operator and the sidecar."""

from __future__ import annotations

import random
from datetime import datetime, timezone

__all__ = ["backoff_delay", "now_rfc3339"]


def now_rfc3339() -> str:
    """The time now as RFC 3339 in UTC with microseconds (``PromptMeta.updated_at``,
    event and status timestamps)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the retries of many keys, replicas or pods that failed
    together, so they do not come back in step."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 30))))
