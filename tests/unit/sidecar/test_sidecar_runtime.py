"""The syncer's machinery and its signal admission, without threads or a clock."""

from __future__ import annotations

import pytest

from prompt_sidecar.planning import admitted
from prompt_sidecar.runtime import RETRY_CAP_SECONDS, Pacer, Pending, TokenBucket


def pacer(resync: float = 300.0) -> Pacer:
    return Pacer(TokenBucket(rate=5.0, burst=2, now=0.0), resync, early_resync=30.0)


def test_backoff_grows_is_capped_and_jittered_then_resets() -> None:
    p = pacer()
    p.listed(0.0)
    waits = []
    for attempt in range(1, 13):
        p.failed(100.0)
        wait = p.retry_at() - 100.0
        assert 0.0 <= wait <= min(RETRY_CAP_SECONDS, 0.2 * 2**attempt)
        waits.append(wait)
    assert len(set(waits)) > 1  # full jitter: pods that failed together do not retry in step
    assert p.next_at(100.0, has_work=True) == p.retry_at() or p.retry_at() <= 100.0
    p.succeeded()
    assert p.retry_at() == 0.0 and p.next_at(100.0, has_work=True) == 100.0


def test_a_signal_after_a_failure_ends_the_backoff_but_not_the_rate_limit() -> None:
    p = pacer()
    p.listed(0.0)
    for _ in range(10):
        p.failed(10.0)
    p.signalled()
    assert p.next_at(10.0, has_work=True) == 10.0
    p.bucket.take(10.0, 2)
    assert p.next_at(10.0, has_work=True) == pytest.approx(10.2)
    p.started()  # only signals after the read began end the next backoff
    p.failed(11.0)
    assert p.next_at(11.0, has_work=True) == p.retry_at()


def test_without_work_the_next_read_is_the_resync() -> None:
    p = pacer(resync=300.0)
    assert p.resync_due(0.0) and p.early_resync_allowed(0.0)
    p.listed(5.0)
    assert p.next_at(6.0, has_work=False) == 305.0
    assert not p.resync_due(304.0) and p.resync_due(305.0)
    assert not p.early_resync_allowed(34.0) and p.early_resync_allowed(35.0)


def test_pending_answers_a_ticket_only_when_all_it_named_is_read() -> None:
    pending = Pending()
    pending.add("a", "r1", 1.0)
    pending.add("a", "r2", 2.0)  # the latest revision, the first arrival
    pending.add("b", "r1", 2.0)
    ticket = pending.ticket()
    taken, _, answers = pending.take(("b",))
    assert taken == {"a": (1.0, "r2")} and pending.names == {"b": (2.0, "r1")}
    assert answers == 0  # b waits, so the signal is not answered yet
    taken, _, answers = pending.take(())
    assert answers == ticket
    pending.add("b", "r2", 3.0)
    pending.put_back(taken, {})  # a failed read: newer signals keep their entry
    assert pending.names == {"b": (3.0, "r2")}
    pending.finish(ticket)
    assert pending.done == ticket


def test_admission_bounds_the_names_never_served() -> None:
    served = {"a": ("a", "r1")}
    assert admitted([("a", "r1")], served, set()) is None  # a replay costs nothing
    assert admitted([("gone", "")], served, set()) is None
    pairs = [("a", "r2"), ("x", "r1"), ("y", "r1"), ("x", "r2"), ("z", "r1")]
    assert admitted(pairs, served, {"w"}, max_new=3) == [
        ("a", "r2"),
        ("x", "r1"),
        ("y", "r1"),
        ("x", "r2"),
    ]
    # The pending set is full of unknown names: a served Prompt still gets its read.
    assert admitted(pairs, served, {"p", "q", "r"}, max_new=3) == [("a", "r2")]
