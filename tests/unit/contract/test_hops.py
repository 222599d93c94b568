"""The hop trace: one JSON line per stamp when enabled, nothing at all when not."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_contract import hops
from tests.reliability.report import Observed


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


@pytest.mark.reliability(
    case="R-trace-fifo",
    did="--trace-file names a FIFO nobody reads (and /dev/null, a character device)",
)
def test_a_fifo_or_a_device_is_refused_at_once(tmp_path: Path, observed: Observed) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(hops.TraceFileError, match="is a FIFO") as refused:
        hops.enable(str(fifo))  # before: blocked for good waiting for a reader
    took = time.monotonic() - started
    with pytest.raises(hops.TraceFileError, match="device") as device:
        hops.enable("/dev/null")
    assert not hops.enabled()
    observed(f"refused in {took * 1000:.1f} ms: {refused.value}; /dev/null: {device.value}")


@pytest.mark.reliability(
    case="R-trace-symlink",
    did="--trace-file names a symbolic link to another file (one the process may write)",
)
def test_a_symlink_is_refused_not_followed(tmp_path: Path, observed: Observed) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "trace.jsonl"
    link.symlink_to(victim)
    with pytest.raises(hops.TraceFileError, match="symbolic link") as refused:
        hops.enable(str(link))
    hops.mark(hops.SEEN, "ns/a")
    assert victim.read_text() == "keep me\n"
    observed(f"refused: {refused.value}; the link's target unchanged")


def test_the_trace_stops_once_at_its_cap_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trace = tmp_path / "hops.jsonl"
    hops.enable(str(trace), max_bytes=1000)
    with caplog.at_level(logging.WARNING, logger="prompt_contract.hops"):
        for i in range(100):
            hops.mark(hops.RECEIVED, f"ns/p{i}", "r", "pod")
    assert 900 < trace.stat().st_size <= 1000
    assert not hops.enabled()
    assert [r.getMessage() for r in caplog.records] == [
        "trace file full (1000 bytes at most): tracing stopped"
    ]


def test_the_cap_counts_what_the_file_already_holds(tmp_path: Path) -> None:
    trace = tmp_path / "hops.jsonl"
    trace.write_bytes(b"x" * 990)
    hops.enable(str(trace), max_bytes=1000)
    hops.mark(hops.RECEIVED, "ns/p", "r", "pod")
    assert trace.stat().st_size == 990


def test_a_line_stays_json_whatever_the_names_hold(tmp_path: Path) -> None:
    trace = tmp_path / "hops.jsonl"
    hops.enable(str(trace))
    odd = 'ns/"quoted"\\back\nslash-ünï'
    hops.mark(hops.RECEIVED, odd, "r:1.2", 'pod "x"')
    [line] = trace.read_text(encoding="ascii").splitlines()
    entry = json.loads(line)
    assert (entry["prompt"], entry["revision"], entry["pod"]) == (odd, "r:1.2", 'pod "x"')
    assert isinstance(entry["at"], float) and entry["at"] > 1_600_000_000  # seconds since 1970
