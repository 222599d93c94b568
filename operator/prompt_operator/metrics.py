"""Prometheus metrics of the operator (served on --metrics-port). No prompt text.

Reconciles, retries and queue depths are the runtime's (``runtime.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WRITES = Counter(
    "prompt_operator_api_writes_total", "Write requests sent to the API server", ["kind"]
)
SIGNALS = Counter("prompt_operator_signals_total", "Signal requests sent to sidecars", ["result"])
SIGNAL_SECONDS = Histogram(
    "prompt_operator_signal_seconds",
    "Time from sending a signal to the sidecar's answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SUBSCRIBED_PODS = Gauge("prompt_operator_subscribed_pods", "Pods subscribed to Prompts")
PENDING_DELIVERY = Gauge(
    "prompt_operator_prompts_pending_delivery",
    "Prompts whose current revision some subscribed pod does not serve yet (last count)",
)
ROLLOUT_PHASE = Gauge(
    "prompt_operator_rollout_phase",
    "1 for the current phase of each Prompt's rollout (spec.rollout)",
    ["namespace", "prompt", "phase"],
)
ROLLOUT_WEIGHT = Gauge(
    "prompt_operator_rollout_weight",
    "Percent of pods (or users) served a rollout's candidate",
    ["namespace", "prompt"],
)
ANALYSIS_RUNS = Counter(
    "prompt_operator_analysis_runs_total",
    "Rollout analysis runs finished, by provider and outcome",
    ["provider", "phase"],
)
