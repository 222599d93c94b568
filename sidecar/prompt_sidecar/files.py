"""The writer side of the file contract (see ``prompt_client.contract``).

Every change is atomic and shows up to a watcher of the prompt directory as a
create or modify event of ``<key><ext>``:

1. metadata is written into ``.prompts/staging/`` and renamed into
   ``.prompts/meta/<key>.json``;
2. the text is written into ``.prompts/staging/`` and renamed to ``<key><ext>``.

Readers that watch the directory without recursion never see the staging
files. All operations go through directory file descriptors opened with
``O_NOFOLLOW``, so a symlink planted in the hidden directories can never send
a write elsewhere; a planted symlink at ``<key><ext>`` is replaced by the
rename, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator

from prompt_client.contract import (
    DEFAULT_EXT,
    HIDDEN_DIR,
    META_SUFFIX,
    PromptMeta,
    key_problem,
    text_sha256,
)

FILE_MODE = 0o644  # the app container may run as another user; it only reads
DIR_MODE = 0o755
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileWriteError(OSError):
    """A prompt file could not be written; the previous file is intact."""


def ext_problem(ext: str) -> str | None:
    if ext and not ext.startswith("."):
        return "the extension must start with '.', for example .txt"
    if "/" in ext or "\x00" in ext or len(ext) > 16:
        return "the extension must be at most 16 characters with no '/' or NUL"
    return None


class PromptFiles:
    """Write, remove and inspect prompt files in one directory."""

    def __init__(self, directory: str, ext: str = DEFAULT_EXT) -> None:
        problem = ext_problem(ext)
        if problem:
            raise ValueError(f"bad file extension {ext!r}: {problem}")
        self.directory = os.path.abspath(directory)
        self.ext = ext

    # -- directory handling --------------------------------------------------------

    @contextlib.contextmanager
    def _dirs(self) -> Iterator[tuple[int, int, int]]:
        """File descriptors of (target, meta, staging), creating what is missing."""
        os.makedirs(self.directory, mode=DIR_MODE, exist_ok=True)
        fds: list[int] = []
        try:
            target = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(target)
            hidden = _real_subdir(target, HIDDEN_DIR)
            fds.append(hidden)
            meta = _real_subdir(hidden, "meta")
            fds.append(meta)
            staging = _real_subdir(hidden, "staging")
            fds.append(staging)
            yield target, meta, staging
        finally:
            for fd in fds:
                os.close(fd)

    # -- writes --------------------------------------------------------------------

    def write(self, meta: PromptMeta, data: bytes) -> bool:
        """Make ``<key><ext>`` hold ``data`` and its metadata ``meta``.

        Returns False, writing nothing, when both already match (``updated_at``
        aside). Raises ``FileWriteError`` (the old file intact) when it cannot.
        """
        problem = key_problem(meta.key)
        if problem:
            raise ValueError(f"refusing to write prompt key {meta.key!r}: {problem}")
        if meta.sha256 != text_sha256(data):
            raise ValueError("metadata sha256 does not match the text")
        name = meta.key + self.ext
        with self._dirs() as (target, meta_dir, staging):
            current = _read_meta(meta_dir, meta.key)
            if current is not None and _same(current, meta) and _read_file(target, name) == data:
                return False
            _place(staging, meta_dir, meta.key + META_SUFFIX, meta.to_json(), self.directory)
            _place(staging, target, name, data, self.directory)
        return True

    def remove(self, key: str) -> bool:
        """Remove ``<key><ext>`` and then its metadata. False when neither existed."""
        if key_problem(key):
            return False
        removed = False
        with self._dirs() as (target, meta_dir, _):
            for fd, name in ((target, key + self.ext), (meta_dir, key + META_SUFFIX)):
                try:
                    os.unlink(name, dir_fd=fd)  # unlink never follows a symlink
                    removed = True
                except FileNotFoundError:
                    pass
        return removed

    # -- reads ---------------------------------------------------------------------

    def keys(self) -> set[str]:
        """Keys of the regular, non-hidden ``*<ext>`` files in the directory."""
        found: set[str] = set()
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(self.ext):
                continue
            if entry.is_file(follow_symlinks=False):
                found.add(entry.name[: len(entry.name) - len(self.ext)] if self.ext else entry.name)
        return found

    def current(self, key: str) -> PromptMeta | None:
        """The metadata recorded for ``key``, or None."""
        if key_problem(key):
            return None
        with self._dirs() as (_, meta_dir, _):
            return _read_meta(meta_dir, key)

    def all_meta(self) -> dict[str, PromptMeta]:
        """Metadata of every prompt this writer (or an earlier run) recorded."""
        result: dict[str, PromptMeta] = {}
        with self._dirs() as (_, meta_dir, staging):
            for name in os.listdir(meta_dir):
                if name.endswith(META_SUFFIX):
                    meta = _read_meta(meta_dir, name[: -len(META_SUFFIX)])
                    if meta is not None:
                        result[meta.key] = meta
            # Leftovers of a crash between write and rename are garbage.
            for name in os.listdir(staging):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=staging)
        return result


def _real_subdir(parent: int, name: str) -> int:
    """Open ``name`` under ``parent`` as a real directory, replacing anything else."""
    for _ in range(3):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, DIR_MODE, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # A symlink or a file where our directory belongs: remove it, never follow it.
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise
            os.unlink(name, dir_fd=parent)
    raise FileWriteError(errno.EEXIST, f"cannot create directory {name!r}")


def _place(staging: int, dest_dir: int, name: str, data: bytes, shown: str) -> None:
    tmp = f"{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            FILE_MODE,
            dir_fd=staging,
        )
        try:
            os.fchmod(fd, FILE_MODE)  # not subject to the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=staging, dst_dir_fd=dest_dir)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=staging)
        raise FileWriteError(
            exc.errno or errno.EIO, f"could not write {os.path.join(shown, name)}: {exc.strerror}"
        ) from exc


def _read_file(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_meta(meta_dir: int, key: str) -> PromptMeta | None:
    raw = _read_file(meta_dir, key + META_SUFFIX)
    if raw is None:
        return None
    try:
        return PromptMeta.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


def _same(a: PromptMeta, b: PromptMeta) -> bool:
    return a.to_json() == PromptMeta(**{**b.__dict__, "updated_at": a.updated_at}).to_json()
