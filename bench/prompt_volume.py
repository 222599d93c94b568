"""What a memory-backed prompt volume costs: memory charged to the writer, CPU per write.

`sudo python -m bench.prompt_volume` (root: it mounts a tmpfs and makes a
memory cgroup; run it at low priority, `nice -n 10`). For each medium, the
node's disk (a directory under --disk-dir, ext4 here) and a tmpfs (what
`emptyDir: {medium: Memory}` mounts), a child process in a memory cgroup of
its own writes --prompts prompt files of --size bytes with the sidecar's own
writer (a text file and a metadata file each, through the staging directory
and a rename, as the sidecar does), then rewrites every one --rounds times.

It prints:

- the child's CPU time (user + system) per prompt write, median of the rounds;
- the cgroup's memory after the child exited, so only the files are left:
  the total charged (memory.usage_in_bytes on cgroup v1, memory.current on
  v2), its page-cache and shmem parts from memory.stat, and what is left
  after asking the kernel to reclaim everything it can. The disk's page cache
  is reclaimable; a tmpfs's pages are not (there is no swap for them), so in a
  pod they count against the memory limit of the container that wrote them,
  the sidecar, until the files are removed.

Benchmarks print and never fail on speed or size.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")

# The child: the sidecar's writer, timed with its own CPU clock.
CHILD = """
import json, os, sys, time
from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.writer import PromptFiles

directory, prompts, size, rounds = sys.argv[1], *map(int, sys.argv[2:5])
files = PromptFiles(directory)

def prompt(i, round_):
    data = f"prompt {i} round {round_} ".encode().ljust(size, b".")
    digest = text_sha256(data)
    return PromptMeta(f"p{i}", f"bench/p{i}", digest[:12], digest, "2026-01-01T00:00:00Z",
                      variables=("customer", "tone")), data

def write_all(round_):
    started = time.process_time()
    for i in range(prompts):
        files.write(*prompt(i, round_))
    return (time.process_time() - started) / prompts

def used():
    st = os.statvfs(directory)
    return (st.f_blocks - st.f_bfree) * st.f_frsize

first = write_all(0)
rewrites = [write_all(r) for r in range(1, rounds + 1)]
# A full resync that changes every prompt stages every new text before it shows one.
steady = used()
staged = [files.stage(*prompt(i, rounds + 1)) for i in range(prompts)]
resync = used()
for item in staged:
    files.commit(item)
print(json.dumps({"first": first, "rewrites": rewrites, "steady": steady, "resync": resync}))
"""


@dataclass(frozen=True)
class Charge:
    """One cgroup's memory, in bytes."""

    total: int
    page_cache: int  # file pages: a disk's page cache, and a tmpfs's pages too
    shmem: int  # tmpfs pages (not reclaimable without swap)
    after_reclaim: int


@dataclass(frozen=True)
class Result:
    medium: str
    first_ms: float
    rewrite_ms: float
    charge: Charge
    used: tuple[int, int]  # the file system's used bytes: steady, and while a resync stages all


