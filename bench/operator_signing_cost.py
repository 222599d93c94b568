"""What signing costs the operator: memory of PyNaCl, time per signed revision.

`python -m bench.operator_signing_cost` (at low priority: `nice -n 10`) prints,
as one JSON line per run of `--runs` fresh interpreters:

- the resident memory (VmRSS) of an interpreter that has loaded what the
  operator loads (kopf, aiohttp, prometheus_client, the controllers), before
  and after `import nacl.signing` and one signature;
- the time of one Ed25519 signature over a signed signal's header (PyNaCl);
- the time of a revision's whole signing path: the carried ConfigMap's JSON
  with a `--text-bytes` text, its SHA-256, the header, the signature.

Once per revision, whatever the number of pods. Prints; never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, json, os, sys, time

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

import aiohttp, kopf, prometheus_client, yaml  # what the operator has loaded
import prompt_operator.controllers.prompts, prompt_operator.runtime.client
from prompt_contract import signing
before = rss()
from nacl.signing import SigningKey
key = SigningKey(os.urandom(32))
key.sign(b"warm")
after = rss()
n, text_bytes = int(sys.argv[1]), int(sys.argv[2])
claims = signing.Claims("0123456789abcdef", "team-a", "support-agent", "3f1c" * 9,
                        "a1b2c3d4e5f6", 42, "support-agent-a1b2c3d4e5f6", "ab" * 32, 1800000000)
message = signing.signed_message(claims.encode())
started = time.perf_counter()
for _ in range(n):
    key.sign(message)
sign = (time.perf_counter() - started) / n
cm = {"metadata": {"name": claims.configmap, "namespace": "team-a"},
      "data": {"prompt.md": "x" * text_bytes}}
started = time.perf_counter()
for _ in range(n):
    content = signing.content_bytes(cm)
    hashlib.sha256(content).hexdigest()
    key.sign(signing.signed_message(claims.encode()))
revision = (time.perf_counter() - started) / n
print(json.dumps({"rss_before": before, "rss_after": after, "sign": sign,
                  "revision": revision, "header_bytes": len(message)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters")
    parser.add_argument("--signatures", type=int, default=20000, help="per run")
    parser.add_argument("--text-bytes", type=int, default=4000, help="the revision's text")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.signatures), str(args.text_bytes)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(out))
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"load at start {load}; median of {args.runs} runs")
    print(
        f"operator RSS {median('rss_before'):.1f} MiB -> {median('rss_after'):.1f} MiB "
        f"with nacl.signing: +{median('rss_after') - median('rss_before'):.2f} MiB"
    )
    print(f"one signature ({runs[0]['header_bytes']}-byte header): {median('sign') * 1e6:.1f} µs")
    print(
        f"one revision's signing path ({args.text_bytes}-byte text): "
        f"{median('revision') * 1e6:.1f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
