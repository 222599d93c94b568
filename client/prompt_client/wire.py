"""The contract between operator and sidecar, through API objects and the signal.

It lives in the client package, which imports nothing of ours and nothing
heavy, so that the operator and the sidecar both import it without importing
each other: one definition of the API group and version, label and annotation
names, data keys, the name rules and the signal's shape. The selector grammar
is its neighbour, ``prompt_client.selector``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .contract import PromptMeta, choose_variant, key_problem, text_sha256

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

# -- the Prompt resource ---------------------------------------------------------------

GROUP = "prompts.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Prompt"
PLURAL = "prompts"
PREFIX = GROUP  # every label, annotation and finalizer the project writes starts so

# A Kubernetes object name (DNS-1123 subdomain) and one of its dot-separated
# labels; the API server's own rules, which the CRD's CEL repeats.
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
MAX_OBJECT_NAME = 253

# -- the ConfigMaps the operator writes for each Prompt ------------------------------
#
# One immutable ConfigMap per retained revision, named after the Prompt and the
# revision hash. Its data never changes; its labels may. The one with the highest
# revision-number label is the one apps must be served; the others are history
# (kept for rollback and diff, up to the Prompt's revisionHistoryLimit; the
# operator deletes those beyond it in batches, so a few more may exist, and
# only the highest number counts).

MANAGED_BY_LABEL = "prompts.dev/managed-by"
MANAGED_BY_VALUE = "prompt-operator"
REVISION_NUMBER_LABEL = "prompts.dev/revision-number"  # "1", "2", ...: highest is current
PROMPT_UID_LABEL = "prompts.dev/prompt-uid"  # selects all revisions of one Prompt
PROMPT_ANNOTATION = "prompts.dev/prompt"  # the source Prompt's name
REVISION_ANNOTATION = "prompts.dev/revision"  # the content hash
KEY_ANNOTATION = "prompts.dev/key"  # the app's key: file name without extension
TEXT_DATA_KEY = "prompt"  # the text, exactly; app keys may be unicode, data keys may not
VARIANT_DATA_PREFIX = "variant."  # with variants: "variant.<name>" holds each text
# {"variables": [...], "defaults": {...}, "format": ..., "variants": [{"name", "weight"}]}
METADATA_DATA_KEY = "metadata.json"
# The revision's source without its text: what a rollback puts back into the spec.
# {"key", "format", "variables": [{"name", "description", "default"}],
#  "variants": [{"name", "weight"}], "source": "spec" | "schedule <at>"}
SOURCE_DATA_KEY = "source.json"

_MAX_NAME = 253
_PREFIX = "prompt-"


def configmap_name(prompt_name: str, revision: str) -> str:
    """Name of the ConfigMap holding ``revision`` of a Prompt: ``prompt-<name>-<revision>``,
    shortened with a hash suffix when that would exceed the 253 characters a name may have."""
    name = f"{_PREFIX}{prompt_name}-{revision}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    head = name[: _MAX_NAME - 9].rstrip("-.")
    return f"{head}-{digest}"


def variant_data_key(variant: str) -> str:
    return VARIANT_DATA_PREFIX + variant


def revision_number_of(configmap: Mapping[str, Any]) -> int:
    """The revision number a ConfigMap carries (0 when missing or garbled)."""
    labels = (configmap.get("metadata") or {}).get("labels") or {}
    value = labels.get(REVISION_NUMBER_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def prompt_name_of(configmap: Mapping[str, Any]) -> str | None:
    annotations = (configmap.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(PROMPT_ANNOTATION)
    return value if isinstance(value, str) else None


# -- what a ConfigMap puts on disk ---------------------------------------------------
#
# The sidecar (in each pod) and `prompt-operator files` (on a laptop) both turn a
# revision ConfigMap into one prompt file and its metadata with these functions,
# so the two write the same bytes.


@dataclass(frozen=True)
class FileContent:
    """One prompt as a revision ConfigMap says a pod should have it on disk."""

    prompt: str  # the Prompt's name (without namespace)
    key: str
    revision: str
    text: bytes  # this pod's variant's text when the revision has variants
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    format: str = "python"
    variant: str | None = None
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> weight, text

    def meta(self, namespace: str, updated_at: str) -> PromptMeta:
        """The metadata file's content for this text (``updated_at``: RFC 3339, UTC)."""
        return PromptMeta(
            key=self.key,
            prompt=f"{namespace}/{self.prompt}",
            revision=self.revision,
            sha256=text_sha256(self.text),
            updated_at=updated_at,
            variables=self.variables,
            defaults=self.defaults,
            format=self.format,
            variant=self.variant,
            variants=self.variants,
        )


