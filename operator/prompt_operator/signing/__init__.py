"""The operator's signing keys (Ed25519), for signals that carry a revision.

- ``keyset``: pure: the keys, which one signs, rotation with an overlap, what
  is published, and the Secret's ``keys.json``;
- ``store``: ``KeyStore``, kept by every replica: reads the Secret in the
  operator's namespace and signs; the leader creates and rotates it;
- ``publish``: ``KeysPublisher``: the public keys, in one ConfigMap per app
  namespace (``prompt_contract.signing.KEYS_CONFIGMAP``);
- ``command``: ``prompt-operator signing-keys status | rotate``.

The wire format (what is signed, how a sidecar checks it) is
``prompt_contract.signing``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from .publish import KeysPublisher
from .store import KeyStore


@dataclass(frozen=True)
class SigningKeys:
    """What the signal path is given: the store signs, the publisher publishes."""

    store: KeyStore
    publisher: KeysPublisher


__all__ = ["KeyStore", "KeysPublisher", "SigningKeys"]
