"""Many simulated sidecars in one asyncio process, for bench/fanout_sim.py.

Each simulated pod listens on its own loopback address at the sidecar's port
and answers ``POST /v1/signal`` as ``prompt_sidecar.server`` does, without
writing files: an entry that carries a signed revision which ``signing.check``
accepts is held at once; anything else is a hint, and the pod GETs the
revision's ConfigMap from the API server (one shared kept-alive client, as the
sidecar's service account; from the watch cache for a Prompt it already holds, as
the sidecar does) and holds it when the GET returns. The answer waits
for those GETs at most as long as the sidecar's (``SIGNAL_WAIT``) and says what
each asked Prompt is held at.

Run as ``python -m bench.fanout_pods``: the first line on stdin is the
configuration (JSON; the parent sends more only after "ready"), then one
command per line, each answered by one line of JSON on stdout. ``wait``
answers when every pod of this process holds a new revision of a Prompt (or at
its deadline), with the times on the system-wide monotonic clock, which the
parent process shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from prompt_contract import objects, signals, signing
from prompt_sidecar.server import SIGNAL_WAIT

Verify = Callable[[bytes, bytes, bytes], bool]
# The sidecar's request and header bounds do not matter here: only the operator talks to us.
MAX_HEAD = 16 * 1024
# An unknown key id makes the process read the keys ConfigMap again, at most this often.
KEYS_RETRY_SECONDS = 2.0
MAX_ATTEMPTS = 10  # of one GET, for 429s and 5xx


def nacl_verify() -> Verify | None:
    """Ed25519 verification with PyNaCl (one VerifyKey per key), or None without it."""
    try:
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey
    except ImportError:
        return None
    cache: dict[bytes, Any] = {}

    def verify(key: bytes, message: bytes, signature: bytes) -> bool:
        verifier = cache.get(key)
        if verifier is None:
            verifier = cache[key] = VerifyKey(key)
        try:
            verifier.verify(message, signature)
        except BadSignatureError:
            return False
        return True

    return verify


@dataclass
class Pod:
    name: str
    held: dict[str, str] = field(default_factory=dict)  # Prompt -> revision held
    reads: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)


@dataclass
class Arrivals:
    """When the pods of this process came to hold each revision of one Prompt."""

    times: dict[str, list[float]] = field(default_factory=dict)  # revision -> monotonic times
    # Set when some revision has reached every pod: waking the waiter on every
    # arrival would cost it a scan per pod.
    full: asyncio.Event = field(default_factory=asyncio.Event)


class ApiReader:
    """GETs from the API server as the sidecars' service account: one kept-alive
    client for every simulated pod, at most ``concurrency`` requests at once."""

    def __init__(self, kubeconfig: Path, concurrency: int) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self._server = cluster["server"].rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {config['users'][0]['user']['token']}",
            "Accept": "application/json",
        }
        self.retries: Counter[int] = Counter()  # by status
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, ssl=context),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when it is not there. A 429 (API
        Priority and Fairness) or 5xx is tried again after Retry-After, as the
        sidecar's backoff would, and counted."""
        for _ in range(MAX_ATTEMPTS - 1):
            async with self._session.get(self._server + path, headers=self._headers) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 429 and resp.status < 500:
                    resp.raise_for_status()
                    body: dict[str, Any] = await resp.json()
                    return body
                self.retries[resp.status] += 1
                wait = float(resp.headers.get("Retry-After") or 1)
            await asyncio.sleep(wait)
        raise aiohttp.ClientError(f"GET {path}: {MAX_ATTEMPTS} attempts")

    async def close(self) -> None:
        await self._session.close()