class MemoryCgroup:
    """A child of this process's memory cgroup (v1 or v2), removed on exit."""

    def __init__(self, name: str) -> None:
        self.v2 = not (CGROUP_ROOT / "memory").is_dir()
        self.path = self._own() / name
        self.path.mkdir()

    def _own(self) -> Path:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if self.v2 and controllers == "":
                return CGROUP_ROOT / path.lstrip("/")
            if not self.v2 and "memory" in controllers.split(","):
                return CGROUP_ROOT / "memory" / path.lstrip("/")
        raise SystemExit("no memory cgroup found in /proc/self/cgroup")

    def join(self) -> None:
        """Move the calling process in (run in the child before it execs)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def stat(self) -> dict[str, int]:
        pairs = (line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return {key: int(value) for key, value in pairs}

    def usage(self) -> int:
        name = "memory.current" if self.v2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def reclaim(self) -> None:
        """Ask the kernel to drop what it can; tmpfs pages stay (no swap)."""
        try:
            if self.v2:
                (self.path / "memory.reclaim").write_text(str(1 << 40))
            else:
                (self.path / "memory.force_empty").write_text("0")
        except OSError:
            pass  # "could not reclaim it all" is the answer for a tmpfs

    def charge(self) -> Charge:
        stat, total = self.stat(), self.usage()
        page_cache = stat.get("file", stat.get("cache", 0))
        shmem = stat.get("shmem", 0)
        self.reclaim()
        return Charge(total, page_cache, shmem, self.usage())

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


@contextlib.contextmanager
def directory(medium: str, disk_dir: Path, tmpfs_size: str) -> Iterator[str]:
    """A fresh directory on the disk, or on a tmpfs mounted for this run."""
    path = tempfile.mkdtemp(prefix="prompt-volume-", dir=disk_dir)
    try:
        if medium == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_size}", "tmpfs", path],
                           check=True)  # fmt: skip
        yield path
    finally:
        if medium == "tmpfs":
            subprocess.run(["umount", path], check=False)
        subprocess.run(["rm", "-rf", path], check=False)


def measure(medium: str, args: argparse.Namespace) -> Result:
    import json

    cgroup = MemoryCgroup(f"prompt-volume-bench-{os.getpid()}-{medium}")
    try:
        with directory(medium, args.disk_dir, args.tmpfs_size) as path:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, path, str(args.prompts), str(args.size),
                 str(args.rounds)],
                preexec_fn=cgroup.join, check=True, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )  # fmt: skip
            times = json.loads(out.stdout)
            # The child has exited: what is left charged is the files (and their
            # directory entries), as in a pod after the sidecar wrote them.
            charge = cgroup.charge()
        return Result(
            medium,
            times["first"] * 1e3,
            statistics.median(times["rewrites"]) * 1e3,
            charge,
            (times["steady"], times["resync"]),
        )
    finally:
        cgroup.remove()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prompt_volume", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--size", type=int, default=2048, help="bytes per prompt text")
    parser.add_argument("--rounds", type=int, default=5, help="rewrites of every prompt")
    parser.add_argument("--disk-dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--tmpfs-size", default="64m")
    parser.add_argument("--media", nargs="+", default=["disk", "tmpfs"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: it mounts a tmpfs and makes a memory cgroup")
    fs = subprocess.run(["stat", "-fc", "%T", str(args.disk_dir)], capture_output=True, text=True)
    print(f"load at start {Path('/proc/loadavg').read_text().split()[0]}, {os.cpu_count()} cores, "
          f"nice {os.nice(0)}; {args.prompts} prompts of {args.size} bytes, {args.rounds} "
          f"rewrites; disk: {args.disk_dir} ({fs.stdout.strip()})")  # fmt: skip
    print(f"{'medium':<7} {'CPU/write first':>15} {'CPU/write rewrite':>17} "
          f"{'charged MiB':>11} {'page cache':>10} {'shmem':>6} {'after reclaim':>13}")  # fmt: skip
    for medium in args.media:
        r = measure(medium, args)
        c = r.charge
        print(f"{r.medium:<7} {r.first_ms:>12.3f} ms {r.rewrite_ms:>14.3f} ms "
              f"{c.total / MiB:>11.2f} {c.page_cache / MiB:>10.2f} {c.shmem / MiB:>6.2f} "
              f"{c.after_reclaim / MiB:>13.2f}")  # fmt: skip
        per_prompt = c.after_reclaim / args.prompts / 1024
        print(f"        left charged after reclaim: {per_prompt:.1f} KiB per prompt")
        if medium == "tmpfs":  # the volume's own use, which its sizeLimit bounds
            steady, resync = (n / MiB for n in r.used)
            print(f"        tmpfs used: {steady:.2f} MiB, {resync:.2f} MiB while a resync "
                  f"stages every prompt")  # fmt: skip


if __name__ == "__main__":
    main()
