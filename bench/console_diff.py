"""What the console's revision comparison costs, before and after its bound.

`python bench/console_diff.py [--before-timeout S]` prints, for each pair of
texts, the old comparison (``SequenceMatcher(autojunk=False)`` on whole lines,
then on words, as the console ran it on its event loop until issue 23; run in a
child process and given up after S seconds) and the bounded one
(``worddiff.side_by_side`` within a page's budget), with what the page shows.
Then the event loop's longest stall while the worst pair is compared the way a
page does it (in a worker thread), next to the stall of the same work on the loop.
Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import multiprocessing
import random
import re
import time
from collections.abc import Callable

from prompt_operator.console import worddiff
from prompt_operator.console.compare import compare_texts

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def before(old: str, new: str) -> None:
    """The comparison as it was: lines, then words of each changed pair."""
    a, b = old.splitlines(), new.splitlines()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "replace":
            continue
        for k in range(min(i2 - i1, j2 - j1)):
            x, y = a[i1 + k], b[j1 + k]
            if len(x) + len(y) <= 20_000:
                words_a, words_b = _TOKENS.findall(x), _TOKENS.findall(y)
                difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).get_opcodes()


def _timed_before(old: str, new: str, out: multiprocessing.Queue[float]) -> None:
    start = time.perf_counter()
    before(old, new)
    out.put(time.perf_counter() - start)


def time_before(old: str, new: str, timeout: float) -> str:
    out: multiprocessing.Queue[float] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_timed_before, args=(old, new, out))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return f">{timeout:.0f} s"
    return f"{out.get():.2f} s"


def time_after(old: str, new: str) -> tuple[str, str]:
    start = time.perf_counter()
    [(_, shown)] = compare_texts([("", old, new)])
    seconds = time.perf_counter() - start
    if isinstance(shown, str):
        return f"{seconds:.2f} s", "too large to compare"
    return f"{seconds:.2f} s", f"{len(shown):,} rows"


def lines(values: list[str]) -> str:
    return "\n".join(values) + "\n"


def cases() -> list[tuple[str, str, str]]:
    rng = random.Random(23)
    out = []
    for n in (2000, 4000, 8000):
        same = lines(["the same line of a prompt"] * n)
        out.append((f"{n:,} identical lines", same, same))
    framed = ["the same line of a prompt"] * 8000
    out.append(
        (
            "8,000 identical, other first/last line",
            lines(["A", *framed, "B"]),
            lines(["C", *framed, "D"]),
        )
    )
    values = [f"line {i} of the prompt, some words" for i in range(120)]
    big_a = lines([rng.choice(values) for _ in range(40_000)])[:1_000_000]
    big_b = lines([rng.choice(values) for _ in range(40_000)])[:1_000_000]
    out.append(("1 MB, lines from 120 values", big_a, big_b))
    prose = lines(
        [f"Paragraph {i}: be brief, kind and exact with customer {i}." for i in range(16_000)]
    )[:1_000_000]
    edited = prose.replace("kind", "warm", 40)
    out.append(("1 MB prose, 40 words edited", prose, edited))
    one_line = " ".join(f"w{i % 50}" for i in range(250_000))[:1_000_000]
    out.append(
        (
            "one 1 MB line, 2 words edited",
            one_line,
            one_line.replace("w7 ", "X ", 1).replace("w9 ", "Y ", 1),
        )
    )
    # The costliest found by search: lines of 60 words from 30, lines drawn from 40.
    phrases = [" ".join(f"t{rng.randrange(30)}" for _ in range(60)) for _ in range(40)]
    shuffled_a = lines([rng.choice(phrases) for _ in range(2000)])
    shuffled_b = lines([rng.choice(phrases) for _ in range(2000)])
    out.append(("2,000 lines of 60 words, shuffled", shuffled_a, shuffled_b))
    return out


async def loop_stall(work: Callable[[], object], in_thread: bool) -> float:
    """The longest gap between 10 ms ticks of the event loop while ``work`` runs."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            worst = max(worst, now - last - 0.01)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    if in_thread:
        await asyncio.to_thread(work)
    else:
        work()
    await asyncio.sleep(0.05)
    done.set()
    await tick
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-timeout", type=float, default=60.0)
    args = parser.parse_args()
    print(f"budget: {worddiff.LINE_STEPS:,} line steps + {worddiff.WORD_STEPS:,} word steps a page")
    print(f"{'texts':42} {'chars':>10} {'before':>9} {'after':>8}  page shows")
    worst = None
    for name, old, new in cases():
        after, shows = time_after(old, new)
        was = time_before(old, new, args.before_timeout)
        print(f"{name:42} {len(old):>10,} {was:>9} {after:>8}  {shows}", flush=True)
        if worst is None or float(after.split()[0]) > float(worst[0].split()[0]):
            worst = (after, old, new, name)
    assert worst is not None
    _, old, new, name = worst
    work = lambda: compare_texts([("", old, new)])  # noqa: E731
    threaded = asyncio.run(loop_stall(work, in_thread=True))
    inline = asyncio.run(loop_stall(work, in_thread=False))
    print(
        f"event loop's longest stall comparing {name!r}: {threaded * 1000:.0f} ms in a worker "
        f"thread (as the console does), {inline * 1000:.0f} ms on the loop"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
