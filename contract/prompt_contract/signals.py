"""The signal: "Prompt X is now at revision R", from the operator to a sidecar.

An HTTP POST to ``SIGNAL_PATH`` on the pod's signal port; the sidecar answers
with the revision it serves for each Prompt asked. An entry may carry the
revision itself, signed by the operator (``signing``): a sidecar that can
verify it writes without a read. Anything else is only a hint: the sidecar
reads the ConfigMap it names from the API server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping

from .objects import DNS_SUBDOMAIN, MAX_OBJECT_NAME
from .signing import Carried

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

SIGNAL_PATH = "/v1/signal"
# The operator sends a signal whose answer fits MAX_ANSWER_BYTES (signal_bodies),
# and whose body fits BODY_BUDGET, so anything much larger is not ours.
MAX_SIGNAL_BYTES = 128 * 1024
# What the operator puts in one body at most: one entry carrying a revision of
# signing.MAX_CARRIED_BYTES (base64: 64 KiB) and some hints fit.
BODY_BUDGET = 96 * 1024
# Pairs in one signal; the operator sends more as several. Counted on the raw
# bytes before parsing, so a body of tens of thousands of small objects never
# becomes tens of megabytes of parsed JSON in a sidecar limited to 64 MiB.
MAX_SIGNAL_PAIRS = 2000
# The most of a sidecar's answer the operator reads. An answer names only the
# Prompts signalled (about 300 bytes each at most), so a bigger one is not an
# answer from our sidecar: anything past this is never read, let alone kept.
MAX_ANSWER_BYTES = 64 * 1024
MAX_REVISION_LENGTH = 128


# A Prompt name is a Kubernetes object name (DNS-1123 subdomain); a revision is
# the operator's content hash. Anything else cannot name a Prompt we serve, so
# it is refused before it costs an API call.
_PROMPT_NAME = re.compile(DNS_SUBDOMAIN)
_REVISION = re.compile(r"[A-Za-z0-9._:-]*")


def is_revision(value: object) -> bool:
    """True for what a revision may be on the wire: a string of at most
    ``MAX_REVISION_LENGTH`` characters from ``[A-Za-z0-9._:-]`` (empty: none)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_REVISION_LENGTH
        and _REVISION.fullmatch(value) is not None
    )


class SignalError(ValueError):
    """A signal request that does not follow the protocol; the message says why."""


def signal_bodies(
    entries: Iterable[tuple[str, bytes]], size: int = MAX_SIGNAL_PAIRS
) -> list[tuple[list[str], bytes]]:
    """Encoded entries (name, ``encode_entry`` bytes) as signal bodies, each with
    the names it carries: at most ``size`` entries and ``BODY_BUDGET`` bytes a body
    (an entry larger than that goes alone), and an answer within ``MAX_ANSWER_BYTES``."""
    budget = MAX_ANSWER_BYTES - 256  # the answer's pod name and braces
    bodies: list[tuple[list[str], bytes]] = []
    names: list[str] = []
    parts: list[bytes] = []
    answer = body = 0
    for name, entry in entries:
        cost = len(json.dumps(name)) + MAX_REVISION_LENGTH + 8  # "name":"revision",
        if names and (
            len(names) >= size or answer + cost > budget or body + len(entry) + 1 > BODY_BUDGET
        ):
            bodies.append((names, join_entries(parts)))
            names, parts, answer, body = [], [], 0, 0
        names.append(name)
        parts.append(entry)
        answer += cost
        body += len(entry) + 1
    if names:
        bodies.append((names, join_entries(parts)))
    return bodies


