"""Keep the prompt directory equal to the pod's ConfigMaps.

``Syncer`` glues the pieces on one thread: ``planning`` decides, ``runtime``
paces, ``PromptDisk`` owns the directory and what is on it. A full list at
start (then the pod is ready), a re-read when a signal names a revision it
does not serve (coalesced and rate-limited), unless the signal carried that
revision signed by the operator (``trust``: then it is written without a
read), and a full list on a timer so a missed signal heals. A failed call
never removes a file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping

from prompt_contract import hops, objects, signing
from prompt_contract.selector import Selector
from prompt_contract.timing import now_rfc3339
from prompt_contract.writer import FileWriteError, PromptFiles, Staged

from .disk import PromptDisk
from .kubeapi import ApiError, Expired, KubeClient, NotFound
from .metrics import Metrics
from .planning import (
    MAX_PENDING_NEW,
    Action,
    Desired,
    admitted,
    by_key,
    cache_first,
    desired_from_configmap,
    newer,
    plan,
    single_action,
    trusted_from_cache,
    up_to_date,
)
from .runtime import Health, Work, WorkLoop
from .trust import KeyRing, Tombstones

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

logger = logging.getLogger(__name__)


class SyncIncomplete(Exception):
    """A sync read everything but could not write every file; it is retried."""


class Syncer:
    """One thread that reads the API server and owns the directory between reads.

    ``signal()`` runs on server threads: it marks stale names dirty and waits
    (bounded) for the cycle that reads them, or writes revisions signed by the
    operator itself while no cycle holds the directory (``_writing``: one
    writer at a time, always). The syncer thread waits for work,
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
        self._disk = PromptDisk(files, namespace)
        self._namespace = namespace
        self._selector = selector
        self._pod = pod
        self.metrics = metrics or Metrics()
        self._loop = WorkLoop(
            self._disk.lock,
            resync_seconds=resync_seconds,
            reads_per_second=reads_per_second,
            burst=burst,
        )
        self.health = Health()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncer", daemon=True)
        # The keys ConfigMap carries the managed-by label too; it is no revision.
        self._label_selector = ",".join(
            filter(
                None,
                [
                    f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}",
                    f"!{signing.KEYS_LABEL}",
                    selector.text,
                ],
            )
        )
        self.keys = KeyRing(namespace)
        self._removed = Tombstones()  # Prompts whose file a complete list removed
        # Held by whoever changes the directory: this thread for a cycle, or a
        # server thread writing a signed revision (``signal``). Taken before the
        # disk's lock, never while holding it.
        self._writing = threading.Lock()

    # -- public ---------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self._namespace

    def start(self) -> None:
        # Files from before a container restart (the emptyDir outlives it) are
        # served, and so answer signals, until the first sync says otherwise.
        self._disk.load()
        self._thread.start()

    def stop(self) -> None:
        self._loop.stop()
        # At most 3 s (a read in flight times out after 10): with the server's 0.5 s
        # poll the sidecar exits within 5 s of SIGTERM; the thread is a daemon.
        self._thread.join(timeout=3)

    def revisions(self) -> dict[str, str]:
        """Prompt name -> revision on disk (a copy)."""
        return self._disk.revisions()

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

    def signal(
        self,
        pairs: Iterable[tuple[str, str]],
        wait: float = 2.0,
        vouched: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, str | None]:
        """Note signalled revisions; wait (bounded) until they are read (or, for
        those ``vouched`` for by a signature, written); say what is served.

        When every stale revision is vouched for and no cycle holds the directory,
        they are written here (no hand-off to the syncer's thread and back, about
        a tenth of a signed edit's CPU); what is left goes to the syncer."""
        pairs = list(pairs)
        arrived = time.monotonic()
        with self._loop.cond:  # the disk's lock: what is served and pending, at once
            new = admitted(pairs, self._disk.served, self._loop.pending.names, MAX_PENDING_NEW)
            trusted = {n: cm for n, cm in (vouched or {}).items() if self._may_take(n, cm)}
            busy = self._loop.pending.busy(n for n, _ in new or ())
        if new is not None and not busy and all(n in trusted for n, _ in new):
            new = self._write_now(new, trusted, arrived)
        with self._loop.cond:
            if new:
                self._loop.submit(new, arrived, arrived + wait, trusted)
            served = self._disk.served
            return {name: served.get(name, ("", None))[1] for name, _ in pairs}

    def _write_now(
        self, pairs: list[tuple[str, str]], vouched: Mapping[str, dict[str, Any]], arrived: float
    ) -> list[tuple[str, str]]:
        """Write vouched-for revisions on this thread; returns the pairs left for
        the syncer (all of them while a cycle holds the directory)."""
        if not self._writing.acquire(blocking=False):
            return pairs
        left = list(pairs)
        try:
            while left:
                name = left[0][0]
                action = self._signed_action(name, vouched[name])
                if action is None or action.kind == "list":
                    break  # the syncer reads or lists it
                if action.kind == "write" and action.desired is not None:
                    self._write(action.desired, arrived)
                left.pop(0)
        except Exception:  # the syncer does it again, says why, and backs off
            pass
        finally:
            self._writing.release()
        return left

    def _signed_action(self, name: str, configmap: dict[str, Any]) -> Action | None:
        """What a verified revision asks for; None when it names a revision whose
        file a list removed (then only a read tells deleted from new)."""
        result = desired_from_configmap(configmap, self._selector, self._pod)
        if isinstance(result, Desired) and self._removed.covers(
            result.prompt, result.uid, result.number
        ):  # a replayed signed revision of a deleted or unselected Prompt
            logger.info("signed revision of prompt %s names one removed; reading it", name)
            return None
        with self._loop.cond:
            action = single_action(name, result, *self._disk.records())
        if action.kind == "write":
            self.metrics.inc("signed_writes_total")
        return action

    def _may_take(self, name: str, configmap: dict[str, Any]) -> bool:
        """Whether a verified revision may be written without a read. A signature
        proves the revision existed, not that it still does: for a Prompt this pod
        does not serve (deleted before it started or restarted, so no tombstone
        here) or whose file a list removed, only the API server tells deleted from
        new, so the entry is a hint, read within the rate limit like any other."""
        if name not in self._disk.served:
            return False
        labels = (configmap.get("metadata") or {}).get("labels") or {}
        uid = labels.get(objects.PROMPT_UID_LABEL)
        return not self._removed.covers(name, uid, objects.revision_number_of(configmap))

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._loop.stopped:
            try:
                with self._writing:
                    self._full_sync()
                break
            except Exception as exc:  # never let the thread die: retry after backoff
                self._loop.sleep_until(self._failed(exc))
        if self._loop.stopped:
            return
        self.health.ready = True
        self.ready.set()
        logger.info(
            "initial sync done: %d prompt files in %s",
            len(self._disk.served),
            self._disk.directory,
        )
        while self._cycle():
            pass

    def _cycle(self) -> bool:
        """Wait for work, then do one read; False once stopped."""
        with self._loop.cond:  # the disk's records are read under the lock
            work = self._loop.take(self._disk.served)
        if work is None:
            return False
        with self._writing:
            self._do(work)
        return True

    def _do(self, work: Work) -> None:
        """One cycle's reads and writes (``_writing`` held)."""
        try:
            if self.keys.refresh_wanted():  # a signal named a key we do not know
                self._loop.charge()
                self.keys.read(self._client)
            for name, (arrived, revision, configmap) in work.carried.items():
                self._sync_one(name, revision, arrived, configmap)
            if work.full:
                self._full_sync({name: arrived for name, (arrived, _) in work.names.items()})
            else:
                for name, (arrived, revision) in work.names.items():
                    self._sync_one(name, revision, arrived)
                self._succeeded()
        except Exception as exc:
            self._failed(exc, work)
            return
        self._loop.done(work)

    def _failed(self, exc: Exception, work: Work | None = None) -> float:
        """Back off (``work``'s names wait again); returns when to retry."""
        retry_at = self._loop.failed(work)
        self.metrics.inc("sync_failures_total")
        self.health.degraded = True
        self.health.last_error = str(exc)
        if isinstance(exc, (ApiError, SyncIncomplete, FileWriteError)):
            # Expected trouble (the API server, a full disk), already said plainly.
            logger.warning("sync failed, keeping the files as they are: %s", exc)
        else:  # a bug or the file system: say where
            logger.error("sync failed, keeping the files as they are", exc_info=exc)
        return retry_at

    def _succeeded(self, listed: bool = False) -> None:
        self._loop.succeeded(listed)
        self.metrics.inc("syncs_total")
        self.health.degraded = False
        self.health.last_error = None
        self.health.last_sync = now_rfc3339()
        self.metrics.files = len(self._disk.served)

    # -- reads --------------------------------------------------------------------------

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
        if self.keys.learned:  # keys are read once a signed signal asks; then on every list
            self.keys.read(self._client)
        present = self._disk.present()
        on_disk = self._disk.keys()
        staged: dict[str, Staged] = {}  # Prompt -> its staged files, until written or dropped
        self.metrics.inc("rereads_total")
        try:
            current = self._list_current(present, on_disk, staged)
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
                self._disk.discard(leftover)
        for key in todo.removes:
            self._remove(key, present[key][0])
        self._disk.set_numbers(wanted)
        if failed:
            raise SyncIncomplete(f"{failed} prompt files could not be written (see above)")
        self._succeeded(listed=True)

    def _list_current(
        self, present: Mapping[str, tuple[str, str]], on_disk: set[str], staged: dict[str, Staged]
    ) -> dict[str, Desired]:
        """Prompt -> its highest revision, page by page; texts to write are parked in
        staging (recorded in ``staged``) so one page at a time is held in memory."""
        current: dict[str, Desired] = {}
        for page in self._client.list_configmaps(self._namespace, self._label_selector):
            for cm in page:
                item = desired_from_configmap(cm, self._selector, self._pod)
                if isinstance(item, str):
                    name = (cm.get("metadata") or {}).get("name")
                    logger.warning("skipping ConfigMap %s: %s", name, item)
                elif newer(item, current.get(item.prompt)):
                    dropped = staged.pop(item.prompt, None)
                    if dropped is not None:
                        self._disk.discard(dropped)
                    if up_to_date(item, present, on_disk):
                        item = item.without_text()
                    else:
                        item = self._disk.park(item)
                        if item.staged is not None:
                            staged[item.prompt] = item.staged
                    current[item.prompt] = item
            del page
        return current

    def _sync_one(
        self, name: str, revision: str, arrived: float, signed: dict[str, Any] | None = None
    ) -> None:
        """Read the one revision a signal names (or take the ConfigMap a signed
        signal carried); an empty revision lists everything."""
        if not revision:  # "no longer concerns you": only a full list can tell
            self._full_sync({name: arrived})
            return
        action = self._signed_action(name, signed) if signed is not None else None
        if action is None:
            with self._loop.cond:
                cached = cache_first(name, self._disk.served)
            action = self._read_one(name, revision, cached=cached)
            if cached and not trusted_from_cache(action):
                # A second read for this signal: it costs a token too, so a flood of
                # forged revisions reads no more than the rate limit allows.
                self._loop.charge()
                action = self._read_one(name, revision, cached=False)
        if action.kind == "list":
            logger.info("prompt %s: %s; listing everything", name, action.reason)
            # A second read for this signal: it costs a token too, or forged
            # revisions of a served Prompt would read twice the rate.
            self._loop.charge()
            self._full_sync({name: arrived})
        elif action.kind == "write" and action.desired is not None:
            self._write(action.desired, arrived)
        else:
            logger.debug("signal for prompt %s changes nothing: %s", name, action.reason)

    def _read_one(self, name: str, revision: str, *, cached: bool) -> Action:
        """GET one revision's ConfigMap and decide what it asks for."""
        self.metrics.inc("rereads_total")
        try:
            cm = self._client.get_configmap(
                self._namespace, objects.configmap_name(name, revision), cached=cached
            )
            result: Desired | str | None = desired_from_configmap(cm, self._selector, self._pod)
        except NotFound:
            result = None
        with self._loop.cond:  # only this thread changes them; the lock is for the server's reads
            action = single_action(name, result, *self._disk.records())
        if result is not None and (not cached or trusted_from_cache(action)):
            # The hop trace times the read that is acted on, not a cached one read again.
            hops.mark(hops.FETCHED, f"{self._namespace}/{name}", revision, self._pod)
        return action

    # -- writes -------------------------------------------------------------------------

    def _write(self, item: Desired, arrived: float | None) -> None:
        """Show one prompt's file; raises ``FileWriteError`` (old file intact)."""
        try:
            written = self._disk.show(item)
        except FileWriteError as exc:
            self.metrics.inc("write_failures_total")
            logger.error("prompt %s stays at its last good file: %s", item.prompt, exc)
            raise
        if written.removed_key is not None:
            self._logged_removal(written.removed_key, item.prompt)
        if not written.changed:
            return
        hops.mark(hops.RENAMED, f"{self._namespace}/{item.prompt}", item.revision, self._pod)
        self.metrics.inc("files_written_total")
        if arrived is not None:
            self.metrics.observe_latency(time.monotonic() - arrived)
        logger.info(
            "prompt %s -> %s%s at revision %s", item.prompt, item.key, self._disk.ext, item.revision
        )

    def _remove(self, key: str, prompt: str) -> None:
        with self._loop.cond:
            held = self._disk.records()[1].get(prompt)
        if self._disk.remove(key):
            if held is not None:
                self._removed.bury(prompt, *held)
            self._logged_removal(key, prompt)

    def _logged_removal(self, key: str, prompt: str) -> None:
        self.metrics.inc("files_removed_total")
        logger.info("removed %s%s (prompt %s)", key, self._disk.ext, prompt)
