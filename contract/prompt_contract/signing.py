"""Signed signals: the operator vouches for a revision so a sidecar can write it
without reading the API server.

A signal entry may carry the revision's ConfigMap (``content``: the JSON of the
part a sidecar reads), a ``header`` naming exactly what it is (``Claims``) and
the operator's Ed25519 signature over that header. The header holds the
content's SHA-256, so the signature covers the text; it is signed once per
revision and sent to every pod, each of which picks its own variant from the
content exactly as from a GET. ``check`` decides whether an entry may be used;
anything it refuses is a hint, read from the API server as before, so a forged
or replayed entry has no more power than an unsigned signal.

What a valid entry proves: the operator's current (or not yet retired) key
said "in namespace N, revision R (number K) of Prompt P (uid U) is this
ConfigMap" before ``expires``. What it does not prove: that R is still the
current revision. The sidecar never lets it go backwards (a revision number no
higher than the one served, or than one it removed, changes nothing), and the
expiry bounds how long a captured entry can be replayed at all.

Public keys live in one ConfigMap per namespace (``KEYS_CONFIGMAP``), labelled
``MANAGED_BY_LABEL`` so the chart's admission policy lets only the operator
write it. Cryptography is passed in (``Verify``): this package needs no
dependency; the sidecar and the operator use PyNaCl.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from . import objects

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    # (public key, message, signature) -> whether the signature is valid
    Verify = Callable[[bytes, bytes, bytes], bool]

# The ConfigMap with the operator's public keys, one per namespace it signals.
KEYS_CONFIGMAP = "prompt-operator-signing-keys"
KEYS_DATA_KEY = "keys.json"
# The keys ConfigMap carries MANAGED_BY_LABEL (so admission guards it) and this
# one, which keeps it out of the sidecars' list of revisions.
KEYS_LABEL = "prompts.dev/signing-keys"
# Domain separation: these bytes never mean anything else signed with the key.
CONTEXT = b"prompts.dev/signed-signal/v1\n"
# A signed entry is good for this long after it was signed; the operator signs
# again once half of it is gone, so a captured entry replays for at most this.
VALIDITY_SECONDS = 600
RESIGN_AFTER_SECONDS = VALIDITY_SECONDS // 2
# Clocks of the operator's and a sidecar's nodes may differ by this much.
MAX_CLOCK_SKEW_SECONDS = 120
# Revisions whose content is larger go as a hint (the sidecar reads them): a
# signal body stays within signals.MAX_SIGNAL_BYTES with room for other entries.
MAX_CARRIED_BYTES = 48 * 1024
KEY_ID_LENGTH = 16
MAX_KEYS = 8  # current, next and retiring keys: a longer list is not the operator's

# Why an entry was not used (a metric label and a log word; never the entry itself).
UNKNOWN_KEY = "unknown-key"
RETIRED_KEY = "retired-key"
BAD_SIGNATURE = "bad-signature"
MALFORMED = "malformed"
OTHER_NAMESPACE = "other-namespace"
OTHER_PROMPT = "other-prompt"  # the header names another Prompt, revision or ConfigMap
EXPIRED = "expired"
HASH_MISMATCH = "hash-mismatch"
REFUSALS = (
    UNKNOWN_KEY,
    RETIRED_KEY,
    BAD_SIGNATURE,
    MALFORMED,
    OTHER_NAMESPACE,
    OTHER_PROMPT,
    EXPIRED,
    HASH_MISMATCH,
)


@dataclass(frozen=True, slots=True)
class Claims:
    """What the operator signs: which revision the content is, where, until when."""

    kid: str  # the key's id (``key_id`` of its public key)
    namespace: str
    prompt: str
    uid: str  # the Prompt object's uid
    revision: str
    number: int
    configmap: str
    sha256: str  # of the content's UTF-8 bytes, hex
    expires: int  # Unix seconds

    def encode(self) -> bytes:
        """The header: canonical JSON, signed as sent (never re-encoded to verify)."""
        return json.dumps(
            {
                "v": 1,
                "kid": self.kid,
                "ns": self.namespace,
                "prompt": self.prompt,
                "uid": self.uid,
                "revision": self.revision,
                "number": self.number,
                "configMap": self.configmap,
                "sha256": self.sha256,
                "expires": self.expires,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Carried:
    """A signal entry's signed part, as on the wire (all strings)."""

    # Base64 all three: the signature covers exact bytes, and a body of base64
    # strings has no braces or commas to count (see signals.parse_signal).
    header: str  # of Claims.encode()
    signature: str  # of the 64-byte Ed25519 signature over signed_message(header)
    content: str  # of content_bytes(...): the ConfigMap's JSON


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str
    key: bytes  # 32 bytes, Ed25519
    retire_at: int | None = None  # Unix seconds after which it verifies nothing


