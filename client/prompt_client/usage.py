"""Usage records: which prompt, revision and variant produced which outcome.

The Prometheus counter carries an ``outcome`` label so a team can compare
variants, but only from a small set the app declares
(``PromptRegistry(..., outcomes=("resolved", "escalated"))``): any other value
counts as ``other`` and no outcome as ``""``, so the number of series stays
fixed whatever the app passes. The log record and callbacks get the value as
given.

The ``revision`` label changes with every edit, so a long-running app would
add series for ever: only the series of the ``KEEP_REVISIONS`` revisions of each
prompt used last are kept, and those of an older revision are removed from the
counter when another one is first counted (Prometheus then sees that series
end, as when a process restarts; a rate over it still works up to that point).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scan import PromptInfo

__all__ = ["OTHER_OUTCOME", "UsageCallback", "UsageLog", "outcome_label", "usage_logger"]

usage_logger = logging.getLogger("prompt_client.usage")

UsageCallback = Callable[[dict[str, Any]], None]

OTHER_OUTCOME = "other"  # the label of an outcome the app did not declare
MAX_OUTCOMES = 20  # a label is for a handful of results, not for free text
# The current revision, the one before (a session's snapshot may still serve it)
# and one more for an edit rolled out while the previous one was current.
KEEP_REVISIONS = 3

_counter: Any = None
_counter_lock = threading.Lock()
# prompt -> its revisions counted, the least recently used first -> (variant, outcome)
_series: dict[str, OrderedDict[str, set[tuple[str, str]]]] = {}
_series_lock = threading.Lock()


def _prometheus_counter() -> Any:
    """``prompt_usage_total{prompt,revision,variant,outcome}``, when prometheus-client is
    installed.

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
                    ["prompt", "revision", "variant", "outcome"],
                )
            except ImportError:
                _counter = False
            except ValueError:  # "Duplicated timeseries": the name is taken
                usage_logger.warning("metric prompt_usage_total already exists; not counting")
                _counter = False
        return _counter


def count_use(counter: Any, prompt: str, revision: str, variant: str, outcome: str) -> None:
    """Add one to ``counter``'s series for these labels, removing the series of the
    prompt's revisions beyond the ``KEEP_REVISIONS`` used last."""
    with _series_lock:
        revisions = _series.setdefault(prompt, OrderedDict())
        revisions.setdefault(revision, set()).add((variant, outcome))
        revisions.move_to_end(revision)
        while len(revisions) > KEEP_REVISIONS:
            old, label_sets = revisions.popitem(last=False)
            for old_variant, old_outcome in label_sets:
                # KeyError: removed already (or never made), nothing to drop
                with contextlib.suppress(KeyError):
                    counter.remove(prompt, old, old_variant, old_outcome)
        counter.labels(prompt, revision, variant, outcome).inc()


def declared_outcomes(outcomes: Iterable[str]) -> frozenset[str]:
    """Check the app's outcome set once, at start: a mistake here is the app's bug."""
    chosen = frozenset(outcomes)
    if len(chosen) > MAX_OUTCOMES:
        raise ValueError(f"declare at most {MAX_OUTCOMES} outcomes (got {len(chosen)})")
    for outcome in chosen:
        if not isinstance(outcome, str) or not outcome or outcome == OTHER_OUTCOME:
            raise ValueError(
                f"outcome {outcome!r}: use a non-empty string other than {OTHER_OUTCOME!r}"
            )
    return chosen


def outcome_label(outcome: object, declared: frozenset[str]) -> str:
    """The counter's ``outcome`` label: the value if declared, ``""`` for none,
    ``"other"`` for anything else."""
    if outcome is None or outcome == "":
        return ""
    return outcome if isinstance(outcome, str) and outcome in declared else OTHER_OUTCOME


class UsageLog:
    """Hands usage records to the log, to the app's callbacks and to Prometheus."""

    def __init__(self, outcomes: Iterable[str] = ()) -> None:
        self._callbacks: list[UsageCallback] = []
        self.outcomes = declared_outcomes(outcomes)
        self._undeclared_warned = False

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
        outcome = outcome_label(metadata.get("outcome"), self.outcomes)
        if outcome == OTHER_OUTCOME and not self._undeclared_warned:
            self._undeclared_warned = True  # once: a warning per call would flood the log
            usage_logger.warning(
                "log_usage outcome %r is not declared (PromptRegistry(outcomes=...)); "
                "counted as %r",
                metadata.get("outcome"),
                OTHER_OUTCOME,
            )
        counter = _prometheus_counter()
        if counter:
            count_use(counter, info.name, info.revision or "", info.variant or "", outcome)
        return record
