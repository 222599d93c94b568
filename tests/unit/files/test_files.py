"""The sidecar's atomic writer on real files: layout, modes, symlinks, failures."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import prompt_contract.writer
from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.keys import key_problem
from prompt_contract.writer import FileWriteError, PromptFiles
from tests.reliability.report import Observed


def meta(key: str, data: bytes, **extra: object) -> PromptMeta:
    digest = text_sha256(data)
    fields: dict[str, object] = {
        "key": key,
        "prompt": f"ns/{key}",
        "revision": digest[:12],
        "sha256": digest,
        "updated_at": "2025-01-01T00:00:00Z",
        **extra,
    }
    return PromptMeta(**fields)  # type: ignore[arg-type]


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every entry under ``directory``: file bytes, or None for a directory."""
    found: dict[str, bytes | None] = {}
    for path in sorted(directory.rglob("*")):
        rel = str(path.relative_to(directory))
        found[rel] = None if path.is_dir() and not path.is_symlink() else path.read_bytes()
    return found


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_write_puts_text_and_metadata_where_the_contract_says(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path / "prompts"))
    data = "grüße\r\n{name} 🚀".encode()
    assert files.write(meta("grüße-🚀", data, variables=("name",)), data)
    target = tmp_path / "prompts"
    assert (target / "grüße-🚀.txt").read_bytes() == data  # byte for byte, CRLF kept
    stored = PromptMeta.from_json((target / ".prompts" / "meta" / "grüße-🚀.json").read_bytes())
    assert stored == meta("grüße-🚀", data, variables=("name",))
    assert files.current("grüße-🚀") == stored
    assert files.keys() == {"grüße-🚀"}
    assert sorted(os.listdir(target)) == [".prompts", "grüße-🚀.txt"]
    assert os.listdir(target / ".prompts" / "staging") == []


def test_other_extension(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path), ext=".md")
    files.write(meta("a.b", b"x"), b"x")
    assert (tmp_path / "a.b.md").read_bytes() == b"x" and files.keys() == {"a.b"}
    with pytest.raises(ValueError, match="extension"):
        PromptFiles(str(tmp_path), ext="md")


