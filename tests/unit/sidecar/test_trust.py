"""The sidecar's key ring (``prompt_sidecar.trust``) and the syncer's use of it,
with real Ed25519 keys: a genuine signed entry is written without a read;
whatever it refuses is a hint read as before, and only an unknown key asks for
the keys again, at most every ``KEYS_REFRESH_SECONDS``. The API server is the
unit layer's fake (``support.FakeApi``), which counts every read."""

from __future__ import annotations

import dataclasses
import errno
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prompt_cluster.testing import wait_for
from prompt_contract import signals, signing
from prompt_contract.selector import parse_selector
from prompt_contract.writer import FileWriteError, PromptFiles
from prompt_sidecar.server import SidecarServer
from prompt_sidecar.sync import Syncer
from prompt_sidecar.trust import KEYS_REFRESH_SECONDS, KeyRing
from tests.signed_support import OperatorKey, flip_bit, keys_configmap, revision_configmap

from .support import FakeApi, serving

NS = "ns"


@pytest.fixture
def key() -> OperatorKey:
    return OperatorKey()


def ring_with(*keys: signing.PublicKey) -> KeyRing:
    ring = KeyRing(NS)
    assert ring.load(keys_configmap(NS, *keys)) is None
    return ring


def test_a_ring_that_never_read_the_keys_knows_none_and_asks_once(key: OperatorKey) -> None:
    ring = KeyRing(NS)
    cm = revision_configmap(NS, "p", 2)
    assert not ring.learned and not ring.refresh_wanted(now=100.0)  # nobody asked yet
    vouched, refused = ring.vouched([("p", "r2")], {"p": key.carried(cm)})
    assert (vouched, refused) == ({}, {"p": signing.UNKNOWN_KEY})
    assert ring.refresh_wanted(now=100.0)
    assert not ring.refresh_wanted(now=100.0)  # asked: wanted again only by a new refusal
    ring.vouched([("p", "r2")], {"p": key.carried(cm)})
    assert not ring.refresh_wanted(now=100.0 + KEYS_REFRESH_SECONDS - 0.1)  # rate-limited
    assert ring.refresh_wanted(now=100.0 + KEYS_REFRESH_SECONDS)


def test_a_learned_key_vouches_for_its_entries(key: OperatorKey) -> None:
    ring = ring_with(key.public)
    assert ring.learned and ring.kids == [key.kid]
    cm = revision_configmap(NS, "p", 2)
    pairs = [("p", "r2"), ("q", "r3"), ("gone", "")]
    vouched, refused = ring.vouched(pairs, {"p": key.carried(cm), "gone": key.carried(cm)})
    assert vouched == {"p": signing.carried_configmap(cm)}
    assert refused == {}  # "q" carried nothing; "gone" asks for a list, never a write
    assert not ring.refresh_wanted(now=1e9)


def attacks(
    key: OperatorKey, retired: OperatorKey
) -> dict[str, tuple[list[tuple[str, str]], signing.Carried, str]]:
    """Attack -> (the pair signalled, the signed part, the refusal expected)."""
    cm = revision_configmap(NS, "p", 2)
    good = key.carried(cm)
    evil = signing.content_bytes(revision_configmap(NS, "p", 2, text="evil"))
    p2 = [("p", "r2")]
    bad = dataclasses.replace(good, signature=flip_bit(good.signature))
    foreign = OperatorKey().carried(cm, kid=key.kid)
    elsewhere = key.carried(revision_configmap("other", "p", 2))
    stale = key.carried(cm, now=time.time() - signing.VALIDITY_SECONDS - 1)
    return {
        "bad-signature": (p2, bad, signing.BAD_SIGNATURE),
        "foreign-key": (p2, foreign, signing.BAD_SIGNATURE),
        "other-namespace": (p2, elsewhere, signing.OTHER_NAMESPACE),
        "other-prompt": ([("q", "r2")], good, signing.OTHER_PROMPT),
        "older-revision": ([("p", "r1")], good, signing.OTHER_PROMPT),
        "expired": (p2, stale, signing.EXPIRED),
        "hash-mismatch": (p2, key.carried(cm, content=evil), signing.HASH_MISMATCH),
        "retired-key": (p2, retired.carried(cm), signing.RETIRED_KEY),
        "malformed": (p2, dataclasses.replace(good, header="%%"), signing.MALFORMED),
    }


