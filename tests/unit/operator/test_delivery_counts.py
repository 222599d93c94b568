"""Delivery counts, the pending-delivery gauge the chart's alert uses, signal retries."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from prometheus_client import REGISTRY

from prompt_operator.config import parse_config
from prompt_operator.controllers.delivery import Delivery
from prompt_operator.controllers.readiness import Readiness
from prompt_operator.controllers.signals import MAX_SIGNAL_ATTEMPTS, Signals, _Failed
from prompt_operator.controllers.subscribers import Subscriber, Subscribers, subscriber_from_pod
from prompt_operator.model import PromptRef
from prompt_operator.runtime.controller import Controller
from prompt_operator.status import delivered_condition


def pod(name: str, selector: str = "", host_network: bool = False) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": name,
            "annotations": {"prompts.dev/selector": selector},
        },
        "spec": {"hostNetwork": host_network},
        "status": {"podIP": "127.0.0.5", "phase": "Running"},
    }


def test_counts_pods_that_serve_the_revision_and_sets_the_gauge() -> None:
    config = parse_config([])
    subscribers = Subscribers(None, ())  # type: ignore[arg-type]  # no watch runs
    signals = Signals(subscribers, config)
    status = Readiness(None)  # type: ignore[arg-type]
    delivery = Delivery(subscribers, signals, status, config)
    for name, selector in (("a", ""), ("b", "team=x"), ("c", "team=y")):
        sub = subscriber_from_pod(pod(name, selector))
        assert sub is not None
        subscribers.store(sub)
    signals.record(("ns", "a"), {"p": "r2"})
    signals.record(("ns", "b"), {"p": "r1"})
    ref = PromptRef("ns", "p")
    count = delivery.count(ref, "r2", {"team": "x"})
    assert (count.updated, count.subscribed, count.missing) == (1, 2, ("b",))
    assert REGISTRY.get_sample_value("prompt_operator_prompts_pending_delivery") == 1
    cond = delivered_condition(count, "r2")
    assert (cond.status, cond.reason) == (False, "PodsPending") and "b" in cond.message
    signals.record(("ns", "b"), {"p": "r2"})
    assert delivery.count(ref, "r2", {"team": "x"}).updated == 2
    assert REGISTRY.get_sample_value("prompt_operator_prompts_pending_delivery") == 0


def test_host_network_and_unaddressed_pods_are_never_signalled() -> None:
    assert subscriber_from_pod(pod("h", host_network=True)) is None
    no_ip = pod("n")
    no_ip["status"] = {"phase": "Pending"}
    assert subscriber_from_pod(no_ip) is None
    bad = pod("s", selector="a in (")
    assert subscriber_from_pod(bad) is None


class DeadPodSignals(Signals):
    """Signals whose pods never answer (no HTTP): what the retries do about it."""

    async def _signal(self, pod: Subscriber, batch: Mapping[str, str]) -> _Failed:
        self.sent.append(dict(batch))
        return _Failed.NO_ANSWER

    sent: list[dict[str, str]]


def test_an_unanswered_signal_is_retried_with_backoff_then_its_pod_is_paused() -> None:
    async def scenario() -> None:
        subscribers = Subscribers(None, ())  # type: ignore[arg-type]  # no watch runs
        signals = DeadPodSignals(subscribers, parse_config([]))
        signals.sent = []
        sub = subscriber_from_pod(pod("a"))
        assert sub is not None
        subscribers.store(sub)
        signals._first_seen.clear()  # seen long ago: not a pod still starting
        controller = Controller("test-signal", signals.deliver, signals.queue)
        key = ("ns", "a")
        answered = signals.send(key, "p", "r1")
        outcomes = []
        for _ in range(MAX_SIGNAL_ATTEMPTS):
            assert await signals.queue.get() == key
            outcomes.append(await controller.process(key))
            signals.queue.done(key)
            signals.queue.retry_now()  # its backoff over at once: no sleeping in a test
        assert outcomes == ["retry"] * (MAX_SIGNAL_ATTEMPTS - 1) + ["success"]
        assert signals.sent == [{"p": "r1"}] * MAX_SIGNAL_ATTEMPTS  # the same pair each time
        assert answered.done()  # the caller stops waiting once the pod is given up
        assert signals.queue.failures(key) == 0  # its next edit starts from the base delay
        signals.notify(key, "q", "r1")  # a catch-up signal to a paused pod: none
        assert len(signals.queue) == 0

    asyncio.run(scenario())
