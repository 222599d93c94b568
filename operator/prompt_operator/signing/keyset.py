"""The operator's signing keys as data: which signs, rotation, what is published.

Pure: keys in, keys out, with the time passed in. A key set is a list, oldest
first; a rotation appends. The newest key that is not retired signs. A
rotation retires every older key at ``now + overlap``, not at once: a signal
signed just before the rotation is good for ``VALIDITY_SECONDS`` and a
sidecar's clock may be ``MAX_CLOCK_SKEW_SECONDS`` behind, so a shorter overlap
would turn entries already sent into hints. A key retired for ``PRUNE_AFTER``
is dropped from the set (until then it stays published with its retire time, so
a sidecar refuses it as retired rather than unknown).

The private part is a 32-byte Ed25519 seed, kept in one Secret in the
operator's namespace as ``keys.json``; ``parse_secret`` refuses a garbled one
with a message that says what is wrong and how to recover.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nacl.signing import SigningKey as NaclSigningKey

from prompt_contract import objects, signing

SECRET_DATA_KEY = "keys.json"
SEED_BYTES = 32
# The shortest overlap that lets everything signed before a rotation verify to its end.
MIN_OVERLAP_SECONDS = signing.VALIDITY_SECONDS + signing.MAX_CLOCK_SKEW_SECONDS
DEFAULT_OVERLAP_SECONDS = 3600
# How long a retired key stays in the set (and published, marked retired).
PRUNE_AFTER_SECONDS = 24 * 3600
# A Secret listing more keys than this is not one the operator wrote.
MAX_STORED_KEYS = 64


class KeysetError(ValueError):
    """A key set that cannot be used, or a change that must not be made."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str  # signing.key_id of the public key
    seed: bytes  # 32 bytes: the Ed25519 private key
    created: int  # Unix seconds
    retire_at: int | None = None  # Unix seconds; from then on it verifies nothing

    def __repr__(self) -> str:  # never the seed, in a log line or a traceback
        return f"SigningKey(kid={self.kid!r}, created={self.created}, retire_at={self.retire_at})"

    @property
    def public_key(self) -> bytes:
        return public_key_of(self.seed)

    def retired(self, now: float) -> bool:
        return self.retire_at is not None and now >= self.retire_at


def public_key_of(seed: bytes) -> bytes:
    return bytes(NaclSigningKey(seed).verify_key)


def new_key(now: float, seed: bytes | None = None) -> SigningKey:
    """A fresh key created at ``now`` (``seed``: for tests; else 32 random bytes)."""
    seed = os.urandom(SEED_BYTES) if seed is None else seed
    if len(seed) != SEED_BYTES:
        raise KeysetError(f"an Ed25519 seed is {SEED_BYTES} bytes, not {len(seed)}")
    return SigningKey(signing.key_id(public_key_of(seed)), seed, int(now))


def current(keys: Sequence[SigningKey], now: float) -> SigningKey | None:
    """The key to sign with: the newest one not retired (None: none left)."""
    for key in reversed(keys):
        if not key.retired(now):
            return key
    return None


def rotate(
    keys: Sequence[SigningKey],
    now: float,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    *,
    seed: bytes | None = None,
) -> list[SigningKey]:
    """``keys`` with a new current key; the older ones retire ``overlap_seconds``
    from ``now`` (or earlier, if they were to already)."""
    if overlap_seconds < MIN_OVERLAP_SECONDS:
        raise KeysetError(
            f"an overlap of {overlap_seconds} s is too short: a signal signed just before "
            f"the rotation is good for {signing.VALIDITY_SECONDS} s and clocks may differ by "
            f"{signing.MAX_CLOCK_SKEW_SECONDS} s, so the old key must verify for at least "
            f"{MIN_OVERLAP_SECONDS} s (to stop trusting it at once, use revoke)"
        )
    until = int(now) + overlap_seconds
    older = [_retire_by(key, until) for key in keys]
    return [*older, new_key(now, seed)]


def revoke(
    keys: Sequence[SigningKey], now: float, *, seed: bytes | None = None
) -> list[SigningKey]:
    """A new current key, every older one retired at ``now``: for a key that may
    have leaked. Entries signed with the old keys and not yet used become hints
    (one bounded read each), nothing worse."""
    return [*(_retire_by(key, int(now)) for key in keys), new_key(now, seed)]


