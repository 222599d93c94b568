"""Directory-descriptor file operations for the prompt directory's writer.

Every call takes directory file descriptors and never follows a symlink
(``O_NOFOLLOW``); see ``prompt_contract.writer`` for why. Split from the writer
so the writer reads as the steps of a change, these as the system calls.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

from prompt_contract.files import read_regular

FILE_MODE = 0o644  # the app container may run as another user; it only reads
DIR_MODE = 0o755
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FileWriteError(OSError):
    """A prompt file could not be written; the previous text and metadata are intact.

    ``errno`` is the cause's (``ENOSPC`` for a full disk); the message names
    the file and the cause.
    """


def real_subdir(parent: int, name: str, shown: str) -> int:
    """Open ``name`` under ``parent`` as a real directory, replacing anything else."""
    for _ in range(3):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, DIR_MODE, dir_fd=parent)
                fd = os.open(name, DIR_FLAGS, dir_fd=parent)
                try:
                    os.fchmod(fd, DIR_MODE)  # mkdir's mode is cut by the umask
                finally:
                    os.close(fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise FileWriteError(
                    exc.errno or errno.EIO,
                    f"cannot open directory {os.path.join(shown, name)}: {exc.strerror}",
                ) from exc
            # A symlink or a file where our directory belongs: remove it, never follow it.
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise
            os.unlink(name, dir_fd=parent)
    raise FileWriteError(
        errno.EEXIST, f"cannot create directory {os.path.join(shown, name)}: it keeps changing"
    )


def stage(staging: int, data: bytes, shown: str) -> str:
    """Write ``data`` to a new, uniquely named file in staging; return its name."""
    tmp = f"{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, NEW_FILE_FLAGS, FILE_MODE, dir_fd=staging)
    except OSError as exc:
        raise error("stage", shown, exc) from exc
    try:
        os.fchmod(fd, FILE_MODE)  # not subject to the umask
        if data:
            # Blocks allocated now, not delayed: ext4 renaming a file with delayed
            # blocks over an old one writes it out at once, in this process
            # (auto_da_alloc), which cost a replace about 40% more CPU and three
            # times the wall time on the critical path. A disk that is full
            # fails here, before anything is written.
            os.posix_fallocate(fd, 0, len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        os.close(fd)
        discard(staging, tmp)
        raise error("stage", shown, exc) from exc
    except BaseException:
        os.close(fd)
        discard(staging, tmp)
        raise
    try:
        os.close(fd)
    except OSError as exc:  # some file systems report a full disk only here
        discard(staging, tmp)
        raise error("stage", shown, exc) from exc
    return tmp


def rename(staging: int, tmp: str, dest_dir: int, name: str, shown_dir: str) -> None:
    try:
        os.rename(tmp, name, src_dir_fd=staging, dst_dir_fd=dest_dir)
    except OSError as exc:
        raise error("rename into place", os.path.join(shown_dir, name), exc) from exc


def error(what: str, path: str, exc: OSError) -> FileWriteError:
    cause = exc.strerror or str(exc)
    return FileWriteError(exc.errno or errno.EIO, f"could not {what} {path}: {cause}")


def discard(staging: int, *names: str) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=staging)


def read_file(dir_fd: int, name: str) -> bytes | None:
    """The bytes of regular file ``name``, or None: never through a symlink, never
    blocking on a FIFO, never more than the contract's bound (``read_regular``)."""
    try:
        found = read_regular(name, dir_fd)
    except OSError:
        return None
    return None if found is None else found[0]


def exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def has(dir_fd: int, name: str, data: bytes) -> bool:
    """Whether regular file ``name`` holds exactly ``data`` and is world-readable."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
        return False
    if stat.S_IMODE(info.st_mode) != FILE_MODE:
        return False
    return read_file(dir_fd, name) == data
