"""Keep the prompt directory equal to the pod's ConfigMaps.

Pure functions decide (which ConfigMap is ours, which file to write or
remove); ``Syncer`` runs them on one thread: a full list at start (then the
pod is ready), a re-read when a signal names a revision it does not serve
(coalesced and rate-limited), and a full list on a timer so a missed signal
heals. A failed call never removes a file: removal only follows a complete,
successful list or an explicit 404.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from prompt_contract import hops, objects, payload
from prompt_contract.files import PromptMeta
from prompt_contract.selector import Selector
from prompt_contract.timing import now_rfc3339

from .files import FileWriteError, PromptFiles, Staged
from .kubeapi import ApiError, Expired, KubeClient, NotFound
from .metrics import Metrics

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


# What is on disk, by key: (Prompt name, revision). Kept in memory from the
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


def backoff_delay(attempt: int, jitter: float, base: float = 0.2, cap: float = 30.0) -> float:
    """Exponential backoff with jitter (``jitter`` in [0, 1)) so pods don't retry in step."""
    return min(cap, base * 2.0 ** min(attempt, 16)) * (0.5 + jitter / 2)


class TokenBucket:
    """At most ``rate`` re-reads per second on average and ``burst`` at once.

    Not thread-safe: only the syncer thread uses it. ``now`` is passed in, so
    tests need no clock.
    """

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now

    def available(self, now: float) -> float:
        """Tokens there now (negative after an overdraft)."""
        self._refill(now)
        return self._tokens

    def delay(self, now: float) -> float:
        """Seconds until one token is available (0 when it is now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float, cost: int = 1) -> None:
        """Spend ``cost`` tokens (the balance may go negative: later reads wait longer)."""
        self._refill(now)
        self._tokens -= cost


class SyncIncomplete(Exception):
    """A sync read everything but could not write every file; it is retried."""


@dataclass
class Health:
    ready: bool = False
    degraded: bool = False
    last_sync: str | None = None
    last_error: str | None = None


class Syncer:
    """One thread that owns the directory; signals only mark Prompts dirty.

    ``signal()`` runs on server threads: it marks stale names dirty and waits
    (bounded) for the cycle that reads them. The syncer thread waits for work,
    for a re-read token and for any backoff, then takes the whole dirty set at
    once, so a burst of signals that arrives meanwhile ends in one read of the
    latest state.
    """

    def __init__(
        self,
        client: KubeClient,
        files: PromptFiles,
        namespace: str,
        selector: Selector,
        *,
        pod: str = "",
        resync_seconds: float = 300.0,
        metrics: Metrics | None = None,
        # Enough for a busy team's edits (the benchmark sends 20 edits/s) while a
        # flood of forged signals still costs at most this many reads.
        reads_per_second: float = 20.0,
        burst: int = 40,
    ) -> None:
        self._client = client
        self._files = files
        self._namespace = namespace
        self._selector = selector
        self._pod = pod
        self._resync = resync_seconds
        self.metrics = metrics or Metrics()
        self._bucket = TokenBucket(reads_per_second, burst, time.monotonic())
        self._cond = threading.Condition()
        # prompt -> (when its first signal arrived, the latest revision signalled)
        self._dirty: dict[str, tuple[float, str]] = {}
        self._requested = 0  # signal tickets handed out
        self._done = 0  # every ticket up to this one has been read
        self._stop = False
        self._full_due = 0.0
        self._last_full = -EARLY_RESYNC_SECONDS  # monotonic time of the last complete list
        self._retry_at = 0.0
        self._signalled_since_failure = False  # a signal came after the read began
        self._attempt = 0
        self._random = random.Random()
        self.health = Health()
        self.ready = threading.Event()
        # key -> (Prompt, revision) of the files on disk, and its inverse. Only the
        # syncer thread changes them, in place and under the lock (an edit costs
        # O(1), not a copy per file); other threads read them under the lock.
        self._disk: dict[str, tuple[str, str]] = {}
        self.served: dict[str, tuple[str, str]] = {}
        # Prompt -> revision number on disk, once a read told us (not kept in the
        # files: after a restart the first full list fills it in).
        self._numbers: dict[str, tuple[str, int]] = {}
        self._thread = threading.Thread(target=self._run, name="syncer", daemon=True)
        self._label_selector = ",".join(
            filter(None, [f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}", selector.text])
        )

    # -- public ---------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self._namespace

    def start(self) -> None:
        # Files from before a container restart (the emptyDir outlives it) are
        # served, and so answer signals, until the first sync says otherwise.
        self._set_disk({k: (prompt_of(m), m.revision) for k, m in self._files.all_meta().items()})
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        # At most 3 s (a read in flight times out after 10): with the server's 0.5 s
        # poll the sidecar exits within 5 s of SIGTERM; the thread is a daemon.
        self._thread.join(timeout=3)

    def _set_disk(self, disk: dict[str, tuple[str, str]]) -> None:
        with self._cond:
            self._disk = disk
            self.served = served_from(disk)

    def revisions(self) -> dict[str, str]:
        """Prompt name -> revision on disk (a copy)."""
        with self._cond:
            return {name: rev for name, (_, rev) in self.served.items()}

    def health_report(self) -> dict[str, object]:
        """What /healthz shows: never any prompt text."""
        revisions = self.revisions()
        return {
            "status": "degraded" if self.health.degraded else "ok",
            "ready": self.ready.is_set(),
            "lastSyncTime": self.health.last_sync,
            "lastSyncRevisions": dict(sorted(revisions.items())),
            "files": len(revisions),
            "lastError": self.health.last_error,
        }

    def signal(self, pairs: Iterable[tuple[str, str]], wait: float = 2.0) -> dict[str, str | None]:
        """Note signalled revisions; wait (bounded) until they are read; say what is served."""
        pairs = list(pairs)
        arrived = time.monotonic()
        with self._cond:
            stale = set(stale_names(pairs, self.served))
            room = MAX_PENDING_NEW - sum(1 for n in self._dirty if n not in self.served)
            if stale:
                for name, revision in pairs:
                    if name in stale and name not in self.served and name not in self._dirty:
                        # A name never served waits for a GET of its own; past this
                        # many, the rest waits for the resync (a flood of forged
                        # names must neither grow memory nor queue ahead for ever).
                        if room <= 0:
                            continue
                        room -= 1
                    if name in stale:
                        first = self._dirty.get(name, (arrived, ""))[0]
                        self._dirty[name] = (first, revision)
                self._signalled_since_failure = True
                self._requested += 1
                ticket = self._requested
                self._cond.notify_all()
                deadline = arrived + wait
                while self._done < ticket and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            return {name: self.served.get(name, ("", None))[1] for name, _ in pairs}

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            try:
                self._full_sync()
                break
            except Exception as exc:  # never let the thread die: retry after backoff
                self._failed(exc)
                self._sleep(self._retry_at - time.monotonic())
        if self._stop:
            return
        self.health.ready = True
        self.ready.set()
        logger.info(
            "initial sync done: %d prompt files in %s", len(self.served), self._files.directory
        )
        while self._cycle():
            pass

    def _next_work(self, now: float) -> float:
        """When the next read may start: work is there, a token is free, backoff is over.

        A signal that arrived after the last failure ends the backoff: the operator
        has just written to the API server, so it answers again, and waiting out a
        backoff that an outage grew to many seconds would add them to the edit.
        The bucket still bounds what signals cost, forged ones included."""
        retry_at = 0.0 if self._signalled_since_failure else self._retry_at
        at = max(now if self._dirty else self._full_due, retry_at)
        return max(at, now + self._bucket.delay(now)) if at <= now else at

    def _cycle(self) -> bool:
        """Wait for work, then do one read; False once stopped."""
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                at = self._next_work(now)
                if at <= now:
                    break
                # Signals wake us early; the loop recomputes, so they never cut the
                # rate limit short, and pile up in the dirty set.
                self._cond.wait(at - now)
            if self._stop:
                return False
            now = time.monotonic()
            reads = plan_reads(
                self._dirty,
                self.served,
                now >= self._full_due,
                self._bucket.available(now),
                early_resync_allowed=now - self._last_full >= EARLY_RESYNC_SECONDS,
            )
            dirty = {n: e for n, e in self._dirty.items() if n not in reads.later}
            self._dirty = {n: self._dirty[n] for n in reads.later}
            self._signalled_since_failure = False  # only signals from now on end a backoff
            # Signals are answered once all they named is read; names left for
            # later keep their tickets waiting (within the signal's own bound).
            ticket = self._requested if not reads.later else self._done
            full = reads.full
            self._bucket.take(now, reads.cost)
        try:
            if full:
                self._full_sync({name: arrived for name, (arrived, _) in dirty.items()})
            else:
                for name, (arrived, revision) in dirty.items():
                    self._sync_one(name, revision, arrived)
                self._succeeded()
        except Exception as exc:
            self._failed(exc)
            with self._cond:
                for name, entry in dirty.items():
                    self._dirty.setdefault(name, entry)
            return True
        with self._cond:
            self._done = max(self._done, ticket)
            self._cond.notify_all()
        return True

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            if not self._stop and seconds > 0:
                self._cond.wait(seconds)

    def _failed(self, exc: Exception) -> None:
        self._attempt += 1
        self._retry_at = time.monotonic() + backoff_delay(self._attempt, self._random.random())
        self.metrics.inc("sync_failures_total")
        self.health.degraded = True
        self.health.last_error = str(exc)
        if isinstance(exc, (ApiError, SyncIncomplete, FileWriteError)):
            # Expected trouble (the API server, a full disk), already said plainly.
            logger.warning("sync failed, keeping the files as they are: %s", exc)
        else:  # a bug or the file system: say where
            logger.error("sync failed, keeping the files as they are", exc_info=exc)

    def _succeeded(self) -> None:
        self._attempt = 0
        self._retry_at = 0.0
        self.metrics.inc("syncs_total")
        self.health.degraded = False
        self.health.last_error = None
        self.health.last_sync = now_rfc3339()
        self.metrics.files = len(self.served)

    def _full_sync(self, signalled: Mapping[str, float] | None = None) -> None:
        try:
            self._full_sync_once(signalled or {})
        except Expired:
            logger.info("list expired between pages; listing again")
            self._full_sync_once(signalled or {})

    def _full_sync_once(self, signalled: Mapping[str, float]) -> None:
        """List every revision selected, keep the highest per Prompt, then write and remove.

        Nothing is shown before the last page: a Prompt's current revision (and
        which Prompt keeps a contested key) is only known from the complete list,
        and writing an older revision first would show it to the app for a moment.
        The text of each revision that must be written goes to the staging
        directory as its page arrives (a later page may still replace it), so the
        sidecar holds one page at a time, never every text. A failed or partial
        list shows, writes and removes nothing.
        """
        with self._cond:
            present = dict(self._disk)  # the writes below change the original
        on_disk = self._files.keys()
        current: dict[str, Desired] = {}  # Prompt -> its highest revision so far
        staged: dict[str, Staged] = {}  # Prompt -> its staged files, until written or dropped
        self.metrics.inc("rereads_total")
        try:
            for page in self._client.list_configmaps(self._namespace, self._label_selector):
                for cm in page:
                    item = desired_from_configmap(cm, self._selector, self._pod)
                    if isinstance(item, str):
                        name = (cm.get("metadata") or {}).get("name")
                        logger.warning("skipping ConfigMap %s: %s", name, item)
                    elif newer(item, current.get(item.prompt)):
                        dropped = staged.pop(item.prompt, None)
                        if dropped is not None:
                            self._files.discard(dropped)
                        if up_to_date(item, present, on_disk):
                            item = item.without_text()
                        else:
                            item = self._park(item)
                            if item.staged is not None:
                                staged[item.prompt] = item.staged
                        current[item.prompt] = item
                del page
            wanted, warnings = by_key(current.values())
            for warning in warnings:
                logger.warning(warning)
            todo = plan(wanted, present, on_disk)
            failed = 0
            for item in todo.writes:
                staged.pop(item.prompt, None)  # committed or discarded by the write
                try:
                    self._write(item, signalled.get(item.prompt))
                except FileWriteError:
                    failed += 1
        finally:
            for leftover in staged.values():  # lost its key to another Prompt, or the list failed
                self._files.discard(leftover)
        for key in todo.removes:
            self._remove(key, present[key][0])
        with self._cond:
            self._numbers = {item.prompt: (item.uid, item.number) for item in wanted.values()}
        if failed:
            raise SyncIncomplete(f"{failed} prompt files could not be written (see above)")
        self._last_full = time.monotonic()
        self._full_due = self._last_full + self._resync
        self._succeeded()

    def _park(self, item: Desired) -> Desired:
        """``item`` with its text staged on disk; as it was if staging fails (its write
        then fails again and says why, like any other failed write)."""
        meta = meta_for(item, self._namespace, now_rfc3339())
        try:
            return item.parked(self._files.stage(meta, item.text))
        except FileWriteError:
            return item

    def _sync_one(self, name: str, revision: str, arrived: float) -> None:
        """Read the one revision a signal names; an empty revision lists everything."""
        if not revision:  # "no longer concerns you": only a full list can tell
            self._full_sync({name: arrived})
            return
        self.metrics.inc("rereads_total")
        try:
            cm = self._client.get_configmap(self._namespace, objects.configmap_name(name, revision))
            hops.mark(hops.FETCHED, f"{self._namespace}/{name}", revision, self._pod)
            result: Desired | str | None = desired_from_configmap(cm, self._selector, self._pod)
        except NotFound:
            result = None
        with self._cond:  # only this thread changes them; the lock is for the server's reads
            action = single_action(name, result, self.served, self._numbers, self._disk)
        if action.kind == "list":
            logger.info("prompt %s: %s; listing everything", name, action.reason)
            # A second read for this signal: it costs a token too, or forged
            # revisions of a served Prompt would read twice the rate.
            self._bucket.take(time.monotonic(), 1)
            self._full_sync({name: arrived})
        elif action.kind == "write" and action.desired is not None:
            self._write(action.desired, arrived)
        else:
            logger.debug("signal for prompt %s changes nothing: %s", name, action.reason)

    def _write(self, item: Desired, arrived: float | None) -> None:
        """Write one prompt's file; raises ``FileWriteError`` (old file intact)."""
        with self._cond:
            previous = self.served.get(item.prompt)
        try:
            if item.staged is not None:  # parked by a full list: show it
                self._files.commit(item.staged)
                changed = True
            else:
                meta = meta_for(item, self._namespace, now_rfc3339())
                changed = self._files.write(meta, item.text)
        except FileWriteError as exc:
            self.metrics.inc("write_failures_total")
            logger.error("prompt %s stays at its last good file: %s", item.prompt, exc)
            raise
        if changed:
            hops.mark(hops.RENAMED, f"{self._namespace}/{item.prompt}", item.revision, self._pod)
        with self._cond:
            self._forget_key(item.key, keep=item.prompt)  # its file is this Prompt's now
            self._disk[item.key] = (item.prompt, item.revision)
            self.served[item.prompt] = (item.key, item.revision)
            self._numbers[item.prompt] = (item.uid, item.number)
        if previous is not None and previous[0] != item.key:
            # The Prompt's key changed: drop its old file, unless another Prompt has it now.
            old = self._files.current(previous[0])
            if old is not None and prompt_of(old) == item.prompt:
                self._remove(previous[0], item.prompt)
        if not changed:
            return
        self.metrics.inc("files_written_total")
        if arrived is not None:
            self.metrics.observe_latency(time.monotonic() - arrived)
        logger.info(
            "prompt %s -> %s%s at revision %s",
            item.prompt,
            item.key,
            self._files.ext,
            item.revision,
        )

    def _remove(self, key: str, prompt: str) -> None:
        if self._files.remove(key):
            self.metrics.inc("files_removed_total")
            logger.info("removed %s%s (prompt %s)", key, self._files.ext, prompt)
        with self._cond:
            self._forget_key(key)

    def _forget_key(self, key: str, keep: str = "") -> None:
        """Drop ``key`` from what is on disk (lock held). Its Prompt stays served
        when it is ``keep`` or has another file in place (its key changed)."""
        gone = self._disk.pop(key, None)
        if gone is None or gone[0] == keep or self.served.get(gone[0], ("", ""))[0] != key:
            return
        prompt = gone[0]
        del self.served[prompt]
        other = next((k for k, (p, _) in self._disk.items() if p == prompt), None)
        if other is not None:
            self.served[prompt] = (other, self._disk[other][1])
        else:
            self._numbers.pop(prompt, None)
