"""What checking a signed signal would cost the sidecar, for each candidate verifier.

`python -m bench.signing_cost` (run it at low priority: `nice -n 10`) installs
each candidate into a throwaway venv of its own under `--venvs`
(default /tmp/prompt-signing-venvs; never the project's venv) unless
`--python NAME=PATH` names an interpreter that already has it, and prints:

- the extra resident memory of a fresh interpreter that imports the sidecar
  (`import prompt_sidecar.main`, from this checkout through PYTHONPATH), then
  the candidate, and verifies one signature: VmRSS and VmHWM from
  /proc/self/status, median of `--runs` fresh processes, minus the median of
  the same interpreter doing the same without the candidate;
- the CPU time per verification of a realistic signed message (the ~300-byte
  canonical JSON below), over `--verifications` verifications, median of
  `--runs` rounds in one process;
- the installed size on disk of the candidate with what it pulled in.

Every Ed25519 candidate signs with the same seed, so all of them must produce
the same public key and signature: the bench checks that before it measures.
Benchmarks print and never fail on speed or size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENVS = Path("/tmp/prompt-signing-venvs")
SEED = bytes(range(32))  # a fixed Ed25519 seed (or HMAC secret): the same bytes everywhere


@dataclass(frozen=True)
class Candidate:
    """A verifier the sidecar could use, as code a child interpreter runs.

    ``sign`` sets PUBLIC and SIGNATURE from SEED and MESSAGE (run once, apart
    from the measured processes: the sidecar never signs); ``load`` turns
    PUBLIC into KEY (imports included); ``verify`` raises unless SIGNATURE
    is MESSAGE's.
    """

    name: str
    scheme: str
    requirement: str  # what pip installs; "" for the standard library
    sign: str
    load: str
    verify: str


HMAC = Candidate(
    name="hmac",
    scheme="HMAC-SHA256 (stdlib)",
    requirement="",
    sign="import hashlib, hmac\n"
    "PUBLIC = SEED\n"
    "SIGNATURE = hmac.new(SEED, MESSAGE, hashlib.sha256).digest()",
    load="import hashlib, hmac\nKEY = PUBLIC",
    verify="_mac = hmac.new(KEY, MESSAGE, hashlib.sha256).digest()\n"
    "if not hmac.compare_digest(_mac, SIGNATURE):\n"
    "    raise ValueError('bad signature')",
)
CRYPTOGRAPHY = Candidate(
    name="cryptography",
    scheme="Ed25519 (OpenSSL, Rust)",
    requirement="cryptography==50.0.2",
    sign="from cryptography.hazmat.primitives.asymmetric import ed25519\n"
    "_key = ed25519.Ed25519PrivateKey.from_private_bytes(SEED)\n"
    "PUBLIC = _key.public_key().public_bytes_raw()\n"
    "SIGNATURE = _key.sign(MESSAGE)",
    load="from cryptography.hazmat.primitives.asymmetric import ed25519\n"
    "KEY = ed25519.Ed25519PublicKey.from_public_bytes(PUBLIC)",
    verify="KEY.verify(SIGNATURE, MESSAGE)",
)
PYNACL = Candidate(
    name="pynacl",
    scheme="Ed25519 (libsodium)",
    requirement="pynacl==1.6.2",
    sign="import nacl.signing\n"
    "_key = nacl.signing.SigningKey(SEED)\n"
    "PUBLIC = bytes(_key.verify_key)\n"
    "SIGNATURE = _key.sign(MESSAGE).signature",
    load="import nacl.signing\nKEY = nacl.signing.VerifyKey(PUBLIC)",
    verify="KEY.verify(MESSAGE, SIGNATURE)",
)
# python-ecdsa: pure Python, maintained, with Ed25519 since 0.18. (pure25519 is
# a 0.0.1 experiment last released in 2018; `ed25519` is a C extension last
# released in 2019.)
PURE = Candidate(
    name="ecdsa",
    scheme="Ed25519 (pure Python)",
    requirement="ecdsa==0.19.2",
    sign="import ecdsa\n"
    "_key = ecdsa.SigningKey.from_string(SEED, curve=ecdsa.Ed25519)\n"
    "PUBLIC = _key.get_verifying_key().to_string()\n"
    "SIGNATURE = _key.sign(MESSAGE)",
    load="import ecdsa\nKEY = ecdsa.VerifyingKey.from_string(PUBLIC, curve=ecdsa.Ed25519)",
    verify="KEY.verify(SIGNATURE, MESSAGE)",
)
CANDIDATES = (HMAC, CRYPTOGRAPHY, PYNACL, PURE)


def signal_message(text: str = "You are a helpful assistant for {user}. " * 25) -> bytes:
    """The canonical bytes an operator would sign for one revision (sorted keys, no spaces).

    What a sidecar needs to write a revision without asking the API server, and
    what stops a replay elsewhere or later: where, which object, which revision,
    the text's hash, the key that signed it and until when it holds.
    """
    import hashlib

    fields = {
        "kind": "prompts.dev/signal/v1",
        "namespace": "search",
        "prompt": "support-assistant",
        "uid": "3f2b8c1e-9a47-4d2e-b5c6-7e8f9a0b1c2d",
        "revision": "7c1d9e2f4a6b",
        "revisionNumber": 42,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "keyId": "prompt-operator-2026-12-01",
        "expires": "2026-12-05T10:00:00Z",
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values: every run failed")
    return float(statistics.median(values))


# What a child interpreter runs. argv: mode, then MESSAGE, SIGNATURE, PUBLIC as hex.
# It prints one JSON line. `with_candidate` is False for the baseline process.
CHILD = """
import json, sys, time
mode = sys.argv[1]
MESSAGE, SIGNATURE, PUBLIC = (bytes.fromhex(a) for a in sys.argv[2:5])
SEED = PUBLIC
if mode == "sign":
{sign}
    print(json.dumps({{"public": PUBLIC.hex(), "signature": SIGNATURE.hex()}}))
    raise SystemExit
