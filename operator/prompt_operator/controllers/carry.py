"""Signal entries that carry a revision, signed once and sent to every pod.

``Revisions`` reports each revision ConfigMap it writes (the API server's
answer, so labels and creation time are what a GET would return); ``Signals``
asks for the entry of a (namespace, Prompt, revision) when it builds a pod's
signal. The entry is signed once per revision and key, and again only when
half its validity is gone, so ten thousand pods cost one signature and one
encoding, not ten thousand. Without a key, with the namespace's public keys
not yet published, or for a revision larger than a signal carries, the entry
is a hint and the sidecar reads the ConfigMap as before.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prompt_contract import objects, signals, signing

logger = logging.getLogger(__name__)

# Revisions remembered per Prompt: the current one and the one before, which a
# signal already queued may still name. A rollback or a rollout step relabels or
# writes its revision, which reports it again; anything older goes as a hint.
KEPT_PER_PROMPT = 2


class SigningKeys(Protocol):
    """What the operator's key store offers the signal path."""

    def signer(self) -> tuple[str, Callable[[bytes], bytes]] | None:
        """The current key's id and a function signing with it (None: no key)."""

    def published(self, namespace: str) -> bool:
        """Whether ``namespace`` holds the current public keys (else: publish them)."""

    def publish(self, namespace: str) -> None:
        """Publish the public keys to ``namespace`` soon (never waits)."""


@dataclass
class _Held:
    # Only what signing needs, not the ConfigMap: with a thousand Prompts the
    # parsed objects would cost the operator megabytes for nothing.
    claims: signing.Claims  # kid and expiry are filled in when it is signed
    content: bytes | None  # None: larger than a signal carries
    entry: bytes = b""  # the signed entry, once made
    kid: str = ""
    signed_at: float = 0.0


class SignedRevisions:
    def __init__(self, keys: SigningKeys | None, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._clock = clock
        self._held: dict[tuple[str, str], dict[str, _Held]] = {}

    def written(self, configmap: Mapping[str, Any]) -> None:
        """A revision ConfigMap as the API server returned it (created or relabelled)."""
        meta = configmap.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        prompt = annotations.get(objects.PROMPT_ANNOTATION)
        revision = annotations.get(objects.REVISION_ANNOTATION)
        namespace = meta.get("namespace")
        if not (isinstance(prompt, str) and isinstance(revision, str) and namespace):
            return
        content = signing.content_bytes(configmap)
        claims = signing.claims_for(configmap, content, kid="", now=0)
        if claims is None:
            logger.warning(
                "revision %s of Prompt %s is not signable; sent as hints", revision, prompt
            )
            return
        held = self._held.setdefault((str(namespace), prompt), {})
        held[revision] = _Held(
            claims, content if len(content) <= signing.MAX_CARRIED_BYTES else None
        )
        while len(held) > KEPT_PER_PROMPT:
            del held[min(held, key=lambda rev: held[rev].claims.number)]

    def forget(self, namespace: str, prompt: str) -> None:
        self._held.pop((namespace, prompt), None)

    def configmap(self, namespace: str, prompt: str, revision: str) -> dict[str, Any] | None:
        """The part of ``revision``'s ConfigMap a sidecar reads (its data and
        annotations included) while it is one of the last two written of the
        Prompt; None when it is not held or larger than a signal carries."""
        held = self._held.get((namespace, prompt), {}).get(revision)
        if held is None or held.content is None:
            return None
        configmap: dict[str, Any] = json.loads(held.content)
        return configmap

    def entry(self, namespace: str, prompt: str, revision: str) -> bytes:
        """The signal entry for ``revision``: signed when it can be, else a hint."""
        held = self._held.get((namespace, prompt), {}).get(revision)
        if held is None or held.content is None or not revision or self._keys is None:
            return signals.encode_entry(prompt, revision)
        if not self._keys.published(namespace):
            self._keys.publish(namespace)
            return signals.encode_entry(prompt, revision)
        now = self._clock()
        signer = self._keys.signer()
        if signer is None:
            return signals.encode_entry(prompt, revision)
        kid, sign = signer
        if held.kid != kid or now - held.signed_at >= signing.RESIGN_AFTER_SECONDS:
            entry = _signed_entry(held, prompt, revision, kid, sign, now)
            if entry is None:
                return signals.encode_entry(prompt, revision)
            held.entry, held.kid, held.signed_at = entry, kid, now
        return held.entry


def _signed_entry(
    held: _Held, prompt: str, revision: str, kid: str, sign: Callable[[bytes], bytes], now: float
) -> bytes | None:
    assert held.content is not None
    claims = dataclasses.replace(held.claims, kid=kid, expires=int(now) + signing.VALIDITY_SECONDS)
    try:
        signature = sign(signing.signed_message(claims.encode()))
    except LookupError:  # the key retired meanwhile
        return None
    return signals.encode_entry(prompt, revision, signing.carry(claims, signature, held.content))
