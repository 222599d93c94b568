"""bench/signal_transport.py end to end at a small size: both clients signal
every fake sidecar, and every signal is answered."""

from __future__ import annotations

import pytest

from bench import signal_transport


def test_the_bench_signals_every_fake_sidecar_with_both_clients(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert signal_transport.main(["--pods", "30", "--rounds", "2", "--concurrency", "4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    measured = [row.split("|")[1:-1] for row in rows[1:]]
    assert [(r[0].strip(), r[2].strip()) for r in measured] == [
        ("aiohttp", "1"),
        ("aiohttp", "2"),
        ("transport", "1"),
        ("transport", "2"),
    ]
    assert all(r[5].strip() == "0" for r in measured)  # no signal failed


def test_fake_sidecars_get_distinct_loopback_addresses() -> None:
    first = signal_transport.addresses_of(0, signal_transport.ADDRESSES_PER_SERVER)
    second = signal_transport.addresses_of(1, 10)
    assert len(set(first + second)) == len(first) + len(second)
    assert all(ip.startswith("127.") for ip in first + second)