@pytest.mark.parametrize(
    "attack",
    [
        "bad-signature",
        "foreign-key",
        "other-namespace",
        "other-prompt",
        "older-revision",
        "expired",
        "hash-mismatch",
        "retired-key",
        "malformed",
    ],
)
def test_each_attack_is_refused_and_does_not_ask_for_the_keys(
    key: OperatorKey, attack: str
) -> None:
    """Only an unknown key id reads the keys again: a forged signature under a
    known id costs a hint's read, never a keys read."""
    retired = OperatorKey(retire_at=int(time.time()) - 1)
    pairs, carried, refusal = attacks(key, retired)[attack]
    ring = ring_with(key.public, retired.public)
    vouched, refused = ring.vouched(pairs, {pairs[0][0]: carried})
    assert vouched == {} and refused == {pairs[0][0]: refusal}
    assert not ring.refresh_wanted(now=1e9)


def test_an_unlabelled_or_missing_keys_configmap_trusts_no_key(key: OperatorKey) -> None:
    ring = ring_with(key.public)
    squatter = keys_configmap(NS, key.public)
    squatter["metadata"]["labels"] = {}
    assert ring.load(squatter) is not None and ring.kids == []
    ring = ring_with(key.public)
    assert ring.load(None) is None and ring.kids == []
    cm = revision_configmap(NS, "p", 2)
    assert ring.vouched([("p", "r2")], {"p": key.carried(cm)})[1] == {"p": signing.UNKNOWN_KEY}


# -- the syncer: what each costs in reads -----------------------------------------------


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def sidecar(api: FakeApi, tmp_path: Path) -> Iterator[Callable[[], tuple[SidecarServer, Syncer]]]:
    stack: list[Any] = []

    def make() -> tuple[SidecarServer, Syncer]:
        syncer = Syncer(api, PromptFiles(str(tmp_path / "prompts")), NS, parse_selector(""))  # type: ignore[arg-type]
        syncer.start()
        assert syncer.ready.wait(5)
        context = serving(syncer, "app-1")
        stack.append((syncer, context))
        return context.__enter__(), syncer

    yield make
    for syncer, context in stack:
        context.__exit__(None, None, None)
        syncer.stop()


