"""Which Prompt serves which key: the oldest claim in a namespace wins.

Kept from watch events here rather than in a kopf index, whose readiness
toggles wake every waiting worker on every new object (quadratic).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import PromptRef


def key_owner(claims: Iterable[tuple[str, str]]) -> str | None:
    """The Prompt that keeps a key: the oldest, then the first by name."""
    ordered = sorted(claims)
    return ordered[0][1] if ordered else None


class KeyClaims:
    def __init__(self) -> None:
        # (namespace, key) -> {Prompt name: creationTimestamp}
        self._claims: dict[tuple[str, str], dict[str, str]] = {}
        self._keys: dict[PromptRef, str] = {}

    def claim(self, ref: PromptRef, key: str | None, created: str) -> list[PromptRef]:
        """Record that ``ref`` claims ``key`` (None: no key any more). Returns the
        Prompts whose ownership of a key may have changed: look at them again."""
        old = self._keys.get(ref)
        if old == key:
            return []
        affected: list[PromptRef] = []
        if old is not None:
            peers = self._claims.get((ref.namespace, old), {})
            peers.pop(ref.name, None)
            if not peers:
                self._claims.pop((ref.namespace, old), None)
            affected += [PromptRef(ref.namespace, name) for name in peers]
        if key is None:
            self._keys.pop(ref, None)
            return affected
        self._keys[ref] = key
        peers = self._claims.setdefault((ref.namespace, key), {})
        affected += [PromptRef(ref.namespace, name) for name in peers]
        peers[ref.name] = created
        return affected

    def owner(self, namespace: str, key: str) -> str | None:
        claims = self._claims.get((namespace, key)) or {}
        return key_owner((created, name) for name, created in claims.items())