def key_id(public_key: bytes) -> str:
    """A key's id: the start of its SHA-256, so an id names one key only."""
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_LENGTH]


def signed_message(header: bytes) -> bytes:
    return CONTEXT + header


def carried_configmap(configmap: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a revision ConfigMap a sidecar reads, as a GET returns it."""
    meta = configmap.get("metadata") or {}
    kept = ("name", "namespace", "labels", "annotations", "creationTimestamp")
    return {
        "metadata": {k: meta[k] for k in kept if k in meta},
        "data": dict(configmap.get("data") or {}),
    }


def content_bytes(configmap: Mapping[str, Any]) -> bytes:
    """``carried_configmap`` as the JSON a signal carries."""
    text = json.dumps(carried_configmap(configmap), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def claims_for(configmap: Mapping[str, Any], content: bytes, kid: str, now: float) -> Claims | None:
    """The claims for a revision ConfigMap the operator wrote (None: not a revision)."""
    meta = configmap.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    prompt = annotations.get(objects.PROMPT_ANNOTATION)
    revision = annotations.get(objects.REVISION_ANNOTATION)
    number = objects.revision_number_of(configmap)
    if not (isinstance(prompt, str) and isinstance(revision, str) and number > 0):
        return None
    return Claims(
        kid=kid,
        namespace=str(meta.get("namespace") or ""),
        prompt=prompt,
        uid=str(labels.get(objects.PROMPT_UID_LABEL) or ""),
        revision=revision,
        number=number,
        configmap=str(meta.get("name") or ""),
        sha256=hashlib.sha256(content).hexdigest(),
        expires=int(now) + VALIDITY_SECONDS,
    )


def _claims(header: bytes) -> Claims | None:
    try:
        data = json.loads(header)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    strings = ("kid", "ns", "prompt", "uid", "revision", "configMap", "sha256")
    if not all(isinstance(data.get(k), str) for k in strings):
        return None
    number, expires = data.get("number"), data.get("expires")
    if type(number) is not int or type(expires) is not int:
        return None
    return Claims(
        data["kid"],
        data["ns"],
        data["prompt"],
        data["uid"],
        data["revision"],
        number,
        data["configMap"],
        data["sha256"],
        expires,
    )


def _unbase64(text: str, limit: int) -> bytes | None:
    """``text`` decoded, or None when it is not base64 of at most ``limit`` bytes."""

    if len(text) > (limit + 2) // 3 * 4:
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def carry(claims: Claims, signature: bytes, content: bytes) -> Carried:
    """The signed part of a signal entry, as the operator sends it."""

    return Carried(
        base64.b64encode(claims.encode()).decode(),
        base64.b64encode(signature).decode(),
        base64.b64encode(content).decode(),
    )


def check(
    name: str,
    revision: str,
    carried: Carried,
    keys: Mapping[str, PublicKey],
    namespace: str,
    now: float,
    verify: Verify,
) -> dict[str, Any] | str:
    """The ConfigMap a signed entry vouches for, or why it must be read instead
    (one of ``REFUSALS``).

    The signature is checked before anything the header says is believed, and
    the content's hash before it is parsed: whatever an attacker sends costs
    one signature check and at most one SHA-256 of at most a signal's size.
    """
    header = _unbase64(carried.header, 4096)
    signature = _unbase64(carried.signature, 64)
    claims = _claims(header) if header is not None else None
    if header is None or claims is None or signature is None or len(signature) != 64:
        return MALFORMED
    key = keys.get(claims.kid)
    if key is None:
        return UNKNOWN_KEY
    if key.retire_at is not None and now >= key.retire_at:
        return RETIRED_KEY
    if not verify(key.key, signed_message(header), signature):
        return BAD_SIGNATURE
    if claims.namespace != namespace:
        return OTHER_NAMESPACE
    if (
        claims.prompt != name
        or claims.revision != revision
        or claims.configmap != objects.configmap_name(name, revision)
    ):
        return OTHER_PROMPT
    if not now < claims.expires <= now + VALIDITY_SECONDS + MAX_CLOCK_SKEW_SECONDS:
        return EXPIRED
    content = _unbase64(carried.content, MAX_CARRIED_BYTES)
    if content is None:
        return MALFORMED
    if hashlib.sha256(content).hexdigest() != claims.sha256:
        return HASH_MISMATCH
    return _vouched(content, claims)


def _vouched(content: bytes, claims: Claims) -> dict[str, Any] | str:
    """The content, if it is the ConfigMap the claims name (the operator signed
    both, so a difference is a bug of ours, refused all the same)."""
    try:
        cm: dict[str, Any] = json.loads(content)
    except (ValueError, RecursionError):
        return MALFORMED
    meta = cm.get("metadata") if isinstance(cm, dict) else None
    if not isinstance(meta, dict) or not isinstance(cm.get("data"), dict):
        return MALFORMED
    labels = meta.get("labels") or {}
    if (
        meta.get("name") != claims.configmap
        or meta.get("namespace") != claims.namespace
        or not isinstance(labels, dict)
        or labels.get(objects.PROMPT_UID_LABEL) != claims.uid
        or objects.revision_number_of(cm) != claims.number
    ):
        return OTHER_PROMPT
    return cm


# -- the published keys -------------------------------------------------------------


def keys_data(keys: list[PublicKey]) -> dict[str, str]:
    """The keys ConfigMap's data."""

    listed = [
        {"kid": k.kid, "publicKey": base64.b64encode(k.key).decode(), "retireAt": k.retire_at}
        for k in keys
    ]
    return {KEYS_DATA_KEY: json.dumps({"keys": listed}, sort_keys=True, separators=(",", ":"))}


def parse_keys(configmap: Mapping[str, Any]) -> dict[str, PublicKey] | str:
    """The public keys a keys ConfigMap publishes, or why none can be trusted.

    Only a ConfigMap with the managed-by label counts: the admission policy lets
    no one but the operator create one, or put the label on one."""
    meta = configmap.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(objects.MANAGED_BY_LABEL) != objects.MANAGED_BY_VALUE:
        return f"{KEYS_CONFIGMAP} is not labelled {objects.MANAGED_BY_LABEL}"
    try:
        listed = json.loads((configmap.get("data") or {}).get(KEYS_DATA_KEY) or "")["keys"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return f"{KEYS_CONFIGMAP} has no readable {KEYS_DATA_KEY}"
    if not isinstance(listed, list) or len(listed) > MAX_KEYS:
        return f"{KEYS_CONFIGMAP} must list at most {MAX_KEYS} keys"
    keys: dict[str, PublicKey] = {}
    for item in listed:
        key = _public_key(item)
        if key is None:
            return f"{KEYS_CONFIGMAP} lists a key that is not an Ed25519 public key"
        keys[key.kid] = key
    return keys


def _public_key(item: object) -> PublicKey | None:

    if not isinstance(item, dict) or not isinstance(item.get("publicKey"), str):
        return None
    try:
        raw = base64.b64decode(item["publicKey"], validate=True)
    except binascii.Error:
        return None
    retire_at = item.get("retireAt")
    if len(raw) != 32 or item.get("kid") != key_id(raw):
        return None
    if retire_at is not None and type(retire_at) is not int:
        return None
    return PublicKey(key_id(raw), raw, retire_at)
