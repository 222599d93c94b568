"""Usage records: which prompt, revision and variant produced which outcome."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import PromptInfo

usage_logger = logging.getLogger("prompt_client.usage")

_counter: Any = None
_counter_lock = threading.Lock()


def _prometheus_counter() -> Any:
    """``prompt_usage_total{prompt,revision,variant}``, when prometheus-client is installed."""
    global _counter
    with _counter_lock:
        if _counter is None:
            try:
                from prometheus_client import Counter
            except ImportError:
                _counter = False
            else:
                _counter = Counter(
                    "prompt_usage",
                    "Prompt uses logged by the app",
                    ["prompt", "revision", "variant"],
                )
        return _counter


class UsageLog:
    def __init__(self) -> None:
        self._callbacks: list[Callable[[dict[str, Any]], None]] = []

    def add_callback(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self._callbacks.append(callback)

    def record(self, info: PromptInfo, metadata: dict[str, Any]) -> dict[str, Any]:
        record = {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "prompt": info.name,
            "revision": info.revision,
            "variant": info.variant,
            "source": info.source,
            **metadata,
        }
        usage_logger.info(
            "prompt %s used (revision %s, variant %s)",
            info.name,
            info.revision,
            info.variant,
            extra={"prompt_usage": record},
        )
        for callback in list(self._callbacks):
            try:
                callback(record)
            except Exception:
                usage_logger.exception("usage callback failed")
        counter = _prometheus_counter()
        if counter:
            counter.labels(info.name, info.revision or "", info.variant or "").inc()
        return record
