"""What one signal costs the operator's event loop: aiohttp (the old client) against
the operator's own transport (prompt_operator.runtime.signal_transport).

`nice -n 10 python -m bench.signal_transport` starts sidecar look-alikes (asyncio
servers in child processes, one listening socket per 127.x.y.z address, which
answer a signal as a sidecar does: its headers, a small JSON answer, keep-alive
closed after 5 s idle), then for each client and each `--pods` count runs a fresh
client process that signals every address once through `--concurrency` workers
(as the operator's signal workers do), then once more straight after (the second
round may reuse the first's connections). Each signal carries a body like a
signed entry with a 2 KB text (`--body-bytes`), and its answer is parsed as the
operator parses it. Per round it prints the client's CPU time per signal (user +
system, of its process: the servers are other processes), the wall time and the
client's peak RSS; and the servers' CPU per signal over all rounds, for scale.
`--max-idle` sets the transport's bound on idle connections (the second round
reuses connections only to as many pods). Benchmarks print and never fail on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from prompt_contract import signals
from prompt_contract.signing import Carried

CLIENTS = ("aiohttp", "transport")
ADDRESSES_PER_SERVER = 2500  # a listener and a connection each: well within RLIMIT_NOFILE
SECOND_OCTET = 230  # away from the tests' 127.1-200.x.y (prompt_cluster.testing)
IDLE_CLOSE = 5.0  # as the sidecar's REQUEST_DEADLINE
SIGNAL_TIMEOUT = 2.0


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def addresses_of(server: int, count: int) -> list[str]:
    """The loopback IPs of one server process."""
    first = server * ADDRESSES_PER_SERVER
    return [
        f"127.{SECOND_OCTET}.{(first + i) // 250}.{(first + i) % 250 + 1}" for i in range(count)
    ]


# -- the sidecar look-alike -----------------------------------------------------


def sidecar_answer(pod: str) -> bytes:
    body = signals.encode_signal_response(pod, {"p": "r1"})
    return (
        "HTTP/1.1 200 OK\r\nServer: prompt-sidecar\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n\r\n"
    ).encode() + body


class FakeSidecar(asyncio.Protocol):
    """Reads requests framed by Content-Length; answers each like a sidecar."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        assert self.transport is not None
        self.idle = asyncio.get_running_loop().call_later(IDLE_CLOSE, self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.answer)
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()


async def serve(ips: Sequence[str]) -> None:
    loop = asyncio.get_running_loop()
    addresses = []
    for ip in ips:
        answer = sidecar_answer(ip)
        server = await loop.create_server(functools.partial(FakeSidecar, answer), ip, 0)
        addresses.append(f"{ip}:{server.sockets[0].getsockname()[1]}")
    print(json.dumps(addresses), flush=True)
    start = cpu_seconds()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    print(json.dumps(cpu_seconds() - start), flush=True)


# -- the clients ------------------------------------------------------------------


def signal_body(text_bytes: int) -> bytes:
    """A signal entry carrying a signed revision of a ``text_bytes`` text (random
    base64 stands in for the header, signature and content: same sizes)."""
    carried = Carried(
        header=base64.b64encode(os.urandom(180)).decode(),
        signature=base64.b64encode(os.urandom(64)).decode(),
        content=base64.b64encode(os.urandom(text_bytes + 300)).decode(),
    )
    return signals.join_entries([signals.encode_entry("p", "r1", carried)])


Post = Callable[[str], Awaitable[bool]]


