"""Which signal entries carry a signed revision (``controllers.carry``,
``Signals``): the operator signs each revision once, keeps only the last two per
Prompt, and sends the text only to pods that already serve that Prompt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from prompt_contract import signals, signing
from prompt_operator.config import parse_config
from prompt_operator.controllers.carry import SignedRevisions
from prompt_operator.controllers.signals import Signals
from prompt_operator.controllers.subscribers import Subscriber, Subscribers, subscriber_from_pod
from tests.signed_support import OperatorKey, revision_configmap, verify

NS = "ns"
NOW = 1_800_000_000.0


class Keys:
    """The operator's key store, reduced to one key published everywhere."""

    def __init__(self, key: OperatorKey) -> None:
        self.key = key
        self.signatures = 0

    def signer(self) -> tuple[str, Callable[[bytes], bytes]]:
        def sign(message: bytes) -> bytes:
            self.signatures += 1
            return bytes(self.key.secret.sign(message).signature)

        return self.key.kid, sign

    def published(self, namespace: str) -> bool:
        return True

    def publish(self, namespace: str) -> None:
        raise AssertionError("already published")


def carried_by(body: bytes) -> dict[str, signing.Carried]:
    return signals.parse_signal_carrying(body)[1]


def test_a_revision_is_signed_once_and_is_what_a_get_returns() -> None:
    key = OperatorKey()
    keys = Keys(key)
    revisions = SignedRevisions(keys, clock=lambda: NOW)
    cm = revision_configmap(NS, "p", 2)
    revisions.written(cm)
    first = revisions.entry(NS, "p", "r2")
    assert revisions.entry(NS, "p", "r2") is first and keys.signatures == 1
    carried = carried_by(signals.join_entries([first]))["p"]
    checked = signing.check("p", "r2", carried, {key.kid: key.public}, NS, NOW, verify)
    assert checked == signing.carried_configmap(cm)


def test_only_the_last_two_revisions_of_a_prompt_are_kept() -> None:
    revisions = SignedRevisions(Keys(OperatorKey()), clock=lambda: NOW)
    for number in (1, 2, 3):
        revisions.written(revision_configmap(NS, "p", number))
    assert revisions.entry(NS, "p", "r1") == signals.encode_entry("p", "r1")  # a hint
    assert "p" in carried_by(signals.join_entries([revisions.entry(NS, "p", "r2")]))


def test_the_last_two_revisions_are_held_for_the_history_summary() -> None:
    # Without a key too: the summary of an edit reads the revision before it here.
    revisions = SignedRevisions(None, clock=lambda: NOW)
    for number in (1, 2, 3):
        revisions.written(revision_configmap(NS, "p", number))
    revisions.written(revision_configmap(NS, "big", 1, text="x" * signing.MAX_CARRIED_BYTES))
    assert revisions.configmap(NS, "p", "r2") == signing.carried_configmap(
        revision_configmap(NS, "p", 2)
    )
    assert revisions.configmap(NS, "p", "r1") is None  # no longer held: a GET
    assert revisions.configmap(NS, "big", "r1") is None  # larger than a signal carries
    assert revisions.configmap("other", "p", "r3") is None
    revisions.forget(NS, "p")
    assert revisions.configmap(NS, "p", "r3") is None


class Recording(Signals):
    """Signals whose pod answers every signal and shows the bodies it got."""

    bodies: list[bytes]

    async def _signal_once(
        self, pod: Subscriber, batch: Mapping[str, str], body: bytes
    ) -> dict[str, str | None]:
        self.bodies.append(body)
        return dict(batch)


def test_only_prompts_a_pod_already_serves_carry_their_text() -> None:
    subscribers = Subscribers(None, ())  # type: ignore[arg-type]  # no watch runs
    revisions = SignedRevisions(Keys(OperatorKey()), clock=lambda: NOW)
    signals_ = Recording(subscribers, parse_config([]), revisions)
    signals_.bodies = []
    pod = subscriber_from_pod(
        {
            "metadata": {"name": "a", "namespace": NS, "uid": "a", "annotations": {}},
            "spec": {},
            "status": {"podIP": "127.0.0.5", "phase": "Running"},
        }
    )
    assert pod is not None
    subscribers.store(pod)
    for name in ("served", "new"):
        revisions.written(revision_configmap(NS, name, 2))
    signals_.record((NS, "a"), {"served": "r1"})  # it serves "served" at r1, "new" not at all

    async def deliver() -> None:
        signals_.notify((NS, "a"), "served", "r2")
        signals_.notify((NS, "a"), "new", "r2")
        await signals_.deliver((NS, "a"))

    asyncio.run(deliver())
    [body] = signals_.bodies
    assert list(carried_by(body)) == ["served"]
    assert sorted(signals.parse_signal_carrying(body)[0]) == [("new", "r2"), ("served", "r2")]
