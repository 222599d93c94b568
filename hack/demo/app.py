"""The demo's "app": prints its prompt whenever the file under it changes.

It reads the directory twice, the way apps do today (prompt-hot-reloading's
FileSystemSource) and with this project's client, to show both see the change.
"""

from __future__ import annotations

import sys
import time

from prompt_hot_reloading import PromptRegistry as HotReloadingRegistry
from prompt_hot_reloading.prompt_source.file_system_source import FileSystemSource

from prompt_client import PromptRegistry


def main(directory: str, key: str) -> None:
    theirs = HotReloadingRegistry(FileSystemSource(directory))
    ours = PromptRegistry(directory)
    last = None

    def theirs_text() -> str:
        try:
            return str(theirs[key])
        except KeyError:
            return ""

    while True:
        text = ours.get(key)
        if text != last:
            info = ours.info(key) if text is not None else None
            first_line = (text or "<missing>").strip().splitlines()[0][:70]
            print(
                f"{time.time():.3f} app: {key} rev={info.revision if info else None} "
                f"| {first_line!r} | prompt-hot-reloading sees the same: "
                f"{theirs_text().replace(chr(13), '') == (text or '').replace(chr(13), '')}",
                flush=True,
            )
            last = text
        time.sleep(0.005)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
