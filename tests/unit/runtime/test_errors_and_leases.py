"""Typed API errors, the one backoff formula, and the Lease record leader election writes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from prompt_operator.runtime.backoff import backoff_delay
from prompt_operator.runtime.errors import (
    ApiError,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    NotFound,
    NotLeading,
    Unavailable,
    error_for,
)
from prompt_operator.runtime.leader import LeaseConfig, lease_spec, micro_time


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, Invalid, False),
        (403, Forbidden, False),
        (404, NotFound, False),
        (409, Conflict, True),
        (410, Expired, False),
        (422, Invalid, False),
        (429, Unavailable, True),
        (500, Unavailable, True),
        (503, Unavailable, True),
        (418, ApiError, False),
    ],
)
def test_every_status_has_its_own_error_type(status: int, cls: type, retryable: bool) -> None:
    error = error_for(status, "Reason", "message")
    assert type(error) is cls
    assert error.retryable is retryable
    assert str(status) in str(error)


def test_a_refused_write_of_a_standby_is_retried_not_reported() -> None:
    assert isinstance(NotLeading(), ApiError) and NotLeading().retryable


def test_backoff_is_jittered_below_its_exponential_bound_and_capped() -> None:
    for attempt in range(40):
        bound = min(3.0, 0.1 * 2**attempt)
        assert all(0 <= backoff_delay(attempt, base=0.1, cap=3.0) <= bound for _ in range(50))


NOW = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def test_taking_a_lease_records_the_holder_the_acquire_time_and_a_transition() -> None:
    config = LeaseConfig("ns", "lease", "b", lease_duration=15, renew_deadline=10)
    held_by_a = {
        "holderIdentity": "a",
        "acquireTime": "2026-05-01T11:00:00.000000Z",
        "renewTime": "2026-05-01T11:59:50.000000Z",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 3,
    }
    spec = lease_spec(config, held_by_a, NOW)
    assert spec == {
        "holderIdentity": "b",
        "acquireTime": "2026-05-01T12:00:00.123456Z",
        "renewTime": "2026-05-01T12:00:00.123456Z",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 4,
    }
    renewed = lease_spec(config, spec, datetime(2026, 5, 1, 12, 0, 2, tzinfo=timezone.utc))
    assert renewed["acquireTime"] == spec["acquireTime"]  # a renew is no transition
    assert renewed["leaseTransitions"] == 4
    assert renewed["renewTime"] == micro_time(datetime(2026, 5, 1, 12, 0, 2, tzinfo=timezone.utc))


def test_a_new_lease_starts_with_no_transitions() -> None:
    spec = lease_spec(LeaseConfig("ns", "lease", "a"), None, NOW)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("a", 0)


@pytest.mark.parametrize(("duration", "deadline", "period"), [(10, 10, 2), (10, 5, 5), (5, 10, 2)])
def test_lease_timings_must_leave_the_leader_time_to_step_down(
    duration: float, deadline: float, period: float
) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseConfig("ns", "lease", "a", duration, deadline, period)
