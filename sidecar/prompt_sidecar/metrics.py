"""Prometheus metrics in the text exposition format, without a dependency.

The sidecar runs in every pod; these few counters and one histogram are all
it needs, so it writes the format itself instead of importing a client library.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import ClassVar

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    COUNTERS: ClassVar[dict[str, str]] = {
        "syncs_total": "Full and partial syncs completed",
        "sync_failures_total": "Syncs that failed (API unreachable or refused)",
        "signals_total": "Signal requests accepted",
        "signals_rejected_total": "Signal requests rejected as malformed",
        "rereads_total": "ConfigMap reads (gets and lists) caused by signals or resyncs",
        "signed_writes_total": "Revisions taken from a signed signal, without a read",
        "signed_refused_total": "Signed signal entries not verified (read as hints)",
        "files_written_total": "Prompt files written",
        "files_removed_total": "Prompt files removed",
        "write_failures_total": "Prompt files that could not be written (disk full, ...)",
    }

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(self.COUNTERS, 0)
        self._buckets = tuple(buckets)
        self._bucket_counts = [0] * len(self._buckets)
        self._latency_sum = 0.0
        self._latency_count = 0
        self.files = 0

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counters[name] += by

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(self._buckets):
                if seconds <= bound:
                    self._bucket_counts[i] += 1

    def value(self, name: str) -> int:
        with self._lock:
            return self._counters[name]

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, help_text in self.COUNTERS.items():
                full = f"prompt_sidecar_{name}"
                lines += [
                    f"# HELP {full} {help_text}",
                    f"# TYPE {full} counter",
                    f"{full} {self._counters[name]}",
                ]
            lines += [
                "# HELP prompt_sidecar_files Prompt files currently served",
                "# TYPE prompt_sidecar_files gauge",
                f"prompt_sidecar_files {self.files}",
            ]
            full = "prompt_sidecar_signal_to_file_seconds"
            lines += [
                f"# HELP {full} Time from a signal's arrival to its file being in place",
                f"# TYPE {full} histogram",
            ]
            for bound, count in zip(self._buckets, self._bucket_counts, strict=True):
                lines.append(f'{full}_bucket{{le="{bound}"}} {count}')
            lines += [
                f'{full}_bucket{{le="+Inf"}} {self._latency_count}',
                f"{full}_sum {self._latency_sum}",
                f"{full}_count {self._latency_count}",
            ]
        return "\n".join(lines) + "\n"
