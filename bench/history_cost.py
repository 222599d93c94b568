"""R-history-worstcase: the CPU the operator spends summarising one edit's history.

`python -m bench.history_cost [--repeat N]` builds the most expensive Prompt
edit found for a line diff within the CRD's limits: ten variants, each text
about 98 KB of random short lines drawn from 120 distinct values (so no line
is frequent enough for difflib's "junk" heuristic to skip it), old and new
drawn independently. It prints the process CPU time of one edit's summary
(every variant) with the line diff the operator ran before issue 23
(difflib.unified_diff, as in history.py then) and with ``history.summarize``
of this tree, plus the same for a few other shapes. No cluster is needed.

Benchmarks print and never fail on speed.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import random
import time
from collections.abc import Callable

from prompt_operator import history

VARIANTS = 10
BYTES_PER_TEXT = 98_000  # two of them stay under the old 200,000-byte diff limit
DISTINCT = 120


def random_lines(rng: random.Random, distinct: int, size: int) -> str:
    """``size`` bytes of lines drawn at random from ``distinct`` short values."""
    values = [format(i, "x") for i in range(distinct)]
    lines: list[str] = []
    total = 0
    while total < size:
        line = rng.choice(values)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def interleaved(size: int) -> tuple[str, str]:
    """Distinct lines, and the same lines odd ones first: difflib's quadratic case."""
    count = size // 6
    lines = [f"{i:05d}" for i in range(count)]
    return "\n".join(lines), "\n".join(lines[1::2] + lines[::2])


def snapshot(texts: list[str]) -> history.Snapshot:
    names = [f"v{i}" for i in range(len(texts))]
    return history.Snapshot(
        key="bench",
        format="python",
        variables=(),
        texts=tuple(zip(names, texts, strict=True)),
        weights=tuple((n, 1) for n in names),
    )


def difflib_summary(old: history.Snapshot, new: history.Snapshot) -> None:
    """The line counting history.py did before issue 23, for every variant."""
    previous = dict(old.texts)
    for name, text in new.texts:
        if len(previous[name]) + len(text) > 200_000:
            continue
        for _ in difflib.unified_diff(
            previous[name].splitlines(), text.splitlines(), lineterm="", n=0
        ):
            pass


def cpu(work: Callable[[], object], repeat: int) -> float:
    """The smallest process CPU time of ``repeat`` runs of ``work``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (min taken)")
    args = parser.parse_args()
    rng = random.Random(23)
    shapes: dict[str, tuple[list[str], list[str]]] = {
        f"random lines, {DISTINCT} values": (
            [random_lines(rng, DISTINCT, BYTES_PER_TEXT) for _ in range(VARIANTS)],
            [random_lines(rng, DISTINCT, BYTES_PER_TEXT) for _ in range(VARIANTS)],
        ),
        "interleaved distinct lines": tuple(  # type: ignore[dict-item]
            list(t)
            for t in zip(*(interleaved(BYTES_PER_TEXT) for _ in range(VARIANTS)), strict=True)
        ),
        "one line changed in 1 MB": (
            [random_lines(random.Random(1), 5_000, 1_000_000 // VARIANTS)] * VARIANTS,
            [random_lines(random.Random(1), 5_000, 1_000_000 // VARIANTS) + "\nadded"] * VARIANTS,
        ),
    }
    print(f"history summary of one edit ({VARIANTS} variants), CPU seconds, min of {args.repeat}")
    print(f"{'shape':34} {'difflib (before)':>17} {'summarize (now)':>16}")
    print("  (before: one variant's pair times the variants)")
    for name, (old_texts, new_texts) in shapes.items():
        old, new = snapshot(old_texts), snapshot(new_texts)
        # One pair times the variants: a whole edit took minutes before.
        one = (snapshot(old_texts[:1]), snapshot(new_texts[:1]))
        before = cpu(functools.partial(difflib_summary, *one), 1) * VARIANTS
        after = cpu(functools.partial(history.summarize, old, new), args.repeat)
        print(f"{name:34} {before:17.3f} {after:16.4f}")
        print(f"  summary: {history.summarize(old, new)[:110]}")


if __name__ == "__main__":
    main()
