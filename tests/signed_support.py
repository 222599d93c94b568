"""Signed signal entries as the operator makes them, for tests of every layer:
a real Ed25519 key (PyNaCl), a revision ConfigMap in the operator's format,
and the entry ``controllers.carry`` would send for it (``signing.claims_for``
and ``signing.carry``), with any claim replaced to build an attack."""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from prompt_contract import objects, signals, signing


def revision_configmap(
    namespace: str,
    prompt: str,
    number: int,
    uid: str = "uid-1",
    text: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    """Revision ``r<number>`` of Prompt ``prompt`` as the operator writes it."""
    revision = f"r{number}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name(prompt, revision),
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                objects.REVISION_NUMBER_LABEL: str(number),
                objects.PROMPT_UID_LABEL: uid,
            },
            "annotations": {
                objects.PROMPT_ANNOTATION: prompt,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: prompt,
            },
        },
        "immutable": True,
        "data": {
            objects.TEXT_DATA_KEY: f"text {number}" if text is None else text,
            objects.METADATA_DATA_KEY: "{}",
        },
    }


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """``signing.Verify`` with PyNaCl, as the sidecar's ``KeyRing`` does it."""
    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        return False
    return True


@dataclasses.dataclass
class OperatorKey:
    """One of the operator's signing keys."""

    secret: SigningKey = dataclasses.field(default_factory=SigningKey.generate)
    retire_at: int | None = None

    @property
    def public(self) -> signing.PublicKey:
        raw = bytes(self.secret.verify_key)
        return signing.PublicKey(signing.key_id(raw), raw, self.retire_at)

    @property
    def kid(self) -> str:
        return self.public.kid

    def carried(
        self,
        configmap: dict[str, Any],
        /,
        *,
        now: float | None = None,
        content: bytes | None = None,
        **claims: Any,
    ) -> signing.Carried:
        """The signed part the operator sends for ``configmap``; ``claims`` replace
        what is signed (an attacker holding the key), ``content`` what is carried
        after signing (an attacker without it)."""
        now = time.time() if now is None else now
        genuine = signing.content_bytes(configmap)
        made = signing.claims_for(configmap, genuine, self.kid, now)
        assert made is not None, "not a revision ConfigMap"
        made = dataclasses.replace(made, **claims)
        signature = self.secret.sign(signing.signed_message(made.encode())).signature
        return signing.carry(made, signature, genuine if content is None else content)

    def entry(self, configmap: dict[str, Any], /, **kwargs: Any) -> bytes:
        """The whole signal entry (``signals.encode_entry``) for ``configmap``."""
        annotations = configmap["metadata"]["annotations"]
        return signals.encode_entry(
            annotations[objects.PROMPT_ANNOTATION],
            annotations[objects.REVISION_ANNOTATION],
            self.carried(configmap, **kwargs),
        )


def keys_configmap(namespace: str, *keys: signing.PublicKey) -> dict[str, Any]:
    """The keys ConfigMap the operator publishes in ``namespace``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": signing.KEYS_CONFIGMAP,
            "namespace": namespace,
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                signing.KEYS_LABEL: "true",
            },
        },
        "data": signing.keys_data(list(keys)),
    }


def flip_bit(text: str, byte: int = 0) -> str:
    """Base64 ``text`` with one bit of its decoded ``byte`` flipped."""
    raw = bytearray(base64.b64decode(text))
    raw[byte] ^= 1
    return base64.b64encode(bytes(raw)).decode()
