"""A separate process that watches pods' prompt directories and reports, for every
file change, when it saw which bytes: the clock stops here, outside our code.

Usage: python -m bench.reader DIR [DIR ...]; prints "ready" once it sees changes
in every directory, then "<time> <dir index> <name> <sha256>" per change.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time

from watchfiles import watch

# Touched in every directory until the watch reports it there: only then is the
# watch in place, so no edit the bench sends afterwards can be missed.
PROBE = ".reader-probe"


def _probe(dirs: list[str], done: threading.Event) -> None:
    while not done.is_set():
        for d in dirs:
            with open(os.path.join(d, PROBE), "w") as handle:
                handle.write(str(time.time()))
        done.wait(0.05)


def main(dirs: list[str]) -> None:
    index = {os.path.realpath(d): i for i, d in enumerate(dirs)}
    waiting = set(index.values())
    watching = threading.Event()
    threading.Thread(target=_probe, args=(dirs, watching), daemon=True).start()
    # Small batches: the time is taken when a batch is yielded, so a long grouping
    # window would add its length to every figure.
    for changes in watch(*dirs, recursive=False, step=1, debounce=5, raise_interrupt=False):
        now = time.time()
        for _, path in changes:
            name = os.path.basename(path)
            i = index.get(os.path.realpath(os.path.dirname(path)), -1)
            if name == PROBE:
                if waiting:
                    waiting.discard(i)
                    if not waiting:
                        watching.set()
                        sys.stdout.write("ready\n")
                continue
            if name.startswith("."):
                continue
            try:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()[:16]
            except OSError:
                continue
            sys.stdout.write(f"{now:.6f} {i} {name} {digest}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
