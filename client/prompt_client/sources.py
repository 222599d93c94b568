"""Prompt sources: where a registry's texts come from.

``FileSystemSource`` has the interface of ``prompt-hot-reloading``'s source of
the same name (``load_all()``, ``watch(on_change)``) and fixes what that one
gets wrong: hidden files are not prompts, a file that vanishes between an
event and the read is skipped instead of killing the watcher, deleted files
are noticed, and the watcher restarts itself if anything ever goes wrong.

Watching uses watchfiles (the Rust ``notify`` crate under a small Python
API): native inotify/FSEvents/kqueue, events batched over a few milliseconds,
a rescan when the kernel's event queue overflows, and a clean stop on an
event. Any event is only a wake-up: the registry rescans the directory and
compares file identities, and it also rescans every ``rescan_interval``
seconds, so a lost event costs at most that long.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable

from .scan import Entry, scan_directory

__all__ = ["FileSystemSource", "PromptDirectoryError", "check_directory"]

logger = logging.getLogger("prompt_client")

_STEP_MS = 5  # quiet time before a batch of events is handed over: keeps latency low
_DEBOUNCE_MS = 50  # a steady stream of events still wakes us this often


class FileSystemSource:
    """Prompts as files in one directory: ``<name>.<ext>`` holds prompt ``name``.

    Pass it to ``PromptRegistry`` (which also accepts the directory itself).
    """

    def __init__(self, prompt_dir: str | os.PathLike[str]) -> None:
        self.prompt_dir = os.fspath(prompt_dir)

    def load_all(self) -> dict[str, str]:
        """Every prompt in the directory now, by name."""
        return {name: entry.text for name, entry in scan_directory(self.prompt_dir).items()}

    def watch(self, on_change: Callable[[str, str], None]) -> None:
        """Call ``on_change(name, text)`` for every created or changed prompt, from a
        daemon thread (the ``prompt-hot-reloading`` interface, which has no
        removals; ``PromptRegistry`` handles those itself)."""
        state: dict[str, dict[str, Entry]] = {"entries": scan_directory(self.prompt_dir)}

        def refresh() -> None:
            old = state["entries"]
            new = scan_directory(self.prompt_dir, old)
            state["entries"] = new
            for name, entry in new.items():
                if name not in old or not old[name].same_content(entry):
                    try:
                        on_change(name, entry.text)
                    except Exception:
                        logger.exception("on_change callback failed for prompt %r", name)

        self.start_watcher(refresh, threading.Event(), 2.0)

    def start_watcher(
        self, refresh: Callable[[], None], stop: threading.Event, rescan_interval: float
    ) -> threading.Thread:
        """Run ``refresh()`` on a daemon thread after every change and every
        ``rescan_interval`` seconds, until ``stop`` is set."""
        thread = threading.Thread(
            target=watch_forever,
            args=(self.prompt_dir, refresh, stop, rescan_interval),
            name=f"prompt-watcher:{self.prompt_dir}",
            daemon=True,
        )
        thread.start()
        return thread


def _identity(directory: str) -> tuple[int, int] | None:
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def watch_forever(
    directory: str, refresh: Callable[[], None], stop: threading.Event, rescan_interval: float
) -> None:
    """Call ``refresh()`` on every change and every ``rescan_interval`` seconds; never die.

    Any error (the directory missing, replaced, or ``refresh`` failing) is
    logged and the watch starts again after a short backoff.
    """
    from watchfiles import watch

    backoff = 0.05
    while not stop.is_set():
        try:
            identity = _identity(directory)
            if identity is None:
                # Not there yet (the sidecar creates it): poll until it is.
                refresh()
                stop.wait(min(rescan_interval, 0.5))
                continue
            refresh()  # catch up with anything missed while (re)starting
            for _ in watch(
                directory,
                watch_filter=None,  # every event is a wake-up, whatever its name
                stop_event=stop,
                recursive=False,
                step=_STEP_MS,
                debounce=_DEBOUNCE_MS,
                rust_timeout=max(1, int(rescan_interval * 1000)),
                yield_on_timeout=True,  # the periodic rescan
                raise_interrupt=False,
            ):
                refresh()
                backoff = 0.05
                if _identity(directory) != identity:
                    logger.info("prompt directory %s was replaced; watching the new one", directory)
                    break
        except BaseException:  # even SystemExit from a callback must not end the watch
            logger.exception("prompt watcher for %s failed; restarting", directory)
            stop.wait(backoff)
            backoff = min(backoff * 2, max(rescan_interval, 0.05))


class PromptDirectoryError(FileNotFoundError):
    """The prompt directory does not exist; the message says how to get one."""

    def __str__(self) -> str:
        return str(self.args[0])  # the message alone, without OSError's "[Errno 2] ..."


def check_directory(directory: str, how: str = "") -> None:
    """Raise ``PromptDirectoryError`` when ``directory`` is not a directory.

    ``how`` says where the path came from (``PROMPT_DIR``, its default).
    """
    if os.path.isdir(directory):
        return
    shown = os.path.abspath(directory)
    error = PromptDirectoryError(
        f"prompt directory {shown}{how} does not exist. In a pod labelled "
        "prompts.dev/inject=true the sidecar writes it and PROMPT_DIR points at it; on a "
        "laptop, write it from your Prompt manifests with `prompt-operator files "
        "MANIFESTS --out DIR` and set PROMPT_DIR=DIR. To start empty and wait for the "
        "directory, pass wait_for_directory=True."
    )
    error.errno, error.filename = errno.ENOENT, directory
    raise error


def is_their_file_source(source: object) -> bool:
    """Whether ``source`` is prompt-hot-reloading's own ``FileSystemSource``."""
    return type(source).__module__.startswith("prompt_hot_reloading.") and isinstance(
        getattr(source, "prompt_dir", None), str
    )
