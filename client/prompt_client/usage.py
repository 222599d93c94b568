"""Usage records: which prompt, revision and variant produced which outcome."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scan import PromptInfo

__all__ = ["UsageCallback", "UsageLog", "usage_logger"]

usage_logger = logging.getLogger("prompt_client.usage")

UsageCallback = Callable[[dict[str, Any]], None]

_counter: Any = None
_counter_lock = threading.Lock()


def _prometheus_counter() -> Any:
    """``prompt_usage_total{prompt,revision,variant}``, when prometheus-client is installed.

    ``False`` when it is not installed or the app already registered a metric
    of that name: metrics must never break the app's own code path.
    """
    global _counter
    with _counter_lock:
        if _counter is None:
            try:
                from prometheus_client import Counter

                _counter = Counter(
                    "prompt_usage",
                    "Prompt uses the app logged with log_usage()",
                    ["prompt", "revision", "variant"],
                )
            except ImportError:
                _counter = False
            except ValueError:  # "Duplicated timeseries": the name is taken
                usage_logger.warning("metric prompt_usage_total already exists; not counting")
                _counter = False
        return _counter


class UsageLog:
    """Hands usage records to the log, to the app's callbacks and to Prometheus."""

    def __init__(self) -> None:
        self._callbacks: list[UsageCallback] = []

    def add_callback(self, callback: UsageCallback) -> None:
        """Call ``callback(record)`` for every record."""
        self._callbacks.append(callback)

    def record(self, info: PromptInfo, metadata: dict[str, Any]) -> dict[str, Any]:
        """Build, log and hand out one record for ``info``; returns it."""
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
                usage_logger.exception("usage callback failed for prompt %r", info.name)
        counter = _prometheus_counter()
        if counter:
            counter.labels(info.name, info.revision or "", info.variant or "").inc()
        return record