class Fleet:
    """The simulated pods of this process and what they hold."""

    def __init__(self, namespace: str, api: ApiReader, verify: Verify | None) -> None:
        self.namespace = namespace
        self.api = api
        self.verify = verify
        self.keys: dict[str, signing.PublicKey] = {}
        self._keys_read_at = -KEYS_RETRY_SECONDS
        self.pods: list[Pod] = []
        self.arrivals: dict[str, Arrivals] = {}
        self.counts: Counter[str] = Counter()
        self._tasks: set[asyncio.Future[Any]] = set()

    def background(self, work: Awaitable[Any]) -> None:
        """Run ``work`` on the loop, keeping a reference until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what a signal does ------------------------------------------------------------

    def signal(self, pod: Pod, body: bytes) -> bytes | Awaitable[bytes]:
        """The answer to a signal, or (when it needs GETs) an awaitable of it."""
        try:
            pairs, carried = signals.parse_signal_carrying(body)
        except signals.SignalError:
            self.counts["bad_signals"] += 1
            return b""
        self.counts["signals"] += 1
        reads: list[asyncio.Task[None]] = []
        for name, revision in pairs:
            if not revision or pod.held.get(name) == revision:
                continue
            entry = carried.get(name)
            if entry is not None and self._use_signed(pod, name, revision, entry):
                continue
            task = pod.reads.get((name, revision))
            if task is None:
                task = asyncio.ensure_future(self._read(pod, name, revision))
                pod.reads[(name, revision)] = task
            reads.append(task)
        if not reads:
            return self._answer(pod, pairs)
        return self._answer_after(pod, pairs, reads)

    def _use_signed(self, pod: Pod, name: str, revision: str, entry: signing.Carried) -> bool:
        if self.verify is None:
            self.counts["refused:no-verifier"] += 1
            return False
        checked = signing.check(
            name, revision, entry, self.keys, self.namespace, time.time(), self.verify
        )
        if isinstance(checked, str):
            self.counts[f"refused:{checked}"] += 1
            if checked == signing.UNKNOWN_KEY:
                self.refresh_keys()
            return False
        self.counts["signed_held"] += 1
        self._hold(pod, name, revision)
        return True

    async def _read(self, pod: Pod, name: str, revision: str) -> None:
        path = (
            f"/api/v1/namespaces/{self.namespace}/configmaps/"
            f"{objects.configmap_name(name, revision)}"
        )
        # As the sidecar: a Prompt it serves is read from the watch cache, and a
        # cached 404 again from etcd (a revision's data never changes).
        cached = name in pod.held
        try:
            self.counts["gets"] += 1
            configmap = await self.api.get(path + "?resourceVersion=0" if cached else path)
            if cached:
                self.counts["cached_gets"] += 1
            if cached and configmap is None:
                self.counts["gets"] += 1
                configmap = await self.api.get(path)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.counts[f"get_failed:{type(exc).__name__}"] += 1
            return
        finally:
            pod.reads.pop((name, revision), None)
        if configmap is not None:
            self._hold(pod, name, revision)

    async def _answer_after(
        self, pod: Pod, pairs: list[tuple[str, str]], reads: list[asyncio.Task[None]]
    ) -> bytes:
        # As the sidecar: answer within SIGNAL_WAIT with what is held then; a
        # read still running goes on (it is not cancelled) and holds when it returns.
        await asyncio.wait(reads, timeout=SIGNAL_WAIT)
        return self._answer(pod, pairs)

    def _answer(self, pod: Pod, pairs: list[tuple[str, str]]) -> bytes:
        return signals.encode_signal_response(pod.name, {n: pod.held.get(n) for n, _ in pairs})

    def _hold(self, pod: Pod, name: str, revision: str) -> None:
        if pod.held.get(name) == revision:
            return  # a read that was in flight when a signed entry arrived
        pod.held[name] = revision
        arrivals = self.arrivals.setdefault(name, Arrivals())
        times = arrivals.times.setdefault(revision, [])
        times.append(time.monotonic())
        if len(times) == len(self.pods):
            arrivals.full.set()

    # -- keys ----------------------------------------------------------------------------

    def refresh_keys(self) -> None:
        now = time.monotonic()
        if now - self._keys_read_at >= KEYS_RETRY_SECONDS:
            self._keys_read_at = now
            self.background(self.read_keys())

    async def read_keys(self) -> str:
        """Read the namespace's published keys once; what came of it."""
        self._keys_read_at = time.monotonic()
        path = f"/api/v1/namespaces/{self.namespace}/configmaps/{signing.KEYS_CONFIGMAP}"
        try:
            configmap = await self.api.get(path)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return f"unread: {exc}"
        if configmap is None:
            return "absent"
        keys = signing.parse_keys(configmap)
        if isinstance(keys, str):
            return keys
        self.keys = keys
        return f"{len(keys)} keys"

    # -- the parent's questions ----------------------------------------------------------

    async def wait_new(self, prompt: str, old: list[str], timeout: float) -> dict[str, Any]:
        """Wait until every pod holds one revision of ``prompt`` not in ``old``."""
        deadline = time.monotonic() + timeout
        arrivals = self.arrivals.setdefault(prompt, Arrivals())
        while True:
            # Edits come one at a time and a pod holds each revision once, so a
            # revision held len(pods) times is held by every pod.
            full = [
                rev
                for rev, times in arrivals.times.items()
                if rev not in old and len(times) >= len(self.pods)
            ]
            left = deadline - time.monotonic()
            if full or left <= 0:
                break
            arrivals.full.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrivals.full.wait(), timeout=left)
        if not full:
            newest = {p.held.get(prompt) for p in self.pods} - set(old)
            return {"complete": False, "pods": len(self.pods), "seen": sorted(map(str, newest))}
        return {
            "complete": True,
            "revision": full[0],
            "pods": len(self.pods),
            "times": arrivals.times[full[0]],
        }


class SignalProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, enough for the operator's signals: one request at a time."""

    def __init__(self, fleet: Fleet, pod: Pod) -> None:
        self.fleet = fleet
        self.pod = pod
        self.buffer = bytearray()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            request_line, *headers = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for header in headers:
                key, _, value = header.partition(":")
                if key.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, path, *_ = request_line.split(" ")
            if method != "POST" or path.split("?", 1)[0] != signals.SIGNAL_PATH:
                self._send(404, b'{"error":"not found"}')
                continue
            answer = self.fleet.signal(self.pod, body)
            if isinstance(answer, bytes):
                self._send(200 if answer else 400, answer or b'{"error":"bad signal"}')
                continue
            self.busy = True
            self.fleet.background(self._send_later(answer))
            return

    async def _send_later(self, answer: Awaitable[bytes]) -> None:
        self._send(200, await answer)
        self.busy = False
        self._next()

    def _send(self, status: int, body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def raise_open_files() -> int:
    """The soft limit on open files raised to the hard one (a listener and a
    connection per pod); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def serve(config: dict[str, Any]) -> None:
    raise_open_files()
    api = ApiReader(Path(config["kubeconfig"]), config["get_concurrency"])
    fleet = Fleet(config["namespace"], api, nacl_verify())
    loop = asyncio.get_running_loop()
    servers = []
    for name, ip in config["pods"]:
        pod = Pod(name)
        fleet.pods.append(pod)
        servers.append(
            await loop.create_server(
                lambda pod=pod: SignalProtocol(fleet, pod), ip, config["port"], backlog=64
            )
        )
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    reply({"ready": len(servers), "verifier": fleet.verify is not None})
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "wait":
            reply(await fleet.wait_new(command["prompt"], command["old"], command["timeout"]))
        elif command["cmd"] == "keys":
            reply({"keys": await fleet.read_keys()})
        elif command["cmd"] == "counts":
            retried = {f"get_retried:{status}": n for status, n in api.retries.items()}
            reply({**fleet.counts, **retried})
    for server in servers:
        server.close()
    await api.close()


def reply(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main() -> int:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
