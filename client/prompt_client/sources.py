"""Prompt sources: where a registry's texts come from.

``FileSystemSource`` has the interface of ``prompt-hot-reloading``'s source of
the same name (``load_all()``, ``watch(on_change)``) and fixes what that one
gets wrong: hidden files are not prompts, a file that vanishes between an
event and the read is skipped instead of killing the watcher, and the watcher
restarts itself if anything ever goes wrong.

Watching uses watchfiles (the Rust ``notify`` crate under a small Python
API): it batches bursts of events, survives event-queue overflows by
rescanning, and stops cleanly on an event, which is what a long-lived app
needs. Any event is only a wake-up; the registry rescans and compares.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("prompt_client")


class FileSystemSource:
    """Prompts as files in one directory: ``<name>.<ext>`` holds prompt ``name``."""

    def __init__(self, prompt_dir: str) -> None:
        self.prompt_dir = prompt_dir

    def load_all(self) -> dict[str, str]:
        """Every prompt in the directory, by name."""
        from .registry import scan_directory

        return {name: entry.text for name, entry in scan_directory(self.prompt_dir).items()}

    def watch(self, on_change: Callable[[str, str], None]) -> None:
        """Call ``on_change(name, text)`` for every created or changed prompt, on a
        daemon thread (the ``prompt-hot-reloading`` interface)."""
        from .registry import scan_directory

        state = {"entries": scan_directory(self.prompt_dir)}

        def refresh() -> None:
            old = state["entries"]
            new = scan_directory(self.prompt_dir, old)
            state["entries"] = new
            for name, entry in new.items():
                if old.get(name) is not entry:
                    on_change(name, entry.text)

        self.start_watcher(refresh, threading.Event(), 2.0)

    def start_watcher(
        self, refresh: Callable[[], None], stop: threading.Event, rescan_interval: float
    ) -> threading.Thread:
        thread = threading.Thread(
            target=_watch_forever,
            args=(self.prompt_dir, refresh, stop, rescan_interval),
            name=f"prompt-watcher:{self.prompt_dir}",
            daemon=True,
        )
        thread.start()
        return thread


def _watch_forever(
    directory: str, refresh: Callable[[], None], stop: threading.Event, rescan_interval: float
) -> None:
    """Rescan on every change and every ``rescan_interval`` seconds; never die."""
    from watchfiles import watch

    backoff = 0.1
    while not stop.is_set():
        try:
            refresh()  # catch up with anything missed while (re)starting
            for _ in watch(
                directory,
                stop_event=stop,
                recursive=False,
                step=5,  # ms of quiet before a batch is yielded: changes show up fast
                debounce=200,
                rust_timeout=int(rescan_interval * 1000),
                yield_on_timeout=True,  # a periodic rescan as a safety net
                raise_interrupt=False,
            ):
                refresh()
                backoff = 0.1
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                logger.debug("prompt directory %s does not exist yet", directory)
            else:
                logger.exception("prompt watcher for %s failed; restarting", directory)
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
