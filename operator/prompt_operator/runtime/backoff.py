"""One backoff formula for every retry in the operator."""

from __future__ import annotations

import asyncio
import random


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the retries of many keys (or many replicas) that failed
    together, so they do not come back in step."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 30))))


async def backoff_sleep(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> None:
    await asyncio.sleep(backoff_delay(attempt, base=base, cap=cap))
