"""What the sidecar should fetch, write and remove: pure decisions, no file or network I/O.

Given what the API server says (revision ConfigMaps, signals) and what is on
disk, these functions decide which ConfigMap is ours, which reads a cycle
does, and which files to write or remove. ``sync.Syncer`` carries them out.
A failed call never removes a file: removal only follows a complete,
successful list or an explicit 404.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from prompt_contract import objects, payload
from prompt_contract.files import PromptMeta
from prompt_contract.selector import Selector
from prompt_contract.writer import Staged

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

logger = logging.getLogger(__name__)

# More dirty Prompts than this are read with one list instead of one get each.
LIST_THRESHOLD = 4
# Names never served that wait for their GET at most; a signal naming more than
# that leaves the rest to the periodic resync.
MAX_PENDING_NEW = 1000
# A backlog of new names bigger than the rate limit lets through at once (a
# directory of Prompts applied together) brings the resync forward, at most
# this often: a flood of forged names then costs at most one list per interval.
EARLY_RESYNC_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Desired:
    """One prompt as a revision ConfigMap says this pod should have it on disk."""

    prompt: str
    key: str
    revision: str
    text: bytes  # this pod's variant's text when the revision has variants
    created: str = ""
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    format: str = "python"
    number: int = 0  # the revision number: the highest of a Prompt's ConfigMaps is current
    uid: str = ""  # the Prompt object's uid: a Prompt deleted and made again starts over
    variant: str | None = None
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> weight, text
    form: str | None = None  # "call": ``text`` is a call document, written to <key>.json
    # The metadata and text already wait in the staging directory (a full list
    # parks them there page by page); ``text`` and ``variants`` are then empty.
    staged: Staged | None = None

    def without_text(self) -> Desired:
        """The same decision without the bytes, to remember during a long list."""
        return dataclasses.replace(self, text=b"", variants={})

    def parked(self, staged: Staged) -> Desired:
        """The same decision with its bytes in staging instead of memory."""
        return dataclasses.replace(self, text=b"", variants={}, staged=staged)


def desired_from_configmap(
    cm: Mapping[str, Any], selector: Selector, pod: str = ""
) -> Desired | str:
    """The prompt a ConfigMap carries for pod ``pod``, or why this pod must not use it.

    With variants, ``pod`` (the pod's name, which a container restart keeps)
    chooses the variant: the same choice the operator counts in the Prompt's status.
    What goes on disk is ``payload.file_content``'s, shared with `prompt-operator files`.
    """
    meta = cm.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(objects.MANAGED_BY_LABEL) != objects.MANAGED_BY_VALUE:
        return "not written by prompt-operator"
    if not selector.matches(labels):
        return "not selected by this pod's prompts.dev/selector"
    extra = payload.configmap_metadata(cm)
    if extra is None:
        logger.warning(
            "ConfigMap %s: unreadable %s; serving the text without it",
            meta.get("name"),
            objects.METADATA_DATA_KEY,
        )
        extra = {}
    content = payload.file_content(cm, pod, extra)
    if isinstance(content, str):
        return content
    return Desired(
        content.prompt,
        content.key,
        content.revision,
        content.text,
        created=str(meta.get("creationTimestamp", "")),
        variables=content.variables,
        defaults=content.defaults,
        format=content.format,
        number=objects.revision_number_of(cm),
        uid=str(labels.get(objects.PROMPT_UID_LABEL) or ""),
        variant=content.variant,
        variants=content.variants,
        form=content.form,
    )


def newer(item: Desired, held: Desired | None) -> bool:
    """True when ``item`` should replace ``held`` as its Prompt's current revision.

    Within one Prompt object the higher number wins. A Prompt deleted and made
    again under the same name counts from 1 while the old object's ConfigMaps
    may wait for garbage collection; every ConfigMap of the new object was
    created after all of the old one's, so across objects the newer one wins.
    """
    if held is None:
        return True
    if item.uid == held.uid:
        return item.number > held.number
    return item.created > held.created  # RFC 3339 in UTC: text order is time order


def by_key(desired: Iterable[Desired]) -> tuple[dict[str, Desired], list[str]]:
    """One prompt per key; when two claim a key the oldest (then by name) wins."""
    chosen: dict[str, Desired] = {}
    warnings: list[str] = []
    for item in sorted(desired, key=lambda d: (d.created, d.prompt)):
        if item.key in chosen:
            warnings.append(
                f"Prompts {chosen[item.key].prompt} and {item.prompt} both use key {item.key!r}; "
                f"serving {chosen[item.key].prompt}"
            )
            continue
        chosen[item.key] = item
    return chosen, warnings


# What is on disk, by key: (Prompt name, revision). ``PromptDisk`` keeps it from the
# writes themselves (read from the metadata once at start), so a resync reads
# no metadata files and holds no PromptMeta objects.
OnDisk = Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class Plan:
    writes: tuple[Desired, ...]
    removes: tuple[str, ...]  # keys


def plan(wanted: Mapping[str, Desired], present: OnDisk, files: set[str]) -> Plan:
    """What to write and remove so the directory matches ``wanted`` (keyed by key).

    ``present`` is what this sidecar recorded; ``files`` the keys whose file
    exists (a file removed behind our back is written again).
    """
    writes = tuple(d for key, d in sorted(wanted.items()) if not up_to_date(d, present, files))
    removes = tuple(sorted(key for key in present if key not in wanted))
    return Plan(writes, removes)


def up_to_date(item: Desired, present: OnDisk, on_disk: set[str]) -> bool:
    """True when the file for ``item`` already holds its revision (no text needed)."""
    return item.key in on_disk and present.get(item.key) == (item.prompt, item.revision)


def meta_for(item: Desired, namespace: str, updated_at: str) -> PromptMeta:
    """The metadata file's content for ``item`` (which must still hold its text)."""
    return payload.FileContent(
        item.prompt,
        item.key,
        item.revision,
        item.text,
        variables=item.variables,
        defaults=item.defaults,
        format=item.format,
        variant=item.variant,
        variants=item.variants,
        form=item.form,
    ).meta(namespace, updated_at)


def served_from(disk: OnDisk) -> dict[str, tuple[str, str]]:
    """Prompt -> (key, revision) from key -> (Prompt, revision)."""
    return {prompt: (key, rev) for key, (prompt, rev) in disk.items()}


def prompt_of(meta: PromptMeta) -> str:
    """The Prompt name in a file's metadata (it records ``namespace/name``)."""
    return meta.prompt.split("/", 1)[-1]


def stale_names(
    pairs: Iterable[tuple[str, str]], served: Mapping[str, tuple[str, str]]
) -> list[str]:
    """Names whose signalled revision is not the one served: only these cost a read.

    ``served`` maps Prompt name to (key, revision) on disk. A pair naming what
    is already served is a no-op, so a replayed signal is free; so is "drop it"
    (an empty revision) for a Prompt not served at all.
    """
    return [
        name
        for name, revision in pairs
        if (name not in served or served[name][1] != revision) and (revision or name in served)
    ]


def admitted(
    pairs: Iterable[tuple[str, str]],
    served: Mapping[str, tuple[str, str]],
    pending: Collection[str],
    max_new: int = MAX_PENDING_NEW,
) -> list[tuple[str, str]] | None:
    """The signalled (name, revision) pairs that join the ``pending`` reads; None when
    none is stale (the signal is answered from what is served, with no read).

    A name never served waits for a GET of its own; past ``max_new`` such names
    pending, the rest waits for the resync (a flood of forged names must neither
    grow memory nor queue ahead for ever).
    """
    stale = set(stale_names(pairs, served))
    if not stale:
        return None
    room = max_new - sum(1 for name in pending if name not in served)
    joined: list[tuple[str, str]] = []
    queued: set[str] = set()
    for name, revision in pairs:
        if name not in stale:
            continue
        if name not in served and name not in pending and name not in queued:
            if room <= 0:
                continue
            room -= 1
        queued.add(name)
        joined.append((name, revision))
    return joined


def use_list(dirty: int, resync_due: bool, threshold: int = LIST_THRESHOLD) -> bool:
    """One list instead of ``dirty`` gets: when many changed at once or a resync is due."""
    return resync_due or dirty > threshold


@dataclass(frozen=True)
class Reads:
    """What one cycle reads: a full list, or one get per name; ``later`` waits its turn."""

    full: bool
    gets: tuple[str, ...]
    later: tuple[str, ...]

    @property
    def cost(self) -> int:
        return 1 if self.full else len(self.gets)


def plan_reads(
    dirty: Iterable[str],
    served: Collection[str],
    resync_due: bool,
    tokens: float,
    early_resync_allowed: bool = False,
) -> Reads:
    """Which reads one cycle does for the ``dirty`` names.

    Only a resync or many names already served take a list (every retained
    revision of everything selected): a name never served costs one get of the
    revision signalled, so forged names cost at most a get each. Gets beyond
    the ``tokens`` left in the rate limit (at least one, so work always moves)
    wait for a later cycle, so a signal naming a thousand Prompts never reads
    faster than the limit. When more wait than the tokens allow and
    ``early_resync_allowed`` (the last list is old enough), the resync comes
    early instead: one list, rather than a backlog that drains at the rate limit.
    """
    names = list(dirty)
    known = [name for name in names if name in served]
    room = max(1, int(tokens))
    if use_list(len(known), resync_due) or (early_resync_allowed and len(names) > room):
        return Reads(True, (), ())
    return Reads(False, tuple(names[:room]), tuple(names[room:]))


@dataclass(frozen=True)
class Action:
    """What one re-read Prompt asks for: write, remove, a full list, or nothing."""

    kind: str  # "write" | "remove" | "list" | "none"
    desired: Desired | None = None
    key: str | None = None
    reason: str = ""


def single_action(
    name: str,
    result: Desired | str | None,
    served: Mapping[str, tuple[str, str]],
    numbers: Mapping[str, tuple[str, int]],
    disk: Mapping[str, tuple[str, str]],
) -> Action:
    """Decide from one revision ConfigMap read by name (``None``: 404) what to do.

    ``served`` maps Prompt name to (key, revision) on disk, ``disk`` the other
    way round (key to Prompt name and revision), ``numbers`` Prompt name to the
    Prompt uid and revision number on disk (absent: unknown). A revision older
    than the one served, of the same Prompt object, is a late signal and changes
    nothing (of another object: the Prompt was made again, and it is served).
    A file is never removed on a single read: a missing revision may only have
    been superseded and pruned, so for a Prompt we serve only a full list
    decides. For a name we do not serve, nothing happens: a forged signal costs
    one read and changes nothing.
    """
    if isinstance(result, Desired) and result.prompt != name:
        result = f"the ConfigMap names Prompt {result.prompt}"
    if not isinstance(result, Desired):
        reason = result or "that revision's ConfigMap is gone"
        if name in served:
            return Action("list", reason=reason)
        return Action("none", reason=reason)
    uid, number = numbers.get(name, ("", 0))
    if uid == result.uid and number >= result.number > 0:
        return Action("none", reason=f"revision {result.number} is not newer than the one served")
    holder = disk.get(result.key, (name, ""))[0]
    if holder != name:
        # Another Prompt serves this key: only a full view can say who keeps it.
        return Action("list", reason=f"key {result.key!r} is served for Prompt {holder}")
    return Action("write", desired=result)


def cache_first(name: str, served: Mapping[str, tuple[str, str]]) -> bool:
    """True when the GET for a signal naming ``name`` should ask the watch cache first.

    Only for a Prompt this sidecar serves: its new revisions are the edits, the
    read that repeats on every pod. A name never served is read from etcd as
    before: a forged name then still costs its one read and no more (from the
    cache, its 404 would have to be confirmed, two reads where there was one),
    and a Prompt's first delivery happens once per pod.
    """
    return name in served


def trusted_from_cache(action: Action) -> bool:
    """True when ``action``, decided from a watch-cache read, may be carried out as is.

    A revision's data never changes, so a cached copy that leads to a write writes
    the right bytes. Everything else may be the cache lagging: a 404 for a
    ConfigMap just created, a selector or revision-number label from before a
    relabel or a rollback, a key another Prompt held a moment ago. Such an answer
    is read again from etcd before anything (nothing, or a full list) follows it.
    """
    return action.kind == "write"