async def read_bounded(stream: Any, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of an aiohttp body (as controllers/signals.py read it)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def aiohttp_client(
    body: bytes, max_idle: int | None
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """The old client, as controllers/signals.py used it before the transport."""
    import aiohttp

    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=SIGNAL_TIMEOUT, sock_connect=1),
        connector=aiohttp.TCPConnector(limit=64),
    )

    async def post(address: str) -> bool:
        try:
            async with session.post(
                f"http://{address}{signals.SIGNAL_PATH}",
                data=body,
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as resp:
                answer = await read_bounded(resp.content, signals.MAX_ANSWER_BYTES)
                return resp.status == 200 and bool(signals.parse_signal_response(answer, {"p"}))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    return post, session.close


async def transport_client(
    body: bytes, max_idle: int | None
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    from prompt_operator.runtime import signal_transport
    from prompt_operator.runtime.signal_transport import SignalTransport, TransportError

    transport = SignalTransport(
        timeout=SIGNAL_TIMEOUT,
        connect_timeout=1.0,
        max_answer=signals.MAX_ANSWER_BYTES,
        max_idle=signal_transport.MAX_IDLE if max_idle is None else max_idle,
    )

    async def post(address: str) -> bool:
        try:
            status, answer = await transport.post(address, signals.SIGNAL_PATH, body)
        except TransportError:
            return False
        return status == 200 and bool(signals.parse_signal_response(answer, {"p"}))

    return post, transport.close


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def signal_all(post: Post, addresses: Sequence[str], concurrency: int) -> dict[str, float]:
    """Every address once, through ``concurrency`` workers; CPU and wall per round."""
    queue = iter(addresses)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for address in queue:
            if not await post(address):
                failed += 1

    cpu, wall = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_signal": 1000 * cpu / len(addresses), "wall_s": wall, "failed": failed}


async def run_client(kind: str, addresses: Sequence[str], args: argparse.Namespace) -> None:
    make = aiohttp_client if kind == "aiohttp" else transport_client
    post, close = await make(signal_body(args.body_bytes), args.max_idle)
    rounds = [await signal_all(post, addresses, args.concurrency) for _ in range(args.rounds)]
    for row in rounds:
        row["peak_rss_mib"] = peak_rss_mib()  # of the whole run: imports, body, connections
    await close()
    print(json.dumps(rounds), flush=True)


# -- the parent ---------------------------------------------------------------------


def child(*argv: str, stdin: Any = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.signal_transport", *argv],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def measure(kind: str, pods: int, args: argparse.Namespace) -> list[dict[str, float]]:
    servers = []
    addresses: list[str] = []
    rounds: list[dict[str, float]] = []
    try:
        for server in range(-(-pods // ADDRESSES_PER_SERVER)):
            count = min(ADDRESSES_PER_SERVER, pods - server * ADDRESSES_PER_SERVER)
            proc = child("--serve", str(server), str(count), stdin=subprocess.PIPE)
            servers.append(proc)
            assert proc.stdout is not None
            addresses += json.loads(proc.stdout.readline())
        client = child(
            "--client",
            kind,
            "--rounds",
            str(args.rounds),
            "--concurrency",
            str(args.concurrency),
            "--body-bytes",
            str(args.body_bytes),
            *(["--max-idle", str(args.max_idle)] if args.max_idle is not None else []),
            stdin=subprocess.PIPE,
        )
        out, _ = client.communicate("\n".join(addresses))
        rounds = json.loads(out)
    finally:
        served = 0.0
        for proc in servers:
            out, _ = proc.communicate()  # closes its stdin: it reports its CPU and ends
            served += float(out or "nan")
    for row in rounds:  # the servers' CPU is known for all rounds together
        row["servers_cpu_ms_per_signal"] = 1000 * served / (pods * len(rounds))
    return rounds


def format_rows(results: dict[tuple[str, int], list[dict[str, float]]]) -> str:
    lines = [
        "| client | pods | round | CPU per signal | wall | failed | peak RSS | servers' CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (kind, pods), rounds in results.items():
        for i, row in enumerate(rounds):
            lines.append(
                f"| {kind} | {pods:,} | {i + 1} | {row['cpu_ms_per_signal']:.3f} ms | "
                f"{row['wall_s']:.2f} s | {int(row['failed'])} | {row['peak_rss_mib']:.0f} MiB | "
                f"{row['servers_cpu_ms_per_signal']:.3f} ms |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--body-bytes", type=int, default=2048)
    parser.add_argument(
        "--max-idle", type=int, help="the transport's idle connections (default: its own)"
    )
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    raise_open_files()
    if args.serve:
        asyncio.run(serve(addresses_of(*args.serve)))
        return 0
    if args.client:
        asyncio.run(run_client(args.client, sys.stdin.read().split(), args))
        return 0
    print(f"load at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    results = {
        (kind, pods): measure(kind, pods, args) for pods in args.pods for kind in args.clients
    }
    print(format_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
