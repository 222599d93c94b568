"""The signing key set: which key signs, rotation with an overlap, pruning, what
is published, and the Secret's keys.json (a garbled one refused, saying what)."""

from __future__ import annotations

import base64
import json

import pytest
from nacl.signing import VerifyKey

from prompt_contract import signing
from prompt_operator.signing import keyset
from prompt_operator.signing.keyset import KeysetError

T0 = 1_800_000_000
HOUR = 3600


def seed(n: int) -> bytes:
    return bytes([n]) * 32


def test_a_new_key_is_named_by_its_public_key() -> None:
    key = keyset.new_key(T0, seed(1))
    assert key.kid == signing.key_id(key.public_key)
    assert key.created == T0 and key.retire_at is None
    assert "seed" not in repr(key) and repr(seed(1)) not in repr(key)


def test_the_newest_key_not_retired_signs() -> None:
    keys = [keyset.new_key(T0, seed(1))]
    assert keyset.current(keys, T0) == keys[0]
    rotated = keyset.rotate(keys, T0 + 10, HOUR, seed=seed(2))
    assert keyset.current(rotated, T0 + 10) == rotated[1]
    assert keyset.current([], T0) is None


def test_rotation_retires_older_keys_after_the_overlap() -> None:
    keys = keyset.rotate([keyset.new_key(T0, seed(1))], T0 + 100, HOUR, seed=seed(2))
    old, new = keys
    assert old.retire_at == T0 + 100 + HOUR and new.retire_at is None
    assert not old.retired(T0 + 100 + HOUR - 1) and old.retired(T0 + 100 + HOUR)


def test_a_second_rotation_never_extends_a_retire_time() -> None:
    keys = keyset.rotate([keyset.new_key(T0, seed(1))], T0, keyset.MIN_OVERLAP_SECONDS)
    again = keyset.rotate(keys, T0 + 10, 5 * HOUR, seed=seed(3))
    assert again[0].retire_at == T0 + keyset.MIN_OVERLAP_SECONDS  # kept the earlier one
    assert again[1].retire_at == T0 + 10 + 5 * HOUR
    assert keyset.current(again, T0 + 10) == again[2]


def test_an_overlap_shorter_than_a_signals_validity_is_refused() -> None:
    shortest = signing.VALIDITY_SECONDS + signing.MAX_CLOCK_SKEW_SECONDS
    keys = [keyset.new_key(T0, seed(1))]
    with pytest.raises(KeysetError, match=f"at least {shortest} s"):
        keyset.rotate(keys, T0, shortest - 1)
    assert len(keyset.rotate(keys, T0, shortest)) == 2


def test_revoke_retires_every_older_key_at_once() -> None:
    keys = keyset.revoke([keyset.new_key(T0, seed(1))], T0 + 5, seed=seed(2))
    assert keys[0].retired(T0 + 5) and keyset.current(keys, T0 + 5) == keys[1]


def test_prune_drops_keys_retired_for_a_day() -> None:
    keys = keyset.rotate([keyset.new_key(T0, seed(1))], T0, HOUR, seed=seed(2))
    retired = T0 + HOUR
    assert keyset.prune(keys, retired + keyset.PRUNE_AFTER_SECONDS - 1) == keys
    assert keyset.prune(keys, retired + keyset.PRUNE_AFTER_SECONDS) == keys[1:]


def test_rotation_is_due_when_the_current_key_is_old_or_missing() -> None:
    keys = [keyset.new_key(T0, seed(1))]
    assert not keyset.due_for_rotation(keys, T0 + 29 * 86400, 30 * 86400)
    assert keyset.due_for_rotation(keys, T0 + 30 * 86400, 30 * 86400)
    assert not keyset.due_for_rotation(keys, T0 + 900 * 86400, 0)  # 0: never
    assert keyset.due_for_rotation(keyset.revoke(keys, T0)[:1], T0, 0)  # all retired


def test_published_keys_are_newest_first_at_most_max_keys_and_parse_back() -> None:
    keys = [keyset.new_key(T0, seed(1))]
    for n in range(2, 12):
        keys = keyset.rotate(keys, T0 + n, 10 * HOUR, seed=seed(n))
    listed = keyset.published(keys, T0 + 20)
    assert len(listed) == signing.MAX_KEYS
    assert listed[0].kid == keyset.current(keys, T0 + 20).kid  # type: ignore[union-attr]
    assert listed[1].retire_at == T0 + 11 + 10 * HOUR
    parsed = signing.parse_keys(
        {
            "metadata": {"labels": {"prompts.dev/managed-by": "prompt-operator"}},
            "data": signing.keys_data(listed),
        }
    )
    assert isinstance(parsed, dict) and set(parsed) == {k.kid for k in listed}


