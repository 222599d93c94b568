"""The operator's retries wait with the one backoff formula the sidecar uses too."""

from __future__ import annotations

import asyncio

from prompt_contract.timing import backoff_delay

__all__ = ["backoff_delay", "backoff_sleep"]


async def backoff_sleep(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> None:
    await asyncio.sleep(backoff_delay(attempt, base=base, cap=cap))