import prompt_sidecar.main
if mode != "baseline":
{load}
{verify}
if mode == "cpu":
    rounds, count = int(sys.argv[5]), int(sys.argv[6])
    seconds = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
{verify_loop}
        seconds.append(time.process_time() - start)
    print(json.dumps({{"seconds": seconds}}))
    raise SystemExit
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({{k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")}}))
"""


def child_code(candidate: Candidate) -> str:
    def indent(code: str, by: int) -> str:
        return "\n".join(" " * by + line for line in code.splitlines())

    return CHILD.format(
        sign=indent(candidate.sign, 4),
        load=indent(candidate.load, 4),
        verify=indent(candidate.verify, 4),
        verify_loop=indent(candidate.verify, 12),
    )


# What the installed size counts: every distribution installed in the venv (not
# this checkout's, seen through PYTHONPATH) but the packaging tools.
SIZE_CODE = """
import importlib.metadata as m, json, sys
tools = {"pip", "setuptools", "wheel"}
sizes = {}
for dist in m.distributions():
    name = dist.metadata["Name"]
    if name.lower() in tools or not str(dist.locate_file("")).startswith(sys.prefix):
        continue
    sizes[f"{name} {dist.version}"] = sum(
        dist.locate_file(f).stat().st_size for f in dist.files or () if dist.locate_file(f).exists()
    )
print(json.dumps(sizes))
"""


@dataclass(frozen=True)
class Row:
    name: str
    scheme: str
    rss_kib: float | None = None
    hwm_kib: float | None = None
    us_per_verify: float | None = None
    installed: dict[str, int] | None = None
    signed: str = ""  # public key and signature, hex: Ed25519 candidates must agree
    problem: str = ""


class Unavailable(Exception):
    """A candidate that cannot be installed or run; the message says why and what to do."""


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / d) for d in ("contract", "sidecar"))
    return env


def run_child(python: str, code: str, *args: str) -> dict[str, Any]:
    # -s: no user site-packages, so only the venv and this checkout are seen.
    done = subprocess.run(
        [python, "-s", "-c", code, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"{python} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ensure_venv(candidate: Candidate, venvs: Path) -> str:
    """The python of a venv holding ``candidate``, made under ``venvs`` on first use."""
    # The standard library's candidate gets an empty venv, so every row is the
    # same base interpreter with nothing but the candidate added.
    where = venvs / (candidate.requirement.replace("==", "-") or candidate.name)
    python = where / "bin" / "python"
    if (where / ".installed").exists():
        return str(python)
    print(f"making {where} for {candidate.requirement or candidate.name} ...", flush=True)
    venv.create(where, with_pip=bool(candidate.requirement), clear=True)
    if not candidate.requirement:
        (where / ".installed").touch()
        return str(python)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", candidate.requirement],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-2:])
        raise Unavailable(
            f"cannot install {candidate.requirement} (no wheel served for this Python, or no "
            f"registry reachable): {tail}. Install it into a venv yourself and pass "
            f"--python {candidate.name}=/path/to/venv/bin/python"
        )
    (where / ".installed").touch()
    return str(python)


def measure(candidate: Candidate, python: str, message: bytes, runs: int, count: int) -> Row:
    code = child_code(candidate)
    signed = run_child(python, code, "sign", message.hex(), "", SEED.hex())
    keys = (message.hex(), str(signed["signature"]), str(signed["public"]))
    with_it, without = [], []
    for _ in range(runs):  # interleaved, so a change in the machine's load hits both
        with_it.append(run_child(python, code, "memory", *keys))
        without.append(run_child(python, code, "baseline", *keys))
    seconds = run_child(python, code, "cpu", *keys, str(runs), str(count))["seconds"]

    def extra(field: str) -> float:
        return median([r[field] for r in with_it]) - median([r[field] for r in without])

    print(
        f"{candidate.name}: VmRSS {median([r['VmRSS'] for r in without]) / 1024:.2f} MiB "
        f"without it, {median([r['VmRSS'] for r in with_it]) / 1024:.2f} MiB with it",
        flush=True,
    )

    return Row(
        name=candidate.name,
        scheme=candidate.scheme,
        rss_kib=extra("VmRSS"),
        hwm_kib=extra("VmHWM"),
        us_per_verify=median(seconds) / count * 1e6,
        installed=run_child(python, SIZE_CODE) if candidate.requirement else {},
        signed="" if candidate is HMAC else f"{signed['public']} {signed['signature']}",
    )


def format_table(rows: Sequence[Row]) -> str:
    """The Markdown table the bench prints (and docs/benchmarks.md shows)."""
    lines = [
        "| candidate | scheme | extra RSS | extra peak RSS | CPU per verify | installed size"
        " | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.rss_kib is None:
            lines.append(f"| {row.name} | {row.scheme} | - | - | - | - | {row.problem} |")
            continue
        assert row.hwm_kib is not None and row.us_per_verify is not None
        lines.append(
            f"| {row.name} | {row.scheme} | {row.rss_kib / 1024:.2f} MiB | "
            f"{row.hwm_kib / 1024:.2f} MiB | {format_duration(row.us_per_verify)} | "
            f"{format_installed(row.installed or {})} | {row.problem} |"
        )
    return "\n".join(lines)


def format_duration(microseconds: float) -> str:
    if microseconds >= 1000:
        return f"{microseconds / 1000:.2f} ms"
    return f"{microseconds:.1f} µs"


def format_installed(sizes: dict[str, int]) -> str:
    if not sizes:
        return "0 (stdlib)"
    total = sum(sizes.values()) / 2**20
    parts = ", ".join(f"{name} {size / 2**20:.1f}" for name, size in sorted(sizes.items()))
    return f"{total:.1f} MiB ({parts})"


def parse_pythons(pairs: Sequence[str]) -> dict[str, str]:
    known = {c.name for c in CANDIDATES}
    pythons = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"--python {pair}: want NAME=PATH with NAME one of {sorted(known)}")
        pythons[name] = path
    return pythons


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.signing_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this interpreter (a venv that has the candidate) instead of making one",
    )
    parser.add_argument(
        "--venvs", type=Path, default=DEFAULT_VENVS, help="where throwaway venvs are made"
    )
    parser.add_argument("--only", action="append", default=[], help="measure only these candidates")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--verifications", type=int, default=2000)  # fmt: skip
    args = parser.parse_args(argv)
    pythons = parse_pythons(args.python)
    message = signal_message()
    print(f"load at start {Path('/proc/loadavg').read_text().split()[0]}, {os.cpu_count()} cores, "
          f"nice {os.nice(0)}, Python {sys.version.split()[0]}")  # fmt: skip
    print(f"signed message: {len(message)} bytes: {message.decode()}")
    rows = []
    for candidate in CANDIDATES:
        if args.only and candidate.name not in args.only:
            continue
        try:
            python = pythons.get(candidate.name) or ensure_venv(candidate, args.venvs)
            rows.append(measure(candidate, python, message, args.runs, args.verifications))
        except Unavailable as error:
            print(f"{candidate.name}: {error}", file=sys.stderr)
            rows.append(Row(candidate.name, candidate.scheme, problem=f"unavailable: {error}"))
    check_same_signature(rows)
    print()
    print(format_table(rows))


def check_same_signature(rows: Sequence[Row]) -> None:
    signed = {row.name: row.signed for row in rows if row.signed}
    if len(set(signed.values())) > 1:
        print(f"WARNING: the Ed25519 candidates disagree on the key or signature: {signed}")
    elif signed:
        print(f"{', '.join(signed)}: the same Ed25519 public key and signature from the same seed")


if __name__ == "__main__":
    main()
