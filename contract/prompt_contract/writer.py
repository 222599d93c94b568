"""The writer side of the file contract (see ``prompt_contract.files``).

The one implementation of the prompt directory's writer: the sidecar and
`prompt-operator files` both write through it. Import it as
``prompt_contract.writer``; ``prompt_contract`` itself imports nothing, so an
app that only reads files never loads it.

Every change is atomic and shows up to a watcher of the prompt directory as a
create or modify event of ``<key><ext>``:

1. the metadata and the text are both written into ``.prompts/staging/``
   under unique names (so a full disk or any other error fails here, before
   anything a reader sees has changed);
2. the metadata is renamed to ``.prompts/meta/<key>.json``;
3. the text is renamed to ``<key><ext>``.

A call document (metadata ``form`` "call", see ``prompt_contract.calls``) is
written to ``<key>.json`` instead, whatever the extension. A key never has two
top-level files: when a Prompt moves between the text and the call form, the
new file is renamed into place first and the other one removed after, so a
reader never finds the key missing; ``remove`` removes whichever exists.

Readers that watch the directory without recursion never see the staging
files, and a reader that checks the text's hash against the metadata can tell
when it caught the writer between steps 2 and 3. Should step 3 fail, the
previous metadata is put back, so text and metadata still agree.

``write`` does all three steps at once. ``stage`` (step 1) and ``commit``
(steps 2 and 3) apart let a caller park many texts on disk and show them
later: a full list stages each text as its page arrives and commits after
the last page, so the texts wait in the page cache, not in the process.

Symlinks: every operation goes through directory file descriptors, and
nothing under the prompt directory is ever opened through a symlink
(``O_NOFOLLOW``). A symlink (or a file) planted where ``.prompts``,
``.prompts/meta`` or ``.prompts/staging`` belongs is *replaced* by a real
directory: the writer owns these names, and the sidecar must keep delivering
rather than stop on a junk entry. A planted symlink at ``<key><ext>`` or at a
metadata file is replaced by the rename, which never follows its destination.
The prompt directory itself is configuration and is used as given.

No fsync: the directory is an ``emptyDir`` that does not outlive the pod.
Only the standard library is used, so this module is cheap to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

from prompt_contract import dirfd
from prompt_contract.calls import CALL_EXT
from prompt_contract.dirfd import DIR_MODE, FILE_MODE, FileWriteError
from prompt_contract.files import (
    DEFAULT_EXT,
    HIDDEN_DIR,
    META_SUFFIX,
    PromptMeta,
    file_ext,
    text_sha256,
)
from prompt_contract.keys import key_problem

__all__ = ["DIR_MODE", "FILE_MODE", "FileWriteError", "PromptFiles", "Staged", "ext_problem"]


@dataclasses.dataclass(frozen=True, slots=True)
class Staged:
    """A prompt's metadata and text waiting in staging, where no reader looks.

    ``PromptFiles.commit`` shows them; ``PromptFiles.discard`` drops them.
    """

    key: str
    meta_tmp: str  # names inside the staging directory
    text_tmp: str
    name: str = ""  # the file's name in place: <key><ext>, or <key>.json for a call document


def ext_problem(ext: str) -> str | None:
    """Why ``ext`` cannot be the prompt files' extension, or ``None`` when it can."""
    if ext and not ext.startswith("."):
        return "the extension must start with '.', for example .txt"
    if "/" in ext or "\x00" in ext or len(ext) > 16:
        return "the extension must be at most 16 characters with no '/' or NUL"
    return None


def _checked_key(key: str) -> str:
    problem = key_problem(key)
    if problem:
        raise ValueError(f"refusing prompt key {key!r}: {problem}")
    return key


# Keys a writer remembers as checked (see ``PromptFiles._checked_meta``), at most.
MAX_CHECKED_KEYS = 4096


