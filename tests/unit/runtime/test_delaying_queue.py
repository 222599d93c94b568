"""The delaying queue and the controller runtime on a fake clock: no sleeps."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from prompt_operator.runtime.controller import Controller, Result
from prompt_operator.runtime.errors import ApiError
from prompt_operator.runtime.workqueue import WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def taken(queue: WorkQueue[str]) -> list[str]:
    """Every key a worker would take now, in order."""
    keys = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys


def test_delayed_keys_come_out_in_the_order_of_their_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        queue.add_after("late", 30)
        queue.add_after("soon", 10)
        queue.add_after("middle", 20)
        clock.now += 15
        assert queue.promote_due() == 1 and await taken(queue) == ["soon"]
        clock.now += 100
        assert queue.promote_due() == 2 and await taken(queue) == ["middle", "late"]
        assert queue.delayed == 0

    run(scenario())


def test_an_earlier_requeue_replaces_a_later_one_and_a_later_one_is_ignored() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        queue.add_after("a", 60)
        queue.add_after("a", 5)  # replaces the 60 s entry
        queue.add_after("a", 30)  # later than the pending one: ignored
        assert queue.due("a") == clock.now + 5
        clock.now += 5
        assert queue.promote_due() == 1 and await taken(queue) == ["a"]
        clock.now += 60  # the replaced entries never add it again
        assert queue.promote_due() == 0 and await taken(queue) == []

    run(scenario())


def test_a_cancelled_delayed_key_never_comes() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        queue.add_after("gone", 1)
        queue.cancel("gone")
        clock.now += 2
        assert queue.promote_due() == 0 and len(queue) == 0

    run(scenario())


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_failed_reconcile_backs_off_and_is_counted_then_success_forgets_it() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(base_delay=1, max_delay=8, clock=clock)
        fail = [True]

        async def reconcile(key: str) -> Result:
            if fail[0]:
                raise ApiError(500, "InternalError", "boom")
            return Result()

        controller = Controller("test-backoff", reconcile, queue, clock=clock)
        errors = sample(
            "prompt_operator_reconciles_total", controller="test-backoff", result="error"
        )
        assert await controller.process("k") == "error"
        assert await controller.process("k") == "error"
        assert queue.failures("k") == 2
        due = queue.due("k")
        assert due is not None and clock.now <= due <= clock.now + 2  # 2nd try: up to 2 s
        assert sample("prompt_operator_workqueue_retries_total", controller="test-backoff") == 2
        after = sample(
            "prompt_operator_reconciles_total", controller="test-backoff", result="error"
        )
        assert after - errors == 2
        fail[0] = False
        assert await controller.process("k") == "success"
        assert queue.failures("k") == 0

    run(scenario())


def test_requeue_after_comes_back_through_the_queue_at_its_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)

        async def reconcile(key: str) -> Result:
            return Result(requeue_after=90)

        controller = Controller("test-requeue", reconcile, queue, clock=clock)
        assert await controller.process("k") == "requeue"
        assert queue.due("k") == clock.now + 90 and queue.failures("k") == 0
        assert sample("prompt_operator_workqueue_delayed", controller="test-requeue") == 1
        clock.now += 89
        assert queue.promote_due() == 0
        clock.now += 1
        assert queue.promote_due() == 1 and await taken(queue) == ["k"]
        count = sample(
            "prompt_operator_reconcile_seconds_count", controller="test-requeue", result="requeue"
        )
        assert count == 1

    run(scenario())


def test_the_one_timer_adds_a_delayed_key_when_it_is_due() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("b", 60)
        queue.add_after("a", 0.01)  # the timer is moved earlier for it
        assert await asyncio.wait_for(queue.get(), 5) == "a"
        assert queue.due("b") is not None

    run(scenario())


def test_replaced_entries_do_not_pile_up_in_the_heap() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        for i in range(1000):  # each add a little earlier: each replaces the last
            queue.add_after("a", 10_000 - i)
        assert queue.delayed == 1 and len(queue._heap) <= 2 + 64
        clock.now += 10_000
        assert queue.promote_due() == 1 and await taken(queue) == ["a"]

    run(scenario())
