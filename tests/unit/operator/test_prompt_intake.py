"""The Prompt controller's intake: what a watch event queues, and when."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from prompt_contract import objects
from prompt_operator import history
from prompt_operator.config import parse_config
from prompt_operator.configmap import revision_labels
from prompt_operator.controllers.delivery import Delivery
from prompt_operator.controllers.desired import desired_at
from prompt_operator.controllers.prompts import PromptController
from prompt_operator.controllers.readiness import Readiness
from prompt_operator.controllers.signals import Signals
from prompt_operator.controllers.subscribers import Subscribers
from prompt_operator.inventory import Entry, Inventory
from prompt_operator.model import PromptRef, parse_prompt
from prompt_operator.runtime.leader import AlwaysLeader

T0 = datetime(2026, 12, 24, 17, 0, tzinfo=timezone.utc)
REF = PromptRef("ns", "greeter")


def body(template: str = "Hello") -> dict[str, Any]:
    return {
        "metadata": {"name": "greeter", "namespace": "ns", "uid": "u1", "generation": 2},
        "spec": {
            "template": template,
            "schedule": [{"at": "2026-12-24T18:00:00Z", "template": "Evening"}],
        },
    }


def settled_body() -> dict[str, Any]:
    """The status the operator wrote after reconciling ``body()`` at T0."""
    desired = desired_at(parse_prompt(body()), T0)
    revision = desired.rendered.revision
    return {
        **body(),
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}],
            "revision": revision,
            "nextActivation": desired.next_activation,
            "delivery": {"updated": 0, "subscribed": 0},
            "revisions": [history.Record(1, revision, "t", "spec", "created").to_status()],
        },
    }


def controller() -> tuple[PromptController, Inventory]:
    subscribers = Subscribers(None, ())  # type: ignore[arg-type]  # no watch runs
    config = parse_config([])
    delivery = Delivery(subscribers, Signals(subscribers, config), Readiness(None), config)  # type: ignore[arg-type]
    inventory = Inventory(None, ())  # type: ignore[arg-type]
    inventory.synced.set()
    prompts = PromptController(
        None,  # type: ignore[arg-type]  # intake never calls the API server
        inventory,
        delivery,
        Readiness(None),  # type: ignore[arg-type]
        AlwaysLeader(),
        clock=lambda: T0,
    )
    return prompts, inventory


def test_a_settled_prompt_queues_nothing_but_a_look_at_its_next_schedule_entry() -> None:
    async def scenario() -> None:
        prompts, inventory = controller()
        settled = settled_body()
        prompt = parse_prompt(settled)
        name = objects.configmap_name("greeter", settled["status"]["revision"])
        labels = revision_labels(prompt, 1)
        inventory.record("ns", Entry(name, "greeter", settled["status"]["revision"], 1, labels))
        prompts.submit(settled)
        assert len(prompts.queue) == 0
        due = prompts.queue.due(REF)
        assert due is not None and 3599 < due - time.monotonic() <= 3600  # 18:00, not sooner

    asyncio.run(scenario())


def test_an_edit_or_a_missing_configmap_queues_the_prompt() -> None:
    async def scenario() -> None:
        prompts, _ = controller()
        prompts.submit(settled_body())  # its ConfigMap is not in the inventory
        assert len(prompts.queue) == 1
        edited = {**settled_body(), "spec": body("Hi")["spec"]}
        prompts.submit(edited)
        assert len(prompts.queue) == 1  # coalesced: one reconcile of the latest body

    asyncio.run(scenario())


def test_peers_of_a_key_are_looked_at_again_when_its_owner_leaves() -> None:
    async def scenario() -> None:
        prompts, _ = controller()
        first = {**body(), "metadata": {**body()["metadata"], "creationTimestamp": "1"}}
        other = {
            **body(),
            "metadata": {"name": "other", "namespace": "ns", "uid": "u2", "creationTimestamp": "2"},
            "spec": {"template": "x", "key": "greeter"},
        }
        prompts.submit(first)
        prompts.submit(other)
        while len(prompts.queue):
            prompts.queue.done(await prompts.queue.get())
        prompts.submit_deleted(first)
        got = {await prompts.queue.get() for _ in range(2)}
        assert got == {REF, PromptRef("ns", "other")}

    asyncio.run(scenario())


def test_the_next_look_is_never_before_now_even_right_at_an_entry() -> None:
    desired = desired_at(parse_prompt(body()), T0 + timedelta(hours=1) - timedelta(microseconds=1))
    seconds = desired.seconds_to_next_entry()
    assert seconds is not None and 0 < seconds <= 0.001
