"""The operator's signing keys (Ed25519), for signals that carry a revision.

- ``keyset``: pure: the keys, which one signs, rotation with an overlap, what
  is published, and the Secret's ``keys.json``;
- ``store``: ``KeyStore``, kept by every replica: reads the Secret in the
  operator's namespace and signs; the leader creates and rotates it;
- ``publish``: ``KeysPublisher``: the public keys, in one ConfigMap per app
  namespace (``prompt_contract.signing.KEYS_CONFIGMAP``).

``prompt-operator signing-keys status | rotate`` is ``..signing_cli``.

The wire format (what is signed, how a sidecar checks it) is
``prompt_contract.signing``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import OperatorConfig
from ..runtime.client import KubeApi
from ..runtime.leader import Leadership
from .publish import KeysPublisher
from .store import KeyStore


@dataclass(frozen=True)
class SigningKeys:
    """What the signal path is given: the store signs, the publisher publishes."""

    store: KeyStore
    publisher: KeysPublisher


def signing_keys(api: KubeApi, leader: Leadership, config: OperatorConfig) -> SigningKeys | None:
    """The store and publisher for ``config`` (None: --signing-secret is empty).
    Their ``run()`` loops are the caller's to start."""
    if not config.signing_secret:
        return None
    store = KeyStore(
        api,
        config.lease.namespace,
        config.signing_secret,
        leader,
        rotate_after=config.signing_rotate_after,
    )
    return SigningKeys(store, KeysPublisher(api, store, leader))


__all__ = ["KeyStore", "KeysPublisher", "SigningKeys", "signing_keys"]