@pytest.mark.reliability(
    case="S-files modes", did="write a prompt under umask 077; read the modes back"
)
def test_modes_let_another_user_read_whatever_the_umask(tmp_path: Path, observed: Observed) -> None:
    target = tmp_path / "new" / "prompts"
    with umask(0o077):
        PromptFiles(str(target)).write(meta("p", b"x"), b"x")
    assert stat.S_IMODE((target / "p.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / ".prompts" / "meta" / "p.json").stat().st_mode) == 0o644
    for d in (target, target / ".prompts", target / ".prompts" / "meta"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d
    observed("files 0644 and directories 0755 whatever the umask")


@pytest.mark.reliability(
    case="S-files other user", did="read the files as another user than the writer"
)
@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_app_running_as_another_user_reads_the_files(observed: Observed) -> None:
    top = Path(tempfile.mkdtemp(prefix="prompt-files-"))  # under /tmp: others may enter
    try:
        top.chmod(0o755)
        target = top / "prompts"
        with umask(0o077):
            PromptFiles(str(target)).write(meta("p", b"hello"), b"hello")
        for path in (target / "p.txt", target / ".prompts" / "meta" / "p.json"):
            out = subprocess.run(
                ["cat", str(path)], user=65534, group=65534, capture_output=True, check=False
            )
            assert out.returncode == 0, out.stderr
        assert out.stdout == meta("p", b"hello").to_json()
        observed("uid 65534 read the text and its metadata")
    finally:
        shutil.rmtree(top)


def test_unchanged_write_writes_nothing(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    assert files.write(meta("p", b"one"), b"one")
    before = {name: os.stat(tmp_path / name).st_ino for name in ("p.txt", ".prompts/meta/p.json")}
    assert not files.write(meta("p", b"one", updated_at="2030-01-01T00:00:00Z"), b"one")
    after = {name: os.stat(tmp_path / name).st_ino for name in before}
    assert after == before
    assert files.write(meta("p", b"one", variant="b"), b"one")  # metadata changed: written
    assert files.current("p").variant == "b"  # type: ignore[union-attr]


def test_every_write_is_a_rename_and_metadata_goes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"one"), b"one")
    inode = os.stat(tmp_path / "p.txt").st_ino
    renames: list[str] = []
    real_rename = os.rename

    def recording_rename(src: str, dst: str, **kwargs: int) -> None:
        renames.append(dst)
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(prompt_contract.writer.os, "rename", recording_rename)
    files.write(meta("p", b"two"), b"two")
    assert renames == ["p.json", "p.txt"]
    assert os.stat(tmp_path / "p.txt").st_ino != inode  # replaced, never written in place
    assert (tmp_path / "p.txt").read_bytes() == b"two"


def test_remove_takes_text_then_metadata(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"x"), b"x")
    assert files.remove("p")
    assert files.keys() == set() and files.current("p") is None
    assert not (tmp_path / "p.txt").exists()
    assert not (tmp_path / ".prompts" / "meta" / "p.json").exists()
    assert not files.remove("p")


def test_keys_are_regular_visible_files_with_the_extension(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("a", b"x"), b"x")
    (tmp_path / "b.md").write_text("other extension")
    (tmp_path / ".c.txt").write_text("hidden")
    (tmp_path / "d.txt").mkdir()
    (tmp_path / "e.txt").symlink_to(tmp_path / "a.txt")
    (tmp_path / "f\x01.txt").write_text("not a valid key")
    assert files.keys() == {"a"}


@pytest.mark.reliability(
    case="S-files escape", did="write, remove and read a prompt with a key that could escape"
)
@pytest.mark.parametrize(
    "key",
    [
        *("../x", "a/b", ".x", "", "x\x00y", "a\nb", "é" * 101, "a\\b"),
        # look-alikes: a right-to-left override, a zero-width space, a C1 control
        *("txt.\u202egnp", "greet\u200bing", "a\u0085b"),
    ],
)
def test_keys_that_could_escape_are_refused(tmp_path: Path, key: str, observed: Observed) -> None:
    files = PromptFiles(str(tmp_path))
    problem = key_problem(key)
    assert problem is not None
    for call in (
        lambda: files.write(meta(key, b"x"), b"x"),
        lambda: files.remove(key),
        lambda: files.current(key),
    ):
        with pytest.raises(ValueError) as caught:
            call()
        assert problem in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    observed(f"ValueError ({problem}); nothing created")


def test_metadata_must_describe_the_text(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        PromptFiles(str(tmp_path)).write(meta("p", b"one"), b"two")


@pytest.mark.reliability(
    case="S-files symlink",
    did="plant a symlink to a directory outside where the writer puts things, then write",
)
@pytest.mark.parametrize(
    "planted",
    [".prompts", ".prompts/meta", ".prompts/staging", ".prompts/meta/p.json", "p.txt"],
)
def test_planted_symlinks_are_replaced_never_followed(
    tmp_path: Path, planted: str, observed: Observed
) -> None:
    target = tmp_path / "prompts"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    files = PromptFiles(str(target))
    files.write(meta("p", b"before"), b"before")
    link = target / planted
    if link.is_dir():
        os.rename(link, tmp_path / "moved-away")
    else:
        link.unlink()
    link.symlink_to(
        outside if planted.count("/") < 2 and planted != "p.txt" else outside / "victim"
    )
    assert files.write(meta("p", b"safe"), b"safe")
    assert not link.is_symlink()
    assert (target / "p.txt").read_bytes() == b"safe"
    assert files.current("p") == meta("p", b"safe")
    assert tree(outside) == {"victim": b"precious"}
    for path in (target, *target.rglob("*")):
        assert not path.is_symlink(), path
    observed("the link was replaced by the write; the file outside was untouched")


def test_a_file_where_the_hidden_directory_belongs_is_replaced(tmp_path: Path) -> None:
    (tmp_path / ".prompts").write_text("junk")
    files = PromptFiles(str(tmp_path))
    assert files.write(meta("p", b"x"), b"x")
    assert (tmp_path / ".prompts").is_dir() and files.current("p") is not None


def test_failed_text_rename_puts_the_old_metadata_back(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"one"), b"one")
    old_meta = (tmp_path / ".prompts" / "meta" / "p.json").read_bytes()
    (tmp_path / "p.txt").unlink()
    (tmp_path / "p.txt").mkdir()  # a rename cannot replace a directory
    (tmp_path / "p.txt" / "keep").write_text("x")
    with pytest.raises(FileWriteError) as caught:
        files.write(meta("p", b"two"), b"two")
    assert str(tmp_path / "p.txt") in str(caught.value)
    assert (tmp_path / ".prompts" / "meta" / "p.json").read_bytes() == old_meta
    assert os.listdir(tmp_path / ".prompts" / "staging") == []
    # A key that had no metadata before has none after.
    (tmp_path / "q.txt").mkdir()
    (tmp_path / "q.txt" / "keep").write_text("x")
    with pytest.raises(FileWriteError):
        files.write(meta("q", b"q"), b"q")
    assert files.current("q") is None


def test_a_staged_text_is_shown_only_by_its_commit(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"one"), b"one")
    before = tree(tmp_path)
    staged = files.stage(meta("p", b"two"), b"two")
    staging = tmp_path / ".prompts" / "staging"
    assert sorted(os.listdir(staging)) == sorted([staged.meta_tmp, staged.text_tmp])
    assert {k: v for k, v in tree(tmp_path).items() if "staging/" not in k} == before
    files.commit(staged)
    assert (tmp_path / "p.txt").read_bytes() == b"two"
    assert files.current("p") == meta("p", b"two")
    assert os.listdir(staging) == []