def encode_signal(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Body of a signal carrying (Prompt name, revision) pairs, none signed.

    An empty revision means "this Prompt no longer concerns you": the sidecar
    re-reads it and drops its file when the ConfigMap is gone or unselected.
    """
    return join_entries(encode_entry(name, rev) for name, rev in pairs)


def _load_json(body: bytes, what: str) -> Any:
    """``body`` as JSON, or ``SignalError`` saying what it is not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignalError(f"{what} is not UTF-8") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # deep nesting ends in RecursionError
        raise SignalError(f"{what} is not JSON (or nests too deeply)") from None


def parse_signal(body: bytes) -> list[tuple[str, str]]:
    """The (Prompt name, revision) pairs of a signal body; raises ``SignalError``."""
    return parse_signal_carrying(body)[0]


def parse_signal_carrying(body: bytes) -> tuple[list[tuple[str, str]], dict[str, Carried]]:
    """The (Prompt name, revision) pairs of a signal body, and the signed part of
    the entries that carry one, by name (unverified); raises ``SignalError``."""
    if len(body) > MAX_SIGNAL_BYTES:
        raise SignalError(f"body larger than {MAX_SIGNAL_BYTES} bytes")
    # Every pair is an object with one comma inside and one after; a signed one
    # has one more object and three more commas (its strings are base64). More
    # braces or commas than that many pairs allow is refused before anything is
    # parsed; the count after parsing catches a body that only looks signed.
    braces = body.count(b"{") - body.count(b'"signed":{')
    if braces > MAX_SIGNAL_PAIRS + 1 or body.count(b",") > 5 * MAX_SIGNAL_PAIRS + 8:
        raise SignalError(f"more than {MAX_SIGNAL_PAIRS} Prompts in one signal; send several")
    data = _load_json(body, "body")
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise SignalError('body must be {"prompts": [{"name": ..., "revision": ...}, ...]}')
    if len(data["prompts"]) > MAX_SIGNAL_PAIRS:
        raise SignalError(f"more than {MAX_SIGNAL_PAIRS} Prompts in one signal; send several")
    pairs: list[tuple[str, str]] = []
    carried: dict[str, Carried] = {}
    for i, item in enumerate(data["prompts"]):
        if not isinstance(item, dict):
            raise SignalError(f"prompts[{i}] is not an object")
        name, rev = item.get("name"), item.get("revision")
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= MAX_OBJECT_NAME
            or not _PROMPT_NAME.fullmatch(name)
        ):
            raise SignalError(f"prompts[{i}].name must be a Prompt name (a DNS subdomain)")
        if not is_revision(rev):
            raise SignalError(
                f"prompts[{i}].revision must be a string of at most {MAX_REVISION_LENGTH} "
                "characters from [A-Za-z0-9._:-]"
            )
        pairs.append((name, str(rev)))
        signed = item.get("signed")
        if signed is not None:
            carried[name] = _carried(signed, i)
    return pairs, carried


def _carried(signed: object, i: int) -> Carried:
    parts = (
        (signed.get("header"), signed.get("sig"), signed.get("content"))
        if isinstance(signed, dict)
        else ()
    )
    header, sig, content = parts or (None, None, None)
    if not (isinstance(header, str) and isinstance(sig, str) and isinstance(content, str)):
        raise SignalError(f'prompts[{i}].signed must be {{"header", "sig", "content"}} strings')
    return Carried(header, sig, content)


def encode_entry(name: str, revision: str, carried: Carried | None = None) -> bytes:
    """One entry of a signal body; ``join_entries`` makes the body. The operator
    encodes a signed revision's entry once and sends the bytes to every pod."""
    entry: dict[str, object] = {"name": name, "revision": revision}
    if carried is not None:
        entry["signed"] = {
            "header": carried.header,
            "sig": carried.signature,
            "content": carried.content,
        }
    return json.dumps(entry, separators=(",", ":")).encode("utf-8")


def join_entries(entries: Iterable[bytes]) -> bytes:
    return b'{"prompts":[' + b",".join(entries) + b"]}"


def encode_signal_response(pod: str, served: Mapping[str, str | None]) -> bytes:
    """The sidecar's answer: the revision it serves for each Prompt asked (None: none)."""
    return json.dumps({"pod": pod, "served": dict(served)}, separators=(",", ":")).encode()


def parse_signal_response(
    body: bytes, asked: Collection[str] | None = None
) -> dict[str, str | None]:
    """The revisions a sidecar says it serves, by Prompt name; raises ``SignalError``.

    With ``asked`` (the names the signal carried), every other name in the answer
    is dropped: a pod's answer is about what it was asked, and whatever else it
    says must not cost the operator memory. An answer over ``MAX_ANSWER_BYTES``
    is refused whole, and so is one whose revisions are not revisions as a
    signal carries them (``is_revision``): the sidecar never serves another.
    """
    if len(body) > MAX_ANSWER_BYTES:
        raise SignalError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    data = _load_json(body, "answer")
    served = data.get("served") if isinstance(data, dict) else None
    if not isinstance(served, dict):
        raise SignalError('answer must be {"pod": ..., "served": {...}}')
    # The message names neither the Prompt nor the value: an answer is never logged.
    if any(isinstance(rev, str) and not is_revision(rev) for rev in served.values()):
        raise SignalError(
            "a served revision is not a revision (a string of at most "
            f"{MAX_REVISION_LENGTH} characters from [A-Za-z0-9._:-])"
        )
    return {
        str(name): (rev if isinstance(rev, str) else None)
        for name, rev in served.items()
        if asked is None or name in asked
    }
