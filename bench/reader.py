"""A separate process that watches pods' prompt directories and reports, for every
file change, when it saw which bytes: the clock stops here, outside our code.

Usage: python -m bench.reader DIR [DIR ...]; prints "<time> <dir index> <name> <sha256>".
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

from watchfiles import watch


def main(dirs: list[str]) -> None:
    index = {os.path.realpath(d): i for i, d in enumerate(dirs)}
    print("ready", flush=True)
    # Small batches: the time is taken when a batch is yielded, so a long grouping
    # window would add its length to every figure.
    for changes in watch(*dirs, recursive=False, step=1, debounce=5, raise_interrupt=False):
        now = time.time()
        for _, path in changes:
            name = os.path.basename(path)
            if name.startswith("."):
                continue
            try:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()[:16]
            except OSError:
                continue
            i = index.get(os.path.realpath(os.path.dirname(path)), -1)
            sys.stdout.write(f"{now:.6f} {i} {name} {digest}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
