"""The least CPU a Python sidecar can spend on an edit, for each way of delivering it.

`python -m bench.floor [--edits 300] [--rounds 3]` runs four processes side by
side on the same edits (one every ``--gap`` seconds, 100 Prompts of about
2 KiB) and prints each one's CPU per edit (user + system from /proc, the
median of ``--rounds`` rounds):

- **watch, floor**: what bench/baseline.py does per event, and nothing else:
  read a watch event (one JSON line) from a connection it holds, parse it, and
  write the text to a temporary file in the watched directory, then rename it.
  No TLS here (the real stand-in decrypts its stream too).
- **signed, floor, over a kept stream**: the least our design allows. Read the
  operator's real signal body (length-prefixed) from a connection it holds,
  parse it and check the signed entry with the contract's own
  ``signals.parse_signal_carrying`` and ``signing.check`` (Ed25519 by PyNaCl),
  then write what the file contract asks: the metadata, then the text, each
  staged in a hidden directory and renamed into place; answer one byte.
- **signed, floor, over HTTP**: the same work behind ``http.server`` with
  keep-alive (a thread per connection), as our sidecar listens: the price of
  HTTP itself.
- **ours**: the real sidecar (``bench.sidecar_cpu --micro --signed``'s child).

So the table separates what the delivery needs (verification, two files, an
answer) from what our code adds on top, and bounds what any rewrite in Python
can win: a design whose floor is above the watch's floor cannot beat the watch
where CPU decides the latency (many pods on few cores). Benchmarks print; they
never fail on speed. Run it at low priority on a shared machine (`nice -n 10`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prompt_contract import hops, objects, signals, signing

from .sidecar_cpu import (
    NS,
    REPO,
    configmap,
    cpu_seconds,
    edited,
    keys_configmap,
    loadavg,
    revision_of,
    signed_body,
    signed_revisions,
    start_micro,
    wait_ready,
)

LENGTH = struct.Struct("!I")


# -- the children ------------------------------------------------------------------------


def watch_floor(port: int, directory: str) -> None:
    """bench/baseline.py's work per event, over a plain socket."""
    stream = socket.create_connection(("127.0.0.1", port)).makefile("rb")
    highest: dict[str, int] = {}
    for line in stream:
        cm = json.loads(line)["object"]
        prompt = cm["metadata"]["annotations"][objects.PROMPT_ANNOTATION]
        number = objects.revision_number_of(cm)
        if number < highest.get(prompt, 0):
            continue
        highest[prompt] = number
        target = os.path.join(directory, f"prompt-{prompt}.txt")
        tmp = os.path.join(directory, f".prompt-{prompt}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(cm["data"][objects.TEXT_DATA_KEY])
        os.rename(tmp, target)


class SignedFloor:
    """Check a signal body as the contract says and write the file contract's two
    files with as few calls as there can be."""

    def __init__(self, directory: str) -> None:
        from nacl.signing import VerifyKey

        keys = signing.parse_keys(keys_configmap())
        assert isinstance(keys, dict)
        self.keys = keys
        self._verifiers = {k.key: VerifyKey(k.key) for k in keys.values()}
        hidden = os.path.join(directory, ".prompts")
        for sub in ("meta", "staging"):
            os.makedirs(os.path.join(hidden, sub), exist_ok=True)
        flags = os.O_RDONLY | os.O_DIRECTORY
        self.target = os.open(directory, flags)
        self.meta = os.open(os.path.join(hidden, "meta"), flags)
        self.staging = os.open(os.path.join(hidden, "staging"), flags)
        self.highest: dict[str, int] = {}

    def verify(self, key: bytes, message: bytes, signature: bytes) -> bool:
        from nacl.exceptions import BadSignatureError

        try:
            self._verifiers[key].verify(message, signature)
        except BadSignatureError:
            return False
        return True

    def handle(self, body: bytes) -> None:
        pairs, carried = signals.parse_signal_carrying(body)
        for name, revision in pairs:
            cm = signing.check(
                name, revision, carried[name], self.keys, NS, time.time(), self.verify
            )
            if isinstance(cm, str):
                raise SystemExit(f"refused: {cm}")
            number = objects.revision_number_of(cm)
            if number <= self.highest.get(name, 0):
                continue
            self.highest[name] = number
            text = cm["data"][objects.TEXT_DATA_KEY].encode()
            meta = json.dumps(
                {"prompt": name, "key": name, "revision": revision, "updatedAt": time.time()}
            ).encode()
            self._replace(meta, self.meta, f"{name}.json")
            self._replace(text, self.target, f"{name}.txt")

    def _replace(self, data: bytes, directory: int, name: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.staging)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(name, name, src_dir_fd=self.staging, dst_dir_fd=directory)


def signed_stream_floor(port: int, directory: str) -> None:
    floor = SignedFloor(directory)
    conn = socket.create_connection(("127.0.0.1", port))
    stream = conn.makefile("rb")
    while head := stream.read(LENGTH.size):
        (length,) = LENGTH.unpack(head)
        floor.handle(stream.read(length))
        conn.sendall(b"k")


def signed_http_floor(port: int, directory: str) -> None:
    floor = SignedFloor(directory)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            floor.handle(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "1")
            self.end_headers()
            self.wfile.write(b"k")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


CHILDREN = {
    "watch": watch_floor,
    "signed-stream": signed_stream_floor,
    "signed-http": signed_http_floor,
}


# -- the parent ----------------------------------------------------------------------------


def child(kind: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "--child", kind, str(port), str(directory)],
        cwd=REPO,
    )


