"""The Kubernetes objects the operator, the sidecar and apps agree on.

The Prompt resource (API group, version, kind), the revision ConfigMaps the
operator writes for each Prompt (names, labels, annotations, data keys), and
what a pod says about itself (its labels and annotations). Every limit is
defined once, here or in the neighbouring modules of ``prompt_contract``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

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
MAX_NAMESPACE_NAME = 63  # a namespace name is one DNS label
_DNS_LABEL = re.compile(DNS_LABEL)
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` is not a namespace name (a DNS-1123 label), or None. A name
    like ``..`` must never reach a URL: the path would lose its namespace part."""
    if len(namespace) <= MAX_NAMESPACE_NAME and _DNS_LABEL.fullmatch(namespace):
        return None
    return (
        f"{namespace[:80]!r} is not a namespace name: use at most {MAX_NAMESPACE_NAME} "
        "lower-case letters, digits and '-', starting and ending with a letter or digit"
    )


def name_problem(name: str) -> str | None:
    """Why ``name`` is not an object name such as a Prompt's (a DNS-1123 subdomain), or None."""
    if len(name) <= MAX_OBJECT_NAME and _DNS_SUBDOMAIN.fullmatch(name):
        return None
    return (
        f"{name[:80]!r} is not a Prompt name: use at most {MAX_OBJECT_NAME} lower-case "
        "letters, digits, '-' and '.', each dot-separated part starting and ending with "
        "a letter or digit"
    )


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
# A Prompt whose call a text file cannot carry (chat messages, a model
# configuration) is served as one JSON call document (``calls``) instead of a
# text: under this key, or under each variant's key, with "form": "call" in
# metadata.json. A text Prompt's ConfigMap has neither.
CALL_DATA_KEY = "call.json"
# {"variables": [...], "defaults": {...}, "format": ..., "variants": [{"name", "weight"}],
#  "form": "call" (absent for a text)}
METADATA_DATA_KEY = "metadata.json"
# The revision's source without its text: what a rollback puts back into the spec.
# {"key", "format", "variables": [{"name", "description", "default"}],
#  "variants": [{"name", "weight"}], "source": "spec" | "schedule <at>"}
SOURCE_DATA_KEY = "source.json"

_CONFIGMAP_PREFIX = "prompt-"


def configmap_name(prompt_name: str, revision: str) -> str:
    """Name of the ConfigMap holding ``revision`` of a Prompt: ``prompt-<name>-<revision>``,
    shortened with a hash suffix when that would exceed the 253 characters a name may have."""
    name = f"{_CONFIGMAP_PREFIX}{prompt_name}-{revision}"
    if len(name) <= MAX_OBJECT_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    head = name[: MAX_OBJECT_NAME - 9].rstrip("-.")
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


# -- what a person asks of a Prompt -------------------------------------------------

ROLLOUT_ACTION_ANNOTATION = "prompts.dev/rollout-action"
ROLLOUT_ACTIONS = ("promote", "promote-full", "abort", "pause", "resume", "retry")


# -- what a pod says about itself ---------------------------------------------------

SUBSCRIBE_LABEL = "prompts.dev/subscribe"  # "true" opts the pod in
INJECT_LABEL = "prompts.dev/inject"  # "true": the chart's webhook adds the sidecar
PORT_ANNOTATION = "prompts.dev/port"  # the sidecar's signal port
SELECTOR_ANNOTATION = "prompts.dev/selector"  # label selector over Prompts; empty: all
DEFAULT_PORT = 8470
DEFAULT_PROBE_PORT = 8471  # the sidecar's probes (readyz, healthz, metrics) alone
