"""Which A/B variant a pod or a user is served: one function for all sides."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

__all__ = ["choose_variant"]


def choose_variant(unit: str, prompt: str, weights: Iterable[tuple[str, int]]) -> str | None:
    """The variant of ``prompt`` that ``unit`` (a pod name, a user id) is served.

    Weighted rendezvous hashing: each variant scores ``-weight / ln(u)`` with
    ``u`` a uniform hash of (prompt, unit, variant), and the best score wins.
    So a variant is chosen with probability proportional to its weight, the
    same unit always gets the same variant while the weights stay, and a weight
    change moves only the units it must (no reshuffle of the rest). The
    operator, the sidecar and the client all call this one function.
    """
    best: str | None = None
    best_score = -math.inf
    for name, weight in weights:
        if weight <= 0:
            continue
        digest = hashlib.sha256(f"{prompt}\x00{unit}\x00{name}".encode()).digest()
        u = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # strictly inside (0, 1)
        score = -weight / math.log(u)
        if score > best_score or (score == best_score and best is not None and name < best):
            best, best_score = name, score
    return best