def test_a_signature_verifies_with_the_published_key() -> None:
    from nacl.signing import SigningKey

    key = keyset.new_key(T0, seed(7))
    message = signing.signed_message(b'{"v":1}')
    signature = SigningKey(key.seed).sign(message).signature
    (public,) = keyset.published([key], T0)
    VerifyKey(public.key).verify(message, signature)


def test_the_secret_round_trips() -> None:
    keys = keyset.rotate([keyset.new_key(T0, seed(1))], T0, HOUR, seed=seed(2))
    secret = keyset.secret_body("prompt-system", "prompt-operator-signing-keys", keys)
    assert keyset.parse_secret(secret) == keys
    assert secret["metadata"]["labels"] == {"prompts.dev/managed-by": "prompt-operator"}


def _secret(data: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"namespace": "ops", "name": "keys"}, "data": data}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _listed(**item: object) -> str:
    good = {"kid": keyset.new_key(T0, seed(1)).kid, "seed": base64.b64encode(seed(1)).decode()}
    return json.dumps({"version": 1, "keys": [{**good, "created": T0, **item}]})


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "has no data.keys.json"),
        ({"keys.json": "***"}, "not base64"),
        ({"keys.json": _b64("{nope")}, "not JSON"),
        ({"keys.json": _b64('{"keys": []}')}, '"version": 1'),
        ({"keys.json": _b64('{"version": 1, "keys": []}')}, 'list 1 to 64 "keys"'),
        ({"keys.json": _b64(_listed(seed="c2hvcnQ="))}, '"seed" must be 32 bytes'),
        ({"keys.json": _b64(_listed(kid="0000"))}, '"kid" is not the id of its key'),
        ({"keys.json": _b64(_listed(created="yesterday"))}, "must be Unix seconds"),
    ],
)
def test_a_garbled_secret_is_refused_saying_what_and_how_to_recover(
    data: dict[str, str], says: str
) -> None:
    with pytest.raises(KeysetError) as refused:
        keyset.parse_secret(_secret(data))
    message = str(refused.value)
    assert says in message and message.startswith("Secret ops/keys")
    assert "delete it and the operator creates new keys" in message


def test_one_key_listed_twice_is_refused() -> None:
    one = json.loads(_listed())["keys"][0]
    text = json.dumps({"version": 1, "keys": [one, one]})
    with pytest.raises(KeysetError, match="one key twice"):
        keyset.parse_secret(_secret({"keys.json": _b64(text)}))


# -- the publisher's and the command's pure parts --------------------------------------


def test_a_keys_configmap_is_replaced_unless_it_is_exactly_ours() -> None:
    from prompt_operator.signing import publish

    data = signing.keys_data(keyset.published([keyset.new_key(T0, seed(1))], T0))
    ours = publish.configmap_body("team-a", data)
    assert not publish.needs_replacing(ours, data)
    unlabelled = {**ours, "metadata": {"name": signing.KEYS_CONFIGMAP}}
    owned = {**ours, "metadata": {**ours["metadata"], "ownerReferences": [{"uid": "u"}]}}
    for found in (unlabelled, owned, {**ours, "data": {}}):
        assert publish.needs_replacing(found, data)


def test_the_replacement_patch_drops_other_keys_and_owners_at_the_version_read() -> None:
    from prompt_operator.signing import publish

    data = {"keys.json": "{}"}
    found = {"metadata": {"resourceVersion": "7"}, "data": {"extra": "x", "keys.json": "old"}}
    patch = publish.replacement_patch(found, data)
    assert patch["metadata"] == {
        "resourceVersion": "7",
        "labels": publish.LABELS,
        "ownerReferences": None,
    }
    assert patch["data"] == {"extra": None, "keys.json": "{}"} and patch["binaryData"] is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900), ("15m", 900), ("1h", 3600), ("2d", 172800), (" 30s", 30)]
)
def test_durations_of_the_command(text: str, seconds: int) -> None:
    from prompt_operator.signing_cli import parse_duration

    assert parse_duration(text) == seconds


def test_the_status_says_which_key_signs_and_when_the_others_retire() -> None:
    from prompt_operator.signing_cli import status_text

    keys = keyset.rotate([keyset.new_key(T0, seed(1))], T0 + 10, HOUR, seed=seed(2))
    lines = status_text("ops/keys", keys, T0 + 20).splitlines()
    assert lines[0] == "Secret ops/keys: 2 keys"
    assert lines[2].startswith(keys[1].kid) and lines[2].endswith("current: signs")
    assert "2027-01-15T09:00:10Z" in lines[3] and "retiring" in lines[3]
    later = status_text("ops/keys", keyset.revoke(keys, T0 + 30), T0 + 40)
    assert "retired: verifies nothing" in later
