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

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import OperatorConfig
from ..runtime.client import KubeApi
from ..runtime.leader import Leadership
from .publish import KeysPublisher
from .store import KeyStore


@dataclass(frozen=True)
class SigningKeys:
    """What the signal path is given (``controllers.carry.SigningKeys``): the
    store signs, the publisher publishes."""

    store: KeyStore
    publisher: KeysPublisher
    _publishing: set[asyncio.Task[bool]] = field(default_factory=set)

    def signer(self) -> tuple[str, Callable[[bytes], bytes]] | None:
        key = self.store.current()
        if key is None:
            return None
        kid = key.kid

        def sign(message: bytes) -> bytes:
            signature = self.store.sign_with(kid, message)
            if signature is None:  # retired between the two calls: signed next time
                raise LookupError(f"signing key {kid} is gone")
            return signature

        return kid, sign

    def published(self, namespace: str) -> bool:
        return self.publisher.ready(namespace)

    def publish(self, namespace: str) -> None:
        task = asyncio.get_running_loop().create_task(self.publisher.ensure(namespace))
        self._publishing.add(task)  # kept until done: the loop holds tasks weakly
        task.add_done_callback(self._publishing.discard)


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
