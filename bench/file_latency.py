"""How long from the sidecar's rename to the registry serving the new text.

Run: python -m bench.file_latency [--prompts 1000] [--updates 200]

Writes with the sidecar's own writer into a temporary directory while a
PromptRegistry watches it, and prints percentiles of the time from the end
of ``PromptFiles.write`` (the rename) to the ``on_change`` callback.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

from prompt_client import PromptRegistry
from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.writer import PromptFiles


def meta(key: str, data: bytes) -> PromptMeta:
    digest = text_sha256(data)
    return PromptMeta(key, f"bench/{key}", digest[:12], digest, "2025-01-01T00:00:00Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000, help="prompts in the directory")
    parser.add_argument("--updates", type=int, default=200, help="updates to time")
    parser.add_argument("--size", type=int, default=2000, help="bytes per prompt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        files = PromptFiles(directory)
        for i in range(args.prompts):
            data = f"prompt {i} ".encode().ljust(args.size, b".")
            files.write(meta(f"p{i}", data), data)
        seen: dict[str, threading.Event] = {}
        arrived: dict[str, float] = {}

        def on_change(name: str, revision: str | None) -> None:
            if revision in seen:
                arrived[revision] = time.perf_counter()
                seen[revision].set()

        with PromptRegistry(directory) as registry:
            registry.on_change(on_change)
            samples = []
            for n in range(args.updates):
                key = f"p{n % max(args.prompts, 1)}"
                data = f"update {n} ".encode().ljust(args.size, b"!")
                m = meta(key, data)
                seen[m.revision] = threading.Event()
                files.write(m, data)
                renamed = time.perf_counter()
                if not seen[m.revision].wait(5):
                    raise SystemExit(f"update {n} not seen within 5 s")
                samples.append((arrived[m.revision] - renamed) * 1000)
                assert registry[key] == data.decode()
                time.sleep(0.01)  # let each update stand alone
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    print(
        f"rename -> registry update, {args.updates} updates, {args.prompts} prompts of "
        f"{args.size} B: p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms, "
        f"max {samples[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
