"""The hop trace: one JSON line per stamp when enabled, nothing at all when not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_client import hops


@pytest.fixture(autouse=True)
def _off() -> Iterator[None]:
    yield
    hops.enable(None)


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    hops.mark(hops.SEEN, "ns/a")
    assert not hops.enabled()
    assert list(tmp_path.iterdir()) == []


def test_each_mark_is_one_line_with_its_fields(tmp_path: Path) -> None:
    trace = tmp_path / "hops.jsonl"
    hops.enable(str(trace))
    hops.mark(hops.SIGNALLED, "ns/a", "abc123", "app-0")
    hops.mark(hops.RENAMED, "ns/a", "abc123", "app-0")
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [line["hop"] for line in lines] == ["signalled", "renamed"]
    assert lines[0]["prompt"] == "ns/a" and lines[0]["pod"] == "app-0"
    assert lines[0]["revision"] == "abc123"
    assert lines[0]["at"] <= lines[1]["at"]


def test_lines_from_threads_never_interleave(tmp_path: Path) -> None:
    trace = tmp_path / "hops.jsonl"
    hops.enable(str(trace))

    def stamp(n: int) -> None:
        for i in range(200):
            hops.mark(hops.RECEIVED, f"ns/p{n}-{i}", "r" * 100, f"pod-{n}")

    threads = [threading.Thread(target=stamp, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = trace.read_text().splitlines()
    assert len(lines) == 1600
    assert all(json.loads(line)["hop"] == "received" for line in lines)


def test_hops_are_in_the_order_of_an_edit() -> None:
    assert hops.HOPS[0] == hops.ACCEPTED and hops.HOPS[-1] == hops.READ
    assert hops.HOPS.index(hops.SIGNALLED) < hops.HOPS.index(hops.FETCHED)