def configmap_metadata(configmap: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ConfigMap's ``metadata.json`` as a dict ({} when absent), None when unreadable."""
    try:
        extra = json.loads((configmap.get("data") or {}).get(METADATA_DATA_KEY) or "{}")
    except ValueError:
        return None
    return extra if isinstance(extra, dict) else None


def variant_texts(data: Mapping[str, Any], listed: Any) -> dict[str, dict[str, Any]] | str:
    """Every variant as name -> {"weight", "text"}, or why the ConfigMap's variants are unusable."""
    if not isinstance(listed, list):
        return "its variants are not a list"
    variants: dict[str, dict[str, Any]] = {}
    for entry in listed:
        name = entry.get("name") if isinstance(entry, dict) else None
        weight = entry.get("weight") if isinstance(entry, dict) else None
        text = data.get(variant_data_key(name)) if isinstance(name, str) else None
        if not isinstance(name, str) or not isinstance(weight, int) or not isinstance(text, str):
            return f"variant {name!r} lacks a weight or a text"
        variants[name] = {"weight": weight, "text": text}
    return variants


def file_content(
    configmap: Mapping[str, Any], pod: str, extra: Mapping[str, Any]
) -> FileContent | str:
    """What revision ConfigMap ``configmap`` puts on disk in pod ``pod``, or why it cannot.

    ``extra`` is its ``configmap_metadata`` ({} when unreadable: the text is then
    served without it). With variants, ``pod`` (the pod's name; any stable name
    off the cluster) chooses the variant, as the operator counts it in status.
    """
    annotations = (configmap.get("metadata") or {}).get("annotations") or {}
    data = configmap.get("data") or {}
    prompt = annotations.get(PROMPT_ANNOTATION)
    revision = annotations.get(REVISION_ANNOTATION)
    key = annotations.get(KEY_ANNOTATION)
    if not all(isinstance(v, str) and v for v in (prompt, revision, key)):
        return "missing prompt, revision or key"
    assert isinstance(prompt, str) and isinstance(revision, str) and isinstance(key, str)
    problem = key_problem(key)
    if problem:
        return f"key {key!r} cannot name a file: {problem}"
    chosen: str | None = None
    variants: dict[str, dict[str, Any]] = {}
    if extra.get("variants"):
        found = variant_texts(data, extra["variants"])
        if isinstance(found, str):
            return found
        variants = found
        chosen = choose_variant(pod, prompt, ((n, v["weight"]) for n, v in variants.items()))
        if chosen is None:
            return "no variant has a positive weight"
        text = variants[chosen]["text"]
    else:
        text = data.get(TEXT_DATA_KEY)
        if not isinstance(text, str):
            return "missing the text"
    try:
        variables = tuple(str(v) for v in extra.get("variables") or ())
        defaults = {str(k): str(v) for k, v in (extra.get("defaults") or {}).items()}
    except (AttributeError, TypeError):
        variables, defaults = (), {}
    return FileContent(
        prompt,
        key,
        revision,
        text.encode("utf-8"),
        variables=variables,
        defaults=defaults,
        format=str(extra.get("format") or "python"),
        variant=chosen,
        variants=variants,
    )


# -- what a pod says about itself ---------------------------------------------------

SUBSCRIBE_LABEL = "prompts.dev/subscribe"  # "true" opts the pod in
PORT_ANNOTATION = "prompts.dev/port"  # the sidecar's signal port
SELECTOR_ANNOTATION = "prompts.dev/selector"  # label selector over Prompts; empty: all
DEFAULT_PORT = 8470
DEFAULT_PROBE_PORT = 8471  # the sidecar's probes (readyz, healthz, metrics) alone

# -- the signal: "prompt X is now at revision R" -------------------------------------

SIGNAL_PATH = "/v1/signal"
# The operator sends a signal whose answer fits MAX_ANSWER_BYTES (signal_chunks),
# so its bodies stay under about 72 KiB; anything much larger is not ours.
MAX_SIGNAL_BYTES = 128 * 1024
# Pairs in one signal; the operator sends more as several. Counted on the raw
# bytes before parsing, so a body of tens of thousands of small objects never
# becomes tens of megabytes of parsed JSON in a sidecar limited to 64 MiB.
MAX_SIGNAL_PAIRS = 2000
# The most of a sidecar's answer the operator reads. An answer names only the
# Prompts signalled (about 300 bytes each at most), so a bigger one is not an
# answer from our sidecar: anything past this is never read, let alone kept.
MAX_ANSWER_BYTES = 64 * 1024
MAX_NAME_LENGTH = 253
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


def signal_chunks(
    pairs: Iterable[tuple[str, str]], size: int = MAX_SIGNAL_PAIRS
) -> list[list[tuple[str, str]]]:
    """``pairs`` as several signals: at most ``size`` pairs each, and few enough
    that the answer (which names every Prompt asked, with a revision of at most
    ``MAX_REVISION_LENGTH`` characters) stays within ``MAX_ANSWER_BYTES``."""
    budget = MAX_ANSWER_BYTES - 256  # the answer's pod name and braces
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    used = 0
    for name, revision in pairs:
        cost = len(json.dumps(name)) + MAX_REVISION_LENGTH + 8  # "name":"revision",
        if current and (len(current) >= size or used + cost > budget):
            chunks.append(current)
            current, used = [], 0
        current.append((name, revision))
        used += cost
    if current:
        chunks.append(current)
    return chunks


def encode_signal(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Body of a signal carrying (Prompt name, revision) pairs.

    An empty revision means "this Prompt no longer concerns you": the sidecar
    re-reads it and drops its file when the ConfigMap is gone or unselected.
    """
    return json.dumps(
        {"prompts": [{"name": name, "revision": rev} for name, rev in pairs]},
        separators=(",", ":"),
    ).encode("utf-8")


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
    if len(body) > MAX_SIGNAL_BYTES:
        raise SignalError(f"body larger than {MAX_SIGNAL_BYTES} bytes")
    # Every pair is an object with one comma inside and one after: more braces or
    # commas than that many pairs allow is refused before anything is parsed.
    if body.count(b"{") > MAX_SIGNAL_PAIRS + 1 or body.count(b",") > 2 * MAX_SIGNAL_PAIRS + 8:
        raise SignalError(f"more than {MAX_SIGNAL_PAIRS} Prompts in one signal; send several")
    data = _load_json(body, "body")
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise SignalError('body must be {"prompts": [{"name": ..., "revision": ...}, ...]}')
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(data["prompts"]):
        if not isinstance(item, dict):
            raise SignalError(f"prompts[{i}] is not an object")
        name, rev = item.get("name"), item.get("revision")
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= MAX_NAME_LENGTH
            or not _PROMPT_NAME.fullmatch(name)
        ):
            raise SignalError(f"prompts[{i}].name must be a Prompt name (a DNS subdomain)")
        if not is_revision(rev):
            raise SignalError(
                f"prompts[{i}].revision must be a string of at most {MAX_REVISION_LENGTH} "
                "characters from [A-Za-z0-9._:-]"
            )
        pairs.append((name, str(rev)))
    return pairs


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
