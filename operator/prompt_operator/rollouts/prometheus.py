"""Prometheus analysis: the queries a rollout measures, and one instant query.

The default measurement is a variant's share of good outcomes among the uses
the apps counted in prompt_client's ``prompt_usage_total{prompt,revision,
variant,outcome}`` (``log_usage(name, outcome=...)``): its ``prompt`` label is
the *key* the app passed to ``log_usage`` (the file name without extension),
not the Prompt object's name. ``revision`` is the hash of the revision served,
so a rollout's composite revisions are selected by a regex over their hashes.

Building a query is pure (label values escaped here, once); ``query_scalar``
asks Prometheus's HTTP API and turns every way of not getting one number into
``PrometheusUnavailable`` or ``None``, so the caller can only wait on missing
data, never pass on it.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

import aiohttp

METRIC = "prompt_usage_total"
REVISIONS_PLACEHOLDER = "$REVISIONS"
VARIANT_PLACEHOLDER = "$VARIANT"
# What RE2 (Prometheus's regex engine) gives a meaning; a backslash makes each literal.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


class PrometheusUnavailable(Exception):
    """No usable number from Prometheus; the message says why (unreachable, an HTTP
    status and Prometheus's error, or an answer that is not one number)."""


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal.

    JSON's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) are a subset of the
    Go escapes PromQL reads, so any label value survives, quotes and all.
    """
    return json.dumps(value, ensure_ascii=False)


def revisions_regex(values: Sequence[str]) -> str:
    """An RE2 alternation matching exactly ``values`` (Prometheus anchors it)."""
    return "|".join(
        "".join("\\" + char if char in _RE2_SPECIAL else char for char in value) for value in values
    )


def outcome_share_queries(
    prompt: str,
    revisions: Sequence[str],
    variant: str,
    good_outcomes: Sequence[str],
    window_seconds: int,
) -> tuple[str, str]:
    """(share query, samples query) for ``variant`` of the ``revisions`` of key ``prompt``.

    The share is the good uses over all uses in the last ``window_seconds``;
    the samples query is that denominator. A window with uses but no good one
    measures 0 (the good series may not exist yet), one without uses measures
    nothing (``query_scalar`` answers None).
    """
    if not revisions:
        raise ValueError("no revisions to measure: the rollout has served none yet")
    if not good_outcomes:
        raise ValueError("no good outcomes declared: the share would always be 0")
    if window_seconds < 1:
        raise ValueError(f"window of {window_seconds}s: it must be at least 1s")
    uses = ",".join(
        (
            f"prompt={promql_string(prompt)}",
            f"revision=~{promql_string(revisions_regex(revisions))}",
            f"variant={promql_string(variant)}",
        )
    )
    good = f"{uses},outcome=~{promql_string(revisions_regex(good_outcomes))}"
    window = f"[{window_seconds}s]"
    samples = f"sum(increase({METRIC}{{{uses}}}{window}))"
    share = f"(sum(increase({METRIC}{{{good}}}{window})) or vector(0)) / {samples}"
    return share, samples


def expand_placeholders(query: str, revisions: Sequence[str], variant: str) -> str:
    """A user's query with ``$REVISIONS`` (the regex of ``revisions``) and
    ``$VARIANT`` filled in, for use inside double quotes: ``revision=~"$REVISIONS"``."""
    regex = promql_string(revisions_regex(revisions))[1:-1]
    variant_text = promql_string(variant)[1:-1]
    return query.replace(REVISIONS_PLACEHOLDER, regex).replace(VARIANT_PLACEHOLDER, variant_text)


def query_url(base_url: str) -> str:
    """The instant-query endpoint under ``base_url`` (which may carry a path prefix)."""
    return base_url.rstrip("/") + "/api/v1/query"


async def query_scalar(base_url: str, promql: str, *, timeout: float = 5.0) -> float | None:
    """The one number ``promql`` evaluates to now at ``base_url``.

    None for an empty result, NaN or an infinity (no data to judge). Raises
    ``PrometheusUnavailable`` when Prometheus cannot be reached within
    ``timeout`` seconds, refuses the query, or answers more than one number.
    """
    # Prometheus stops evaluating at the same deadline (a number of seconds).
    params = {"query": promql, "timeout": f"{timeout:g}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(query_url(base_url), params=params) as resp,
        ):
            status, raw = resp.status, await resp.read()
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise PrometheusUnavailable(
            f"Prometheus at {base_url} did not answer within {timeout:g}s"
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise PrometheusUnavailable(f"cannot reach Prometheus at {base_url}: {exc}") from exc
    return scalar_from_answer(base_url, status, raw)


def scalar_from_answer(base_url: str, status: int, raw: bytes) -> float | None:
    """The number in an answer of ``/api/v1/query`` (see ``query_scalar``)."""
    where = f"Prometheus at {base_url}"
    try:
        answer = json.loads(raw)
    except ValueError:
        snippet = raw[:200].decode("utf-8", errors="replace")
        raise PrometheusUnavailable(
            f"{where} answered HTTP {status} with something that is not JSON: {snippet!r}"
        ) from None
    if not isinstance(answer, dict):
        raise PrometheusUnavailable(f"{where} answered HTTP {status} with {type(answer).__name__}")
    if status != 200 or answer.get("status") != "success":
        kind, error = answer.get("errorType", "error"), answer.get("error", "no message")
        raise PrometheusUnavailable(f"{where} refused the query (HTTP {status}, {kind}: {error})")
    return _number(where, answer.get("data"))


def _number(where: str, data: Any) -> float | None:
    if not isinstance(data, dict):
        raise PrometheusUnavailable(f"{where} answered without data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return _sample_value(where, result)
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusUnavailable(
            f"{where} answered a {kind}; an analysis query must give one number"
        )
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusUnavailable(
            f"{where} answered {len(result)} series; an analysis query must give one "
            "number (aggregate it, e.g. sum(...))"
        )
    series = result[0]
    return _sample_value(where, series.get("value") if isinstance(series, dict) else None)


def _sample_value(where: str, sample: Any) -> float | None:
    """The value of a ``[timestamp, "value"]`` pair; None when it is not finite."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise PrometheusUnavailable(f"{where} answered a sample without a number") from None
    return value if math.isfinite(value) else None


__all__ = [
    "METRIC",
    "REVISIONS_PLACEHOLDER",
    "VARIANT_PLACEHOLDER",
    "PrometheusUnavailable",
    "expand_placeholders",
    "outcome_share_queries",
    "promql_string",
    "query_scalar",
    "query_url",
    "revisions_regex",
]
