"""Which signal entries the sidecar may write without reading the API server.

The operator signs each revision it signals (``prompt_contract.signing``); this
module holds the public keys the namespace's keys ConfigMap publishes and
checks entries against them. An entry it cannot vouch for (no key yet, a
retired key, a bad signature, another namespace, an expired or mismatched
header) is only a hint: the syncer reads that revision as it always did.
"""

from __future__ import annotations

import logging
import threading
import time

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from prompt_contract import signing

from .kubeapi import ApiError, NotFound

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .kubeapi import KubeClient

logger = logging.getLogger(__name__)

# A signal signed with a key the sidecar does not know asks for the keys again,
# at most this often: forged key ids must not become a stream of reads.
KEYS_REFRESH_SECONDS = 10.0


class KeyRing:
    """The public keys this namespace publishes, and the checks that use them.

    Server threads read it while the syncer thread replaces it: the key map is
    swapped whole, never changed in place.
    """

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._keys: Mapping[str, signing.PublicKey] = {}
        self._verifiers: dict[bytes, VerifyKey] = {}
        self._lock = threading.Lock()
        self._wanted = False  # an entry named a key we do not know
        self._asked_at = -KEYS_REFRESH_SECONDS
        self._learned = False

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    @property
    def learned(self) -> bool:
        """Whether the keys were ever read (a signed signal asked for them)."""
        return self._learned

    def load(self, configmap: Mapping[str, Any] | None) -> str | None:
        """Take the keys a keys ConfigMap publishes (None: it does not exist).
        Returns why none are trusted, or None."""
        self._learned = True
        parsed = signing.parse_keys(configmap) if configmap is not None else {}
        if isinstance(parsed, str):
            self._keys = {}
            return parsed
        if set(parsed) != set(self._keys):
            logger.info("signing keys: %s", ", ".join(sorted(parsed)) or "none published")
        self._keys = parsed
        with self._lock:
            self._wanted = False
            self._verifiers = {
                k.key: self._verifiers[k.key] for k in parsed.values() if k.key in self._verifiers
            }
        return None

    def read(self, client: KubeClient) -> None:
        """The operator's public keys, from the namespace's keys ConfigMap. A failed
        read keeps the keys known: signals signed with others are read as hints."""
        try:
            cm: dict[str, Any] | None = client.get_configmap(
                self._namespace, signing.KEYS_CONFIGMAP
            )
        except NotFound:
            cm = None
        except ApiError as exc:
            logger.warning("could not read the signing keys, keeping those known: %s", exc)
            return
        problem = self.load(cm)
        if problem is not None:
            logger.warning("trusting no signing key: %s", problem)

    def refresh_wanted(self, now: float | None = None) -> bool:
        """Whether the syncer should read the keys again now (and note that it does)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self._wanted or now - self._asked_at < KEYS_REFRESH_SECONDS:
                return False
            self._wanted = False
            self._asked_at = now
            return True

    def vouched(
        self, pairs: list[tuple[str, str]], carried: Mapping[str, signing.Carried]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The ConfigMaps signed entries vouch for, by Prompt name, and why the
        others were refused (a ``signing.REFUSALS`` word each)."""
        vouched: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        keys, now = self._keys, time.time()
        for name, revision in pairs:
            entry = carried.get(name)
            if entry is None or not revision:
                continue
            result = signing.check(name, revision, entry, keys, self._namespace, now, self._verify)
            if isinstance(result, str):
                refused[name] = result
            else:
                vouched[name] = result
        if signing.UNKNOWN_KEY in refused.values():
            with self._lock:
                self._wanted = True
        return vouched, refused

    def _verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        with self._lock:
            verifier = self._verifiers.get(public_key)
        if verifier is None:
            verifier = VerifyKey(public_key)
            with self._lock:
                self._verifiers[public_key] = verifier
        try:
            verifier.verify(message, signature)
        except BadSignatureError:
            return False
        return True


# Prompts remembered as removed, at most; the oldest are forgotten first (a
# signed entry expires anyway, signing.VALIDITY_SECONDS after it was signed).
MAX_REMOVED_REMEMBERED = 1024


class Tombstones:
    """Prompts whose file a complete list removed, each with the (uid, revision
    number) it had then: a replayed signed revision no newer than that is not
    written again (only a read tells deleted from new). Syncer thread only."""

    def __init__(self, limit: int = MAX_REMOVED_REMEMBERED) -> None:
        self._limit = limit
        self._held: dict[str, tuple[str, int]] = {}

    def bury(self, prompt: str, uid: str, number: int) -> None:
        self._held.pop(prompt, None)  # re-inserted: the newest is forgotten last
        self._held[prompt] = (uid, number)
        while len(self._held) > self._limit:
            del self._held[next(iter(self._held))]

    def covers(self, prompt: str, uid: object, number: int) -> bool:
        """Whether revision ``number`` of ``prompt`` (uid ``uid``) is no newer than
        the one removed."""
        held_uid, held_number = self._held.get(prompt, ("", 0))
        return uid == held_uid and number <= held_number
