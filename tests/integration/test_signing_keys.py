"""The operator's signing keys on a real API server: the leader creates the
Secret, a standby signs with the same key, a rotation overlaps, the public keys
are published (and a squatter's ConfigMap replaced), a garbled Secret signs
nothing and is left alone, and the `signing-keys` command."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey

from prompt_cluster.testing import kubectl, kubectl_json, service_account_kubeconfig
from prompt_contract import objects, signing
from prompt_operator import cli
from prompt_operator.runtime.client import KubeApi, object_path
from prompt_operator.runtime.errors import Forbidden
from prompt_operator.runtime.kubeconfig import load
from prompt_operator.runtime.leader import AlwaysLeader
from prompt_operator.signing import KeysPublisher, KeyStore, keyset

from .test_runtime import running, until

pytestmark = pytest.mark.cluster

SECRET = "prompt-operator-signing-keys"
DAY = 86400
T0 = 1_800_000_000


class Standby:
    """Leader election that this replica lost to another: it never leads."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()

    def valid(self) -> bool:
        return False

    def write_budget(self) -> float | None:
        return 0.0

    async def run(self) -> None:
        return None

    async def release(self) -> None:
        return None


class Promotable(Standby):
    """A standby until ``promote()``: then the leader."""

    def valid(self) -> bool:
        return self.leading.is_set()

    def write_budget(self) -> float | None:
        return None

    def promote(self) -> None:
        self.leading.set()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def api_for(kubeconfig: Path, leader: AlwaysLeader | Standby) -> KubeApi:
    """A client fenced as the operator's is: a standby's writes are refused unsent."""
    return KubeApi(load(kubeconfig).credentials(), fence=leader.valid)


def store_for(
    api: KubeApi, namespace: str, leader: AlwaysLeader | Standby, clock: Clock
) -> KeyStore:
    return KeyStore(api, namespace, SECRET, leader, rotate_after=30 * DAY, clock=clock)


def secret_keys(kubeconfig: Path, namespace: str) -> list[keyset.SigningKey]:
    return keyset.parse_secret(kubectl_json(kubeconfig, "-n", namespace, "get", "secret", SECRET))


