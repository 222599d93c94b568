"""The prompt directory and what this sidecar knows is on it, with one owner.

``PromptDisk`` is the only place that writes, stages, commits or removes a
prompt file (through the contract's writer) and the only place that records
what is on disk: key -> (Prompt, revision), its inverse (what each Prompt is
served as) and the revision numbers a read told us. The syncer asks it what
is there and tells it what to show; the server's threads read it under its
lock. Records change in place (an edit costs O(1), not a copy per file),
under the lock, by one writer at a time: the syncer's thread, or a server
thread writing a signed revision (``Syncer._writing`` decides which).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from prompt_contract.timing import now_rfc3339
from prompt_contract.writer import FileWriteError, PromptFiles, Staged

from .planning import Desired, OnDisk, meta_for, prompt_of, served_from


@dataclass(frozen=True, slots=True)
class Written:
    """What showing one prompt changed on disk."""

    changed: bool  # False: text and metadata were already current
    # The Prompt's key changed and its file under the old key was removed.
    removed_key: str | None = None


class PromptDisk:
    """Write, stage and remove prompt files, and remember what is on disk.

    ``lock`` guards the records; the syncer builds its condition on it, so a
    signal sees the dirty set and what is served in one consistent view.
    """

    def __init__(self, files: PromptFiles, namespace: str) -> None:
        self.files = files
        self.namespace = namespace
        self.lock = threading.RLock()
        self._disk: dict[str, tuple[str, str]] = {}  # key -> (Prompt, revision)
        self.served: dict[str, tuple[str, str]] = {}  # Prompt -> (key, revision)
        # Prompt -> (uid, revision number) once a read told us (not kept in the
        # files: after a restart the first full list fills it in).
        self._numbers: dict[str, tuple[str, int]] = {}

    @property
    def directory(self) -> str:
        return self.files.directory

    @property
    def ext(self) -> str:
        return self.files.ext

    # -- what is there ---------------------------------------------------------------

    def load(self) -> None:
        """Take what an earlier run wrote (the emptyDir outlives a container restart)
        as served until the first sync says otherwise; clears leftover staging."""
        disk = {k: (prompt_of(m), m.revision) for k, m in self.files.all_meta().items()}
        with self.lock:
            self._disk = disk
            self.served = served_from(disk)

    def present(self) -> dict[str, tuple[str, str]]:
        """Key -> (Prompt, revision) as recorded (a copy: writes change the original)."""
        with self.lock:
            return dict(self._disk)

    def keys(self) -> set[str]:
        """Keys whose file exists now (one removed behind our back is written again)."""
        return self.files.keys()

    def revisions(self) -> dict[str, str]:
        """Prompt name -> revision on disk (a copy)."""
        with self.lock:
            return {name: rev for name, (_, rev) in self.served.items()}

    def records(self) -> tuple[OnDisk, Mapping[str, tuple[str, int]], OnDisk]:
        """(served, numbers, disk) for a decision; call with ``lock`` held."""
        return self.served, self._numbers, self._disk

    def set_numbers(self, wanted: Mapping[str, Desired]) -> None:
        """After a complete list: the revision numbers of everything it chose."""
        with self.lock:
            self._numbers = {item.prompt: (item.uid, item.number) for item in wanted.values()}

    # -- changes ---------------------------------------------------------------------

    def park(self, item: Desired) -> Desired:
        """``item`` with its text staged on disk; as it was if staging fails (its write
        then fails again and says why, like any other failed write)."""
        meta = meta_for(item, self.namespace, now_rfc3339())
        try:
            return item.parked(self.files.stage(meta, item.text))
        except FileWriteError:
            return item

    def discard(self, staged: Staged) -> None:
        self.files.discard(staged)

    def show(self, item: Desired) -> Written:
        """Put ``item`` on disk (commit it when parked) and record it.

        Raises ``FileWriteError`` with the old file intact. When the Prompt's key
        changed, its old file goes, unless another Prompt holds that key now.
        """
        with self.lock:
            previous = self.served.get(item.prompt)
        if item.staged is not None:  # parked by a full list: show it
            self.files.commit(item.staged)
            changed = True
        else:
            changed = self.files.write(meta_for(item, self.namespace, now_rfc3339()), item.text)
        with self.lock:
            self._forget_key(item.key, keep=item.prompt)  # its file is this Prompt's now
            self._disk[item.key] = (item.prompt, item.revision)
            self.served[item.prompt] = (item.key, item.revision)
            self._numbers[item.prompt] = (item.uid, item.number)
        removed = None
        if previous is not None and previous[0] != item.key:
            old = self.files.current(previous[0])
            if old is not None and prompt_of(old) == item.prompt and self.remove(previous[0]):
                removed = previous[0]
        return Written(changed, removed)

    def remove(self, key: str) -> bool:
        """Remove ``key``'s file and its record; False when no file was there."""
        removed = self.files.remove(key)
        with self.lock:
            self._forget_key(key)
        return removed

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