class PromptFiles:
    """Write, remove and inspect prompt files in one directory."""

    def __init__(self, directory: str, ext: str = DEFAULT_EXT) -> None:
        problem = ext_problem(ext)
        if problem:
            raise ValueError(f"bad file extension {ext!r}: {problem}")
        self.directory = os.path.abspath(directory)
        self.ext = ext
        # Paths for error messages, joined once rather than on every write.
        self._hidden_shown = os.path.join(self.directory, HIDDEN_DIR)
        self._meta_shown = os.path.join(self._hidden_shown, "meta")
        # Keys already checked: the key rules cost an edit more than its hash, and a
        # sidecar writes the same keys over and over (strings it holds anyway; a bad
        # key is never remembered, so it is refused every time).
        self._checked: set[str] = set()

    def _checked_meta(self, meta: PromptMeta, data: bytes) -> str:
        """``meta``'s key, once it can name a file and ``meta`` describes ``data``."""
        key = meta.key
        if key not in self._checked:
            _checked_key(key)
            if len(self._checked) >= MAX_CHECKED_KEYS:
                self._checked.clear()
            self._checked.add(key)
        if meta.sha256 != text_sha256(data):
            raise ValueError(f"prompt key {key!r}: metadata sha256 does not match the text")
        return key

    # -- directory handling --------------------------------------------------------

    @contextlib.contextmanager
    def _dirs(self) -> Iterator[tuple[int, int, int]]:
        """File descriptors of (target, meta, staging), creating what is missing."""
        fds: list[int] = []
        try:
            try:
                self._open_dirs(fds)
            except FileWriteError:
                raise
            except OSError as exc:
                raise dirfd.error("prepare", self.directory, exc) from exc
            yield fds[0], fds[2], fds[3]
        finally:
            for fd in fds:
                os.close(fd)

    def _open_dirs(self, fds: list[int]) -> None:
        """Append the fds of target, .prompts, meta and staging to ``fds`` (closed by
        the caller, also when this fails half way)."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            fds.append(os.open(self.directory, flags))
        except FileNotFoundError:
            os.makedirs(self.directory, mode=DIR_MODE, exist_ok=True)
            os.chmod(self.directory, DIR_MODE)  # mkdir's mode is cut by the umask
            fds.append(os.open(self.directory, flags))
        fds.append(dirfd.real_subdir(fds[0], HIDDEN_DIR, self.directory))
        fds.append(dirfd.real_subdir(fds[1], "meta", self._hidden_shown))
        fds.append(dirfd.real_subdir(fds[1], "staging", self._hidden_shown))

    # -- writes --------------------------------------------------------------------

    def write(self, meta: PromptMeta, data: bytes) -> bool:
        """Make ``<key><ext>`` hold ``data`` and its metadata ``meta``, atomically.

        Returns False, writing nothing, when both already match (``updated_at``
        aside). Raises ``ValueError`` for a key that cannot name a file and
        ``FileWriteError`` (previous text and metadata intact) when the disk is
        full or anything else fails.
        """
        key = self._checked_meta(meta, data)
        name = key + file_ext(self.ext, meta.form)
        meta_name = key + META_SUFFIX
        with self._dirs() as (target, meta_dir, staging):
            old_meta = dirfd.read_file(meta_dir, meta_name)
            if (
                old_meta is not None
                # An edit changes the text's hash: then the stored metadata is not
                # parsed only to find it differs (its JSON holds the hash as is).
                and meta.sha256.encode() in old_meta
                and _same(old_meta, meta)
                and dirfd.has(target, name, data)
                and not self._other_exists(target, key, name)
            ):
                return False
            staged = self._stage(staging, meta, data)
            self._commit(staged, target, meta_dir, staging, old_meta)
        return True

    def stage(self, meta: PromptMeta, data: bytes) -> Staged:
        """Write ``meta`` and ``data`` into staging; nothing a reader sees changes.

        Raises ``ValueError`` like ``write`` and ``FileWriteError`` (nothing left
        behind) when the disk is full.
        """
        self._checked_meta(meta, data)
        with self._dirs() as (_, _, staging):
            return self._stage(staging, meta, data)

    def commit(self, staged: Staged) -> None:
        """Rename staged metadata, then text, into place (steps 2 and 3 of ``write``).

        Raises ``FileWriteError`` with the previous text and metadata intact and
        the staged files removed.
        """
        try:
            with self._dirs() as (target, meta_dir, staging):
                old_meta = dirfd.read_file(meta_dir, staged.key + META_SUFFIX)
                self._commit(staged, target, meta_dir, staging, old_meta)
        except BaseException:
            self.discard(staged)  # mostly gone already; not when the directories failed
            raise

    def discard(self, staged: Staged) -> None:
        """Remove staged files that will not be committed (best effort)."""
        with contextlib.suppress(OSError), self._dirs() as (_, _, staging):
            dirfd.discard(staging, staged.meta_tmp, staged.text_tmp)

    def _stage(self, staging: int, meta: PromptMeta, data: bytes) -> Staged:
        meta_name = meta.key + META_SUFFIX
        name = meta.key + file_ext(self.ext, meta.form)
        meta_tmp = dirfd.stage(staging, meta.to_json(), f"{self._meta_shown}/{meta_name}")
        try:
            text_tmp = dirfd.stage(staging, data, f"{self.directory}/{name}")
        except BaseException:
            dirfd.discard(staging, meta_tmp)
            raise
        return Staged(meta.key, meta_tmp, text_tmp, name)

    def _commit(
        self, staged: Staged, target: int, meta_dir: int, staging: int, old_meta: bytes | None
    ) -> None:
        meta_name = staged.key + META_SUFFIX
        try:
            dirfd.rename(staging, staged.meta_tmp, meta_dir, meta_name, self._meta_shown)
        except BaseException:
            dirfd.discard(staging, staged.meta_tmp, staged.text_tmp)
            raise
        name = staged.name or staged.key + self.ext
        try:
            dirfd.rename(staging, staged.text_tmp, target, name, self.directory)
        except BaseException:
            dirfd.discard(staging, staged.text_tmp)
            self._restore_meta(staging, meta_dir, meta_name, old_meta)
            raise
        # The key's file of the other form goes only now that the new one is in
        # place: a reader finds the old form or the new one, never neither.
        other = self._other_of(staged.key, name)
        if other != name:
            try:
                os.unlink(other, dir_fd=target)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise dirfd.error("remove", self._shown(other), exc) from exc

    def _other_exists(self, target: int, key: str, name: str) -> bool:
        """Whether ``key`` still has a file of the form other than ``name``'s."""
        other = self._other_of(key, name)
        return other != name and dirfd.exists(target, other)

    def _other_of(self, key: str, name: str) -> str:
        """The name of ``key``'s file in the form ``name`` is not (the same when ext is .json)."""
        text_name, call_name = key + self.ext, key + CALL_EXT
        return call_name if name == text_name else text_name

    def _restore_meta(self, staging: int, meta_dir: int, meta_name: str, old: bytes | None) -> None:
        """Put back the metadata that matches the text still in place (best effort)."""
        with contextlib.suppress(OSError):
            if old is None:
                os.unlink(meta_name, dir_fd=meta_dir)
                return
            tmp = dirfd.stage(staging, old, meta_name)
            try:
                os.rename(tmp, meta_name, src_dir_fd=staging, dst_dir_fd=meta_dir)
            except OSError:
                dirfd.discard(staging, tmp)

    def remove(self, key: str) -> bool:
        """Remove ``<key><ext>`` or ``<key>.json`` (whichever exists), then its
        metadata. False when none existed.

        Raises ``ValueError`` for a key that cannot name a file.
        """
        _checked_key(key)
        removed = False
        names = dict.fromkeys((key + self.ext, key + CALL_EXT))  # one name when ext is .json
        with self._dirs() as (target, meta_dir, _):
            found = [(target, name) for name in names] + [(meta_dir, key + META_SUFFIX)]
            for fd, name in found:
                try:
                    os.unlink(name, dir_fd=fd)  # unlink never follows a symlink
                    removed = True
                except FileNotFoundError:
                    pass
        return removed

    # -- reads ---------------------------------------------------------------------

    def keys(self) -> set[str]:
        """Keys of the regular, non-hidden ``*<ext>`` and ``*.json`` (call document)
        files in the directory.

        Names that are not valid keys (see ``key_problem``) are not ours and
        are left out.
        """
        found: set[str] = set()
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith("."):
                continue
            for ext in (self.ext, CALL_EXT):
                if not entry.name.endswith(ext):
                    continue
                key = entry.name[: len(entry.name) - len(ext)] if ext else entry.name
                if key_problem(key) is None and entry.is_file(follow_symlinks=False):
                    found.add(key)
        return found

    def current(self, key: str) -> PromptMeta | None:
        """The metadata recorded for ``key``, or None (``ValueError`` for a bad key)."""
        _checked_key(key)
        with self._dirs() as (_, meta_dir, _):
            return _parse_meta(dirfd.read_file(meta_dir, key + META_SUFFIX))

    def all_meta(self) -> dict[str, PromptMeta]:
        """Metadata of every prompt this writer (or an earlier run) recorded.

        Also clears the staging directory: anything there is left over from a
        crash between a write and its rename.
        """
        result: dict[str, PromptMeta] = {}
        with self._dirs() as (_, meta_dir, staging):
            for name in os.listdir(meta_dir):
                if name.endswith(META_SUFFIX):
                    meta = _parse_meta(dirfd.read_file(meta_dir, name))
                    if meta is not None and meta.key + META_SUFFIX == name:
                        result[meta.key] = meta
            for name in os.listdir(staging):
                dirfd.discard(staging, name)
        return result

    def _shown(self, *parts: str) -> str:
        return os.path.join(self.directory, *parts)


def _parse_meta(raw: bytes | None) -> PromptMeta | None:
    if raw is None:
        return None
    try:
        return PromptMeta.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


def _same(raw: bytes, new: PromptMeta) -> bool:
    """Whether stored metadata ``raw`` equals ``new`` except for ``updated_at``."""
    old = _parse_meta(raw)
    return old is not None and old == dataclasses.replace(new, updated_at=old.updated_at)
