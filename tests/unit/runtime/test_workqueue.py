"""The work queue's promises: coalescing, one worker per key, per-key backoff."""

from __future__ import annotations

import asyncio

from prompt_operator.runtime.workqueue import TokenBucket, WorkQueue


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_ten_adds_before_a_worker_takes_the_key_are_one_item() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        for _ in range(10):
            queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        assert await queue.get() == "a"
        assert await queue.get() == "b"
        assert len(queue) == 0

    run(scenario())


def test_a_key_added_while_a_worker_has_it_waits_for_done() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # an event arrives while "a" is being reconciled
        second = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        assert not second.done()  # never two workers on one key
        queue.done(key)
        assert await asyncio.wait_for(second, 1) == "a"

    run(scenario())


def test_a_discarded_key_is_not_handed_out() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("b")
        queue.discard("a")
        assert not queue.busy("a")
        assert await queue.get() == "b"

    run(scenario())


def test_failures_back_off_per_key_until_forgotten() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.05)
        for _ in range(3):
            queue.add_rate_limited("a")
        assert queue.failures("a") == 3
        assert await asyncio.wait_for(queue.get(), 1) == "a"  # capped delay, then due
        queue.forget("a")
        assert queue.failures("a") == 0

    run(scenario())


def test_retry_now_adds_every_failed_key_at_once_and_keeps_their_counts() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue(base_delay=60, max_delay=60)
        queue.add_after("a", 60)  # waits for a requested time (a schedule): stays
        queue.add_rate_limited("b")
        queue.add_rate_limited("c")
        assert len(queue) == 0
        assert queue.retry_now() == 2
        got = {await asyncio.wait_for(queue.get(), 1) for _ in range(2)}
        assert got == {"b", "c"}
        assert queue.failures("c") == 1
        assert queue.due("a") is not None

    run(scenario())


def test_an_earlier_delayed_add_wins() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 0.01)
        queue.add_after("a", 60)  # must not push the earlier one back
        assert await asyncio.wait_for(queue.get(), 1) == "a"

    run(scenario())


def test_token_bucket_spends_its_burst_then_spaces_requests_by_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert bucket.reserve() == 0 and bucket.reserve() == 0
    assert abs(bucket.reserve() - 0.1) < 1e-9
    assert abs(bucket.reserve() - 0.2) < 1e-9
    now[0] = 10.0  # refilled, never above the burst
    assert bucket.reserve() == 0 and bucket.reserve() == 0
