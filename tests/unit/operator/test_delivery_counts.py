"""Delivery counts and the pending-delivery gauge the chart's alert uses."""

from __future__ import annotations

from prometheus_client import REGISTRY

from prompt_operator.config import parse_config
from prompt_operator.controllers.delivery import Delivery
from prompt_operator.controllers.readiness import Readiness
from prompt_operator.controllers.signals import Signals
from prompt_operator.controllers.subscribers import Subscribers, subscriber_from_pod
from prompt_operator.model import PromptRef
from prompt_operator.runtime.leader import AlwaysLeader
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
    signals = Signals(subscribers, config, AlwaysLeader())
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
