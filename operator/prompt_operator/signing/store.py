"""``KeyStore``: the signing keys every replica reads, and the leader keeps.

Every replica reads the Secret at start and every ``REFRESH_SECONDS``, so a
standby that becomes the leader, or a restarted operator, signs with the key
the Secret holds now. Only the leader writes it: it creates the Secret when it
is missing (a 409 means another replica did: read that one), rotates it when
the current key is older than ``--signing-rotate-after`` and prunes keys
retired long ago. Each write replaces the Secret at the resourceVersion read,
so of two writers one wins and the other reads the winner's keys.

Without usable keys (no Secret yet, RBAC refuses it, a garbled Secret) ``sign``
answers None and signals go unsigned, which the sidecar treats as hints. That
is logged once per cause, never per signal. A garbled Secret is never
overwritten: its keys may still be wanted; the log says how to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from nacl.signing import SigningKey as NaclSigningKey

from ..runtime.client import KubeApi, object_path
from ..runtime.errors import ApiError, Conflict
from ..runtime.leader import Leadership
from . import keyset
from .keyset import KeysetError, SigningKey

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0

Secret = dict[str, Any]


class Unusable(enum.Enum):
    MISSING = "missing"
    GARBLED = "garbled"


MISSING, GARBLED = Unusable.MISSING, Unusable.GARBLED


def replacement(secret: Secret, keys: Sequence[SigningKey]) -> Secret:
    """``secret`` holding ``keys``: its metadata (resourceVersion included, so the
    write is a compare-and-swap) with our label added."""
    body = keyset.secret_body(str(secret["metadata"]["namespace"]), "", keys)
    meta = {k: v for k, v in secret["metadata"].items() if k != "managedFields"}
    meta["labels"] = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
    return {**body, "metadata": meta}


class KeyStore:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        leader: Leadership,
        *,
        rotate_after: float,
        overlap_seconds: int = keyset.DEFAULT_OVERLAP_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api  # fenced: a standby's writes are refused before they are sent
        self._path = object_path("v1", "secrets", namespace, name)
        self._collection = object_path("v1", "secrets", namespace)
        self.namespace, self.name = namespace, name
        self.where = f"{namespace}/{name}"
        self._leader = leader
        self._rotate_after = rotate_after
        self._overlap = overlap_seconds
        self._refresh = refresh_seconds
        self._clock = clock
        self._keys: tuple[SigningKey, ...] = ()
        self._signers: dict[str, NaclSigningKey] = {}
        self._problem: str | None = None  # why there are no keys (logged once per cause)
        self._changed: list[Callable[[], None]] = []
        self.loaded = asyncio.Event()  # set after the first read, with keys or not

    # -- what the signal path calls --------------------------------------------------

    def keys(self) -> tuple[SigningKey, ...]:
        return self._keys

    def current(self) -> SigningKey | None:
        return keyset.current(self._keys, self._clock())

    def sign(self, message: bytes) -> tuple[str, bytes] | None:
        """(kid, 64-byte Ed25519 signature) of ``message`` with the current key,
        or None when there is none (the signal then goes unsigned)."""
        key = self.current()
        if key is None:
            return None
        return key.kid, self._signature(key, message)

    def sign_with(self, kid: str, message: bytes) -> bytes | None:
        """The signature of ``message`` by key ``kid`` (the one ``current()``
        named when the message, which holds the kid, was built), or None when
        that key is gone or retired since."""
        now = self._clock()
        for key in self._keys:
            if key.kid == kid and not key.retired(now):
                return self._signature(key, message)
        return None

    def _signature(self, key: SigningKey, message: bytes) -> bytes:
        signer = self._signers.get(key.kid)
        if signer is None:
            signer = self._signers[key.kid] = NaclSigningKey(key.seed)
        return signer.sign(message).signature

    @property
    def problem(self) -> str | None:
        """What went wrong at the last read (None: nothing)."""
        return self._problem

    def add_changed_handler(self, on_changed: Callable[[], None]) -> None:
        """Call ``on_changed()`` whenever the key set changes (the publisher republishes)."""
        self._changed.append(on_changed)

    # -- reading and keeping the Secret ----------------------------------------------

    async def run(self) -> None:
        while True:
            with contextlib.suppress(ApiError):  # refresh logs; the next round tries again
                await self.refresh()
            self.loaded.set()
            await self._pause()

    async def _pause(self) -> None:
        """Until the next read: the refresh period, or less for a standby that
        becomes the leader (it creates a missing Secret at once)."""
        if self._leader.leading.is_set():
            await asyncio.sleep(self._refresh)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._leader.leading.wait(), self._refresh)

    async def refresh(self) -> None:
        """Read the Secret; as the leader, create, rotate or prune it as due."""
        for _ in range(3):  # a conflict means another replica wrote first: read again
            read = await self._read()
            if read is GARBLED:
                return
            if not self._leading():
                if read is MISSING:
                    self._lose(f"Secret {self.where} does not exist yet (the leader creates it)")
                return
            try:
                await self._keep(None if isinstance(read, Unusable) else read)
                return
            except Conflict:
                continue
            except ApiError as exc:
                if read is MISSING:
                    self._lose(f"cannot create Secret {self.where}: {exc}")
                raise

    async def _read(self) -> Secret | Unusable:
        try:
            secret = await self._api.get(self._path)
        except ApiError as exc:
            # Kept: the keys read last are still the Secret's, most likely.
            self._log_once(f"cannot read Secret {self.where}: {exc}")
            raise
        if secret is None:
            return MISSING
        try:
            keys = keyset.parse_secret(secret)
        except KeysetError as exc:
            self._lose(str(exc), level=logging.ERROR)
            return GARBLED
        self._use(keys)
        return secret

    async def _keep(self, secret: Secret | None) -> None:
        """The leader's part: create a missing Secret, rotate and prune."""
        now = self._clock()
        if secret is None:
            keys = [keyset.new_key(now)]
            body = keyset.secret_body(self.namespace, self.name, keys)
            await self._api.request("POST", self._collection, body=body)
            logger.info(
                "created Secret %s/%s with signing key %s", self.namespace, self.name, keys[0].kid
            )
            self._use(keys)
            return
        wanted = keyset.prune(self._keys, now)
        if keyset.due_for_rotation(wanted, now, self._rotate_after):
            wanted = keyset.rotate(wanted, now, self._overlap)
            logger.info(
                "rotating the signing key to %s; older keys verify for %d s more",
                wanted[-1].kid,
                self._overlap,
            )
        if wanted != list(self._keys):
            await self.replace(secret, wanted)

    async def replace(self, secret: Secret, keys: Sequence[SigningKey]) -> None:
        """Write ``keys`` over ``secret``, at the resourceVersion it was read at
        (``Conflict`` when someone wrote it since)."""
        await self._api.request("PUT", self._path, body=replacement(secret, keys))
        self._use(keys)

    def _leading(self) -> bool:
        return self._leader.leading.is_set() and self._leader.valid()

    def _use(self, keys: Sequence[SigningKey]) -> None:
        if self._problem is not None:
            logger.info(
                "signing keys of Secret %s/%s in use: signals are signed again",
                self.namespace,
                self.name,
            )
        self._problem = None
        if tuple(keys) == self._keys:
            return
        self._keys = tuple(keys)
        self._signers = {k: s for k, s in self._signers.items() if k in {x.kid for x in keys}}
        for handler in self._changed:
            handler()

    def _log_once(self, problem: str, level: int = logging.WARNING) -> None:
        if problem != self._problem:
            then = (
                "signing with the keys read last"
                if self._keys
                else "signals go unsigned (sidecars read the API) meanwhile"
            )
            logger.log(level, "%s; %s", problem, then)
        self._problem = problem

    def _lose(self, problem: str, level: int = logging.WARNING) -> None:
        """No usable keys: log why once, and sign nothing until they are back."""
        had = bool(self._keys)
        self._keys, self._signers = (), {}
        self._log_once(problem, level)
        if had:
            for handler in self._changed:
                handler()