def post(srv: SidecarServer, *entries: bytes) -> dict[str, str | None]:
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=5)  # type: ignore[misc]
    try:
        body = signals.join_entries(entries)
        conn.request("POST", signals.SIGNAL_PATH, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        return signals.parse_signal_response(resp.read())
    finally:
        conn.close()


def read(tmp_path: Path, key: str) -> bytes:
    return (tmp_path / "prompts" / f"{key}.txt").read_bytes()


def test_a_genuine_signed_signal_is_written_without_a_get_once_the_key_is_known(
    api: FakeApi,
    sidecar: Callable[[], tuple[SidecarServer, Syncer]],
    key: OperatorKey,
    tmp_path: Path,
) -> None:
    api.put(keys_configmap(NS, key.public))
    api.put(revision_configmap(NS, "p", 1))
    srv, syncer = sidecar()
    assert api.gets == []  # the keys are read only once a signed signal asks
    # The first signed signal names a key the sidecar does not know: a hint, and the keys.
    api.put(revision_configmap(NS, "p", 2))
    assert post(srv, key.entry(revision_configmap(NS, "p", 2)))["p"] == "r2"
    assert api.gets == [signing.KEYS_CONFIGMAP, "prompt-p-r2"]
    # From then on: no read at all.
    for number in (3, 4):
        cm = revision_configmap(NS, "p", number)
        assert post(srv, key.entry(cm))["p"] == f"r{number}"
        assert read(tmp_path, "p") == f"text {number}".encode()
    assert api.gets == [signing.KEYS_CONFIGMAP, "prompt-p-r2"]
    assert syncer.metrics.files == 1


def test_a_replayed_older_revision_changes_nothing(
    api: FakeApi,
    sidecar: Callable[[], tuple[SidecarServer, Syncer]],
    key: OperatorKey,
    tmp_path: Path,
) -> None:
    api.put(keys_configmap(NS, key.public))
    old, new = revision_configmap(NS, "p", 1), revision_configmap(NS, "p", 2)
    api.put(old)
    srv, _ = sidecar()
    old_entry = key.entry(old)  # captured while r1 was current
    api.put(new)
    post(srv, key.entry(new))  # learns the key (and reads r2 as a hint)
    assert read(tmp_path, "p") == b"text 2"
    gets = len(api.gets)
    assert post(srv, old_entry)["p"] == "r2"
    assert read(tmp_path, "p") == b"text 2"
    assert len(api.gets) == gets  # genuine, older: nothing to write and nothing to read


def test_a_deleted_prompts_signed_revision_is_not_written_again(
    api: FakeApi,
    sidecar: Callable[[], tuple[SidecarServer, Syncer]],
    key: OperatorKey,
    tmp_path: Path,
) -> None:
    api.put(keys_configmap(NS, key.public))
    cm = revision_configmap(NS, "p", 1)
    api.put(cm)
    srv, _ = sidecar()
    captured = key.entry(cm)
    post(srv, captured)  # learns the key
    del api.objects[cm["metadata"]["name"]]
    assert post(srv, signals.encode_entry("p", ""))["p"] is None  # "no longer concerns you"
    assert not (tmp_path / "prompts" / "p.txt").exists()
    gets = len(api.gets)
    assert post(srv, captured)["p"] is None  # replayed: read, found gone, not written
    assert not (tmp_path / "prompts" / "p.txt").exists()
    assert api.gets[gets:] == ["prompt-p-r1"]


def test_a_pod_without_the_tombstone_reads_a_verified_revision_it_does_not_serve(
    api: FakeApi,
    sidecar: Callable[[], tuple[SidecarServer, Syncer]],
    key: OperatorKey,
    tmp_path: Path,
) -> None:
    """A pod started after its Prompt was deleted: a genuine entry proves only that
    the revision existed; it is read (404) and not written."""
    api.put(keys_configmap(NS, key.public))
    captured = key.entry(revision_configmap(NS, "p", 1))  # p deleted since
    srv, syncer = sidecar()
    for _ in range(2):  # the first teaches the key, the second is verified
        assert post(srv, captured)["p"] is None
    assert not (tmp_path / "prompts" / "p.txt").exists()
    assert api.gets == [signing.KEYS_CONFIGMAP, "prompt-p-r1", "prompt-p-r1"]
    assert syncer.keys.kids == [key.kid]


@pytest.fixture
def learned(
    api: FakeApi, sidecar: Callable[[], tuple[SidecarServer, Syncer]], key: OperatorKey
) -> tuple[SidecarServer, Syncer]:
    """A sidecar serving r2 of Prompt p that knows the key (r2 came signed and was
    read as a hint, which taught it the key); later revisions are not in the API."""
    api.put(keys_configmap(NS, key.public))
    api.put(revision_configmap(NS, "p", 1))
    srv, syncer = sidecar()
    api.put(revision_configmap(NS, "p", 2))
    post(srv, key.entry(revision_configmap(NS, "p", 2)))
    assert syncer.keys.kids == [key.kid]
    return srv, syncer


def test_a_verified_revision_is_written_on_the_signals_own_thread(
    learned: tuple[SidecarServer, Syncer], key: OperatorKey, tmp_path: Path
) -> None:
    srv, syncer = learned
    writers: list[str] = []
    show = syncer._disk.show

    def recorded(item: Any) -> Any:
        writers.append(threading.current_thread().name)
        return show(item)

    syncer._disk.show = recorded  # type: ignore[method-assign]
    assert post(srv, key.entry(revision_configmap(NS, "p", 3)))["p"] == "r3"
    assert read(tmp_path, "p") == b"text 3"
    assert writers and "syncer" not in writers


def test_a_verified_revision_waits_for_a_cycle_that_holds_the_directory(
    learned: tuple[SidecarServer, Syncer], key: OperatorKey, tmp_path: Path
) -> None:
    """While the syncer changes the directory, a signed signal is not written beside
    it: it joins the syncer's work, which writes it once the cycle ends."""
    srv, syncer = learned
    answers: list[dict[str, str | None]] = []
    before = syncer._loop.pending.requested
    with syncer._writing:  # what a cycle holds while it reads and writes
        sender = threading.Thread(
            target=lambda: answers.append(post(srv, key.entry(revision_configmap(NS, "p", 3))))
        )
        sender.start()
        wait_for(
            lambda: syncer._loop.pending.requested > before,
            timeout=5,
            message="the signal waiting for the syncer",
        )
        assert read(tmp_path, "p") == b"text 2"
    sender.join(5)
    assert answers == [{"p": "r3"}]
    assert read(tmp_path, "p") == b"text 3"


def test_a_verified_revision_that_fails_to_write_is_retried_by_the_syncer(
    api: FakeApi, learned: tuple[SidecarServer, Syncer], key: OperatorKey, tmp_path: Path
) -> None:
    srv, syncer = learned
    show = syncer._disk.show
    failures: list[str] = []

    def full_once(item: Any) -> Any:
        if not failures:
            failures.append(threading.current_thread().name)
            raise FileWriteError(errno.ENOSPC, "could not stage p.txt: No space left on device")
        return show(item)

    syncer._disk.show = full_once  # type: ignore[method-assign]
    post(srv, key.entry(revision_configmap(NS, "p", 3)))
    wait_for(lambda: read(tmp_path, "p") == b"text 3", message="text 3 written by the syncer")
    assert failures and failures[0] != "syncer"  # failed on the signal's thread, then retried
    assert "prompt-p-r3" not in api.gets  # retried from the signed entry, never read