def test_a_discarded_stage_leaves_everything_as_it_was(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"one"), b"one")
    before = tree(tmp_path)
    files.discard(files.stage(meta("p", b"two"), b"two"))
    assert tree(tmp_path) == before


def test_a_failed_commit_keeps_the_old_text_and_metadata_and_drops_the_staged_files(
    tmp_path: Path,
) -> None:
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"one"), b"one")
    old_meta = (tmp_path / ".prompts" / "meta" / "p.json").read_bytes()
    staged = files.stage(meta("p", b"two"), b"two")
    (tmp_path / "p.txt").unlink()
    (tmp_path / "p.txt").mkdir()  # a rename cannot replace a directory
    (tmp_path / "p.txt" / "keep").write_text("x")
    with pytest.raises(FileWriteError):
        files.commit(staged)
    assert (tmp_path / ".prompts" / "meta" / "p.json").read_bytes() == old_meta
    assert os.listdir(tmp_path / ".prompts" / "staging") == []


def test_stage_refuses_what_write_refuses(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    with pytest.raises(ValueError, match="sha256"):
        files.stage(meta("p", b"one"), b"other")
    with pytest.raises(ValueError, match="refusing prompt key"):
        files.stage(meta("../p", b"x"), b"x")
    assert not (tmp_path / ".prompts").exists() or os.listdir(tmp_path / ".prompts/staging") == []


def test_write_error_while_staging_leaves_everything_as_it_was(tmp_path: Path) -> None:
    """A real write error (the file-size limit: EFBIG) half way through staging."""
    files = PromptFiles(str(tmp_path))
    files.write(meta("p", b"small"), b"small")
    before = tree(tmp_path)
    big = b"y" * (256 * 1024)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(FileWriteError) as caught:
            files.write(meta("p", big), big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert caught.value.errno == errno.EFBIG
    assert str(tmp_path / "p.txt") in str(caught.value) and "too large" in str(caught.value)
    assert tree(tmp_path) == before


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.reliability(
    case="R5 disk full (writer)",
    did="write a text larger than the free space of a small tmpfs, then one that fits",
)
def test_full_disk_leaves_previous_text_and_metadata(tiny_tmpfs: Path, observed: Observed) -> None:
    files = PromptFiles(str(tiny_tmpfs))
    files.write(meta("p", b"v1"), b"v1")
    before = tree(tiny_tmpfs)
    big = b"z" * (512 * 1024)
    with pytest.raises(FileWriteError) as caught:
        files.write(meta("p", big), big)
    assert caught.value.errno == errno.ENOSPC
    assert str(tiny_tmpfs / "p.txt") in str(caught.value) and "No space" in str(caught.value)
    assert tree(tiny_tmpfs) == before
    assert files.write(meta("p", b"v2"), b"v2")  # and the next write that fits works
    observed(f"{caught.value}; every file as before; the next write that fit worked")


def test_all_meta_lists_what_was_written_and_clears_crash_leftovers(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    for key in ("a", "b"):
        files.write(meta(key, key.encode()), key.encode())
    (tmp_path / ".prompts" / "staging" / "dead.tmp").write_text("left by a crash")
    (tmp_path / ".prompts" / "meta" / "junk.json").write_text("{not json")
    assert set(files.all_meta()) == {"a", "b"}
    assert os.listdir(tmp_path / ".prompts" / "staging") == []


def test_a_thousand_writes(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    items = [(f"p{i}", f"text {i}".encode() * 20) for i in range(1000)]
    for key, data in items:
        assert files.write(meta(key, data), data)
    assert files.keys() == {key for key, _ in items}
    assert not any(files.write(meta(key, data), data) for key, data in items)
    assert len(os.listdir(tmp_path)) == 1001