def published(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(
        kubeconfig, "-n", namespace, "get", "configmap", signing.KEYS_CONFIGMAP
    )
    return found


def verifies(key: keyset.SigningKey, signed: tuple[str, bytes] | None, message: bytes) -> bool:
    assert signed is not None
    kid, signature = signed
    VerifyKey(key.public_key).verify(message, signature)  # raises when it does not
    return kid == key.kid


def test_the_leader_creates_the_keys_and_a_standby_signs_with_the_same_key(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        clock = Clock()
        standby_leader, leader = Standby(), AlwaysLeader()
        async with api_for(kubeconfig, standby_leader) as sapi, api_for(kubeconfig, leader) as lapi:
            standby = store_for(sapi, namespace, standby_leader, clock)
            await standby.refresh()  # no Secret, and a standby creates none
            assert standby.sign(b"m") is None and standby.current() is None
            assert "does not exist" in (standby.problem or "")
            assert await lapi.get(object_path("v1", "secrets", namespace, SECRET)) is None

            active = store_for(lapi, namespace, leader, clock)
            await active.refresh()
            (created,) = secret_keys(kubeconfig, namespace)
            assert active.current() == created and created.created == T0
            assert verifies(created, active.sign(b"revision 1"), b"revision 1")
            signature = active.sign_with(created.kid, b"claims naming the kid")
            assert verifies(created, (created.kid, signature or b""), b"claims naming the kid")
            assert active.sign_with("0123456789abcdef", b"m") is None

            await standby.refresh()
            assert standby.current() == created and standby.problem is None
            assert verifies(created, standby.sign(b"revision 2"), b"revision 2")
            # A restarted leader reads the same key rather than making another.
            again = store_for(lapi, namespace, leader, clock)
            await again.refresh()
            assert secret_keys(kubeconfig, namespace) == [created] == list(again.keys())

    asyncio.run(scenario())


def test_a_standby_that_becomes_the_leader_creates_a_missing_secret_at_once(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        election = Promotable()
        async with api_for(kubeconfig, election) as api:
            store = store_for(api, namespace, election, Clock())  # reads every 30 s
            async with running(store.run()):
                await store.loaded.wait()
                assert store.current() is None
                election.promote()
                await until(lambda: store.current() is not None, 5, "keys, well before 30 s")
            assert secret_keys(kubeconfig, namespace) == list(store.keys())

    asyncio.run(scenario())


def test_a_rotation_overlaps_and_is_published_with_the_old_keys_retire_time(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        clock, leader, standby_leader = Clock(), AlwaysLeader(), Standby()
        async with api_for(kubeconfig, leader) as api, api_for(kubeconfig, standby_leader) as sapi:
            store = store_for(api, namespace, leader, clock)
            await store.refresh()
            old = store.current()
            assert old is not None
            publisher = KeysPublisher(api, store, leader, clock=clock)
            assert not publisher.ready(namespace)
            assert await publisher.ensure(namespace) and publisher.ready(namespace)
            first = signing.parse_keys(published(kubeconfig, namespace))
            assert isinstance(first, dict) and list(first) == [old.kid]

            async with running(publisher.run()):
                clock.now = T0 + 30 * DAY  # the key is due
                await store.refresh()
                new = store.current()
                assert new is not None and new.kid != old.kid
                assert store.sign_with(old.kid, b"m") is not None  # still verifies: overlap
                clock.now = T0 + 30 * DAY + keyset.DEFAULT_OVERLAP_SECONDS
                assert store.sign_with(old.kid, b"m") is None  # retired
                clock.now = T0 + 30 * DAY
                assert not publisher.ready(namespace)  # until republished: hints
                await until(lambda: publisher.ready(namespace), 10, "the new keys published")

            keys = signing.parse_keys(published(kubeconfig, namespace))
            assert isinstance(keys, dict) and list(keys) == [new.kid, old.kid]
            retire_at = T0 + 30 * DAY + keyset.DEFAULT_OVERLAP_SECONDS
            assert keys[old.kid].retire_at == retire_at and keys[new.kid].retire_at is None
            assert [k.kid for k in secret_keys(kubeconfig, namespace)] == [old.kid, new.kid]
            standby = store_for(sapi, namespace, standby_leader, clock)
            await standby.refresh()
            assert standby.current() == new
            # A day after it retired, the old key leaves the Secret.
            clock.now = retire_at + keyset.PRUNE_AFTER_SECONDS
            await store.refresh()
            assert [k.kid for k in secret_keys(kubeconfig, namespace)] == [new.kid]

    asyncio.run(scenario())


def test_the_publisher_replaces_a_keys_configmap_someone_else_created(
    kubeconfig: Path, namespace: str
) -> None:
    squatter = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": signing.KEYS_CONFIGMAP, "labels": {"team": "mallory"}},
        "data": {signing.KEYS_DATA_KEY: '{"keys":[]}', "extra": "x"},
    }
    kubectl(kubeconfig, "-n", namespace, "create", "-f", "-", input=json.dumps(squatter))

    async def scenario() -> None:
        leader = AlwaysLeader()
        async with api_for(kubeconfig, leader) as api:
            store = store_for(api, namespace, leader, Clock())
            await store.refresh()
            publisher = KeysPublisher(api, store, leader)
            assert await publisher.ensure(namespace)
            current = store.current()
            assert current is not None
            found = published(kubeconfig, namespace)
            assert found["data"] == signing.keys_data(keyset.published(store.keys(), T0))
            labels = found["metadata"]["labels"]
            assert labels[objects.MANAGED_BY_LABEL] == objects.MANAGED_BY_VALUE
            assert labels[signing.KEYS_LABEL] == "true"
            assert not found["metadata"].get("ownerReferences")
            keys = signing.parse_keys(found)
            assert isinstance(keys, dict) and list(keys) == [current.kid]
            # A second replica (or a new leader) finds it current: no write.
            before = found["metadata"]["resourceVersion"]
            fresh = KeysPublisher(api, store, leader)
            assert await fresh.ensure(namespace) and fresh.ready(namespace)
            assert published(kubeconfig, namespace)["metadata"]["resourceVersion"] == before

    asyncio.run(scenario())


def test_a_keys_configmap_deleted_by_hand_is_published_again(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        leader = AlwaysLeader()
        async with api_for(kubeconfig, leader) as api:
            store = store_for(api, namespace, leader, Clock())
            await store.refresh()
            publisher = KeysPublisher(api, store, leader, recheck_seconds=0.5)
            assert await publisher.ensure(namespace)
            kubectl(kubeconfig, "-n", namespace, "delete", "cm", signing.KEYS_CONFIGMAP)
            gone = object_path("v1", "configmaps", namespace, signing.KEYS_CONFIGMAP)
            async with running(publisher.run()):
                deadline = asyncio.get_running_loop().time() + 10
                while await api.get(gone) is None:
                    assert asyncio.get_running_loop().time() < deadline, "not published again"
                    await asyncio.sleep(0.1)
            keys = signing.parse_keys(published(kubeconfig, namespace))
            assert isinstance(keys, dict) and list(keys) == [store.current().kid]  # type: ignore[union-attr]

    asyncio.run(scenario())


def garble(kubeconfig: Path, namespace: str, text: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET},
        "data": {keyset.SECRET_DATA_KEY: base64.b64encode(text.encode()).decode()},
    }
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", input=json.dumps(body))


def test_a_garbled_secret_signs_nothing_says_why_once_and_is_left_alone(
    kubeconfig: Path, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    garble(kubeconfig, namespace, '{"version": 1, "keys": [{"kid": "x"}]}')
    before = kubectl_json(kubeconfig, "-n", namespace, "get", "secret", SECRET)

    async def scenario() -> None:
        leader = AlwaysLeader()
        async with api_for(kubeconfig, leader) as api:
            store = store_for(api, namespace, leader, Clock())
            with caplog.at_level(logging.WARNING, logger="prompt_operator.signing.store"):
                await store.refresh()
                await store.refresh()
            assert store.sign(b"m") is None and store.current() is None
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1, errors
            assert f"Secret {namespace}/{SECRET}" in errors[0]
            assert '"seed" must be 32 bytes' in errors[0] and "delete it" in errors[0]
            assert "signals go unsigned" in errors[0]
            # Fixed by hand: signing resumes at the next read.
            kubectl(kubeconfig, "-n", namespace, "delete", "secret", SECRET)
            await store.refresh()
            assert store.sign(b"m") is not None

    asyncio.run(scenario())
    after = kubectl_json(kubeconfig, "-n", namespace, "get", "secret", SECRET)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]  # recreated, not overwritten


def test_without_rights_on_the_secret_nothing_is_signed_and_the_log_says_why(
    kubeconfig: Path, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RBAC refuses the Secret (a chart without its signing Role): signals go unsigned."""
    bare = service_account_kubeconfig(kubeconfig, namespace, "no-rights", tmp_path / "kc")

    async def scenario() -> None:
        leader = AlwaysLeader()
        async with api_for(bare, leader) as api:
            store = store_for(api, namespace, leader, Clock())
            with caplog.at_level(logging.WARNING, logger="prompt_operator.signing.store"):
                for _ in range(2):
                    with pytest.raises(Forbidden):
                        await store.refresh()
            assert store.sign(b"m") is None and store.current() is None
            said = [r.getMessage() for r in caplog.records]
            assert len(said) == 1 and f"cannot read Secret {namespace}/{SECRET}" in said[0]
            assert "signals go unsigned" in said[0]

    asyncio.run(scenario())


def test_the_signing_keys_command_shows_and_rotates_the_keys(
    kubeconfig: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def create() -> None:
        leader = AlwaysLeader()
        async with api_for(kubeconfig, leader) as api:
            await store_for(api, namespace, leader, Clock()).refresh()

    asyncio.run(create())
    (first,) = secret_keys(kubeconfig, namespace)
    where = ["-n", namespace, "--kubeconfig", str(kubeconfig)]
    assert cli.main(["signing-keys", "status", *where]) == 0
    shown = capsys.readouterr().out
    assert first.kid in shown and "current: signs" in shown

    assert cli.main(["signing-keys", "rotate", "--overlap", "5m", *where]) == 1
    assert "at least 720 s" in capsys.readouterr().err
    assert len(secret_keys(kubeconfig, namespace)) == 1

    assert cli.main(["signing-keys", "rotate", "--overlap", "2h", *where]) == 0
    old, new = secret_keys(kubeconfig, namespace)
    assert old.kid == first.kid and old.retire_at is not None and new.retire_at is None
    assert old.retire_at - new.created == 2 * 3600
    out = capsys.readouterr().out
    assert f"{new.kid} signs now" in out and "retiring" in out

    assert cli.main(["signing-keys", "rotate", "--revoke", *where]) == 0
    keys = secret_keys(kubeconfig, namespace)
    assert len(keys) == 3 and all(k.retired(keys[-1].created) for k in keys[:2])