def accepted(listener: socket.socket) -> socket.socket:
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--edits", type=int, default=300, help="edits per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between edits")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, port, directory = args.child
        CHILDREN[kind](int(port), directory)
        return 0
    hops.enable(None)
    print(
        f"the floor of a sidecar's CPU per edit: {os.cpu_count()} cores, loadavg at start "
        f"{loadavg()}; {args.rounds} rounds of {args.edits} edits of {args.prompts} Prompts, "
        f"{args.gap * 1000:.0f} ms apart",
        flush=True,
    )
    rounds = measure(args, Path(tempfile.mkdtemp(prefix="sidecar-floor-")))
    print("\n| sidecar | CPU ms/edit (median) | rounds |\n|---|---:|---|")
    for kind, spent in rounds.items():
        each = ", ".join(f"{ms:.2f}" for ms in spent)
        print(f"| {LABELS[kind]} | {statistics.median(spent):.2f} | {each} |")
    watch_ms = statistics.median(rounds["watch"])
    for kind in ("signed-stream", "signed-http", "ours"):
        print(f"{LABELS[kind]} / watch floor: {statistics.median(rounds[kind]) / watch_ms:.2f}x")
    return 0


LABELS = {
    "watch": "watch, floor (bench/baseline.py's work, no TLS)",
    "signed-stream": "signed, floor, over a kept stream",
    "signed-http": "signed, floor, over HTTP (http.server)",
    "ours": "ours (the real sidecar, micro mode)",
}


def measure(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    """Start the four sidecars, send each every edit, and return each one's CPU
    ms per edit, a figure per round."""
    listeners = {kind: socket.create_server(("127.0.0.1", 0)) for kind in ("watch", "signed")}
    http_port = 19470 + os.getpid() % 1000
    ours_port = http_port + 2
    for kind in LABELS:
        (work / kind).mkdir()
    procs = {
        "watch": child("watch", listeners["watch"].getsockname()[1], work / "watch"),
        "signed-stream": child(
            "signed-stream", listeners["signed"].getsockname()[1], work / "signed-stream"
        ),
        "signed-http": child("signed-http", http_port, work / "signed-http"),
    }
    ours_args = argparse.Namespace(
        prompts=args.prompts, edits=args.edits, rounds=args.rounds, profile=False
    )
    procs["ours"] = start_micro(work / "ours", ours_args, ours_port, None)
    rounds: dict[str, list[float]] = {kind: [] for kind in procs}
    try:
        watch = accepted(listeners["watch"])
        stream = accepted(listeners["signed"])
        wait_ready("127.0.0.1", ours_port)
        posts = {}
        for kind, port in (("signed-http", http_port), ("ours", ours_port)):
            _wait_listening(port)
            posts[kind] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        names = [f"p{i}" for i in range(args.prompts)]
        revisions = signed_revisions()
        for r in range(args.rounds):
            before = {kind: cpu_seconds(p.pid) for kind, p in procs.items()}
            for n in range(r * args.edits, (r + 1) * args.edits):
                name = edited(names, n)
                event = {"type": "MODIFIED", "object": configmap(name, n, n + 2)}
                body = signed_body(revisions, name, n)
                watch.sendall(json.dumps(event).encode() + b"\n")
                stream.sendall(LENGTH.pack(len(body)) + body)
                _read_exactly(stream, 1)
                for kind, conn in posts.items():
                    conn.request("POST", signals.SIGNAL_PATH, body, JSON_HEADERS)
                    answer = conn.getresponse().read()
                    if kind == "ours" and revision_of(name, n) not in answer.decode():
                        raise AssertionError(f"edit {n}: ours answered {answer!r}")
                time.sleep(args.gap)
            time.sleep(0.2)
            for kind, p in procs.items():
                rounds[kind].append((cpu_seconds(p.pid) - before[kind]) * 1000 / args.edits)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(30)
    return rounds


JSON_HEADERS = {"Content-Type": "application/json"}


def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the floor sidecar hung up")
        data += chunk
    return data


if __name__ == "__main__":
    sys.exit(main())