def _retire_by(key: SigningKey, when: int) -> SigningKey:
    if key.retire_at is not None and key.retire_at <= when:
        return key
    return replace(key, retire_at=when)


def prune(keys: Sequence[SigningKey], now: float) -> list[SigningKey]:
    """``keys`` without the ones retired for ``PRUNE_AFTER_SECONDS`` or longer."""
    return [k for k in keys if not _long_retired(k, now)]


def _long_retired(key: SigningKey, now: float) -> bool:
    return key.retire_at is not None and now >= key.retire_at + PRUNE_AFTER_SECONDS


def due_for_rotation(keys: Sequence[SigningKey], now: float, rotate_after: float) -> bool:
    """Whether the current key is older than ``rotate_after`` seconds (0: never)."""
    key = current(keys, now)
    if key is None:
        return True
    return rotate_after > 0 and now - key.created >= rotate_after


def published(keys: Sequence[SigningKey], now: float) -> list[signing.PublicKey]:
    """What the keys ConfigMap lists: the newest ``signing.MAX_KEYS`` keys not
    long retired, newest first, so the current key is always among them."""
    kept = [k for k in reversed(keys) if not _long_retired(k, now)][: signing.MAX_KEYS]
    return [signing.PublicKey(k.kid, k.public_key, k.retire_at) for k in kept]


# -- the Secret ------------------------------------------------------------------------


def encode(keys: Sequence[SigningKey]) -> str:
    """``keys.json``: every key with its seed, oldest first."""
    listed = [
        {
            "kid": k.kid,
            "seed": base64.b64encode(k.seed).decode(),
            "created": k.created,
            "retireAt": k.retire_at,
        }
        for k in keys
    ]
    return json.dumps({"version": 1, "keys": listed}, separators=(",", ":"))


def decode(text: str) -> list[SigningKey]:
    """The keys ``keys.json`` holds; ``KeysetError`` saying what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise KeysetError(f"{SECRET_DATA_KEY} is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise KeysetError(f'{SECRET_DATA_KEY} must be an object with "version": 1')
    listed = data.get("keys")
    if not isinstance(listed, list) or not 0 < len(listed) <= MAX_STORED_KEYS:
        raise KeysetError(f'{SECRET_DATA_KEY} must list 1 to {MAX_STORED_KEYS} "keys"')
    keys = [_key(item, i) for i, item in enumerate(listed)]
    if len({k.kid for k in keys}) != len(keys):
        raise KeysetError(f"{SECRET_DATA_KEY} lists one key twice")
    return keys


def _key(item: object, index: int) -> SigningKey:
    where = f"{SECRET_DATA_KEY}: key {index}"
    if not isinstance(item, dict):
        raise KeysetError(f"{where} is not an object")
    try:
        seed = base64.b64decode(str(item.get("seed", "")), validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != SEED_BYTES:
        raise KeysetError(f'{where}: "seed" must be {SEED_BYTES} bytes, base64')
    created, retire_at = item.get("created"), item.get("retireAt")
    if type(created) is not int or (retire_at is not None and type(retire_at) is not int):
        raise KeysetError(f'{where}: "created" and "retireAt" must be Unix seconds')
    kid = signing.key_id(public_key_of(seed))
    if item.get("kid") != kid:
        raise KeysetError(f'{where}: "kid" is not the id of its key (expected {kid})')
    return SigningKey(kid, seed, created, retire_at)


def secret_body(namespace: str, name: str, keys: Sequence[SigningKey]) -> dict[str, Any]:
    """The Secret holding ``keys`` (for a create; a replace adds resourceVersion)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE},
        },
        "data": {SECRET_DATA_KEY: base64.b64encode(encode(keys).encode()).decode()},
    }


def parse_secret(secret: Mapping[str, Any]) -> list[SigningKey]:
    """The keys a Secret holds; ``KeysetError`` naming the Secret and the fix."""
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace')}/{meta.get('name')}"
    fix = "fix it, or delete it and the operator creates new keys (signals go as hints meanwhile)"
    raw = (secret.get("data") or {}).get(SECRET_DATA_KEY)
    if not isinstance(raw, str):
        raise KeysetError(f"{where} has no data.{SECRET_DATA_KEY}: {fix}")
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise KeysetError(f"{where}: data.{SECRET_DATA_KEY} is not base64 UTF-8: {fix}") from None
    try:
        return decode(text)
    except KeysetError as exc:
        raise KeysetError(f"{where}: {exc}: {fix}") from None
