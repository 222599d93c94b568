"""Benchmarks: `make bench` (full) and `make bench-quick`; results in bench/results/."""
