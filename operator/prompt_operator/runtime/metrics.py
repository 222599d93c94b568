"""Metrics of the controller runtime: per controller, whatever it reconciles."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "prompt_operator_reconciles_total",
    "Reconciles by controller and result (success, requeue, retry, error)",
    ["controller", "result"],
)
RECONCILE_SECONDS = Histogram(
    "prompt_operator_reconcile_seconds",
    "Time one reconcile took, by controller and result",
    ["controller", "result"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRIES = Counter(
    "prompt_operator_workqueue_retries_total",
    "Keys put back with backoff (a failed reconcile, or one that asked to retry)",
    ["controller"],
)
DEPTH = Gauge("prompt_operator_workqueue_depth", "Keys waiting for a worker", ["controller"])
DELAYED = Gauge(
    "prompt_operator_workqueue_delayed",
    "Keys waiting for their time (a schedule, a refresh, a retry)",
    ["controller"],
)
