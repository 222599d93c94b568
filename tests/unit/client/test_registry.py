"""The client registry on real files, side by side with prompt-hot-reloading."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_client import (
    FileSystemSource,
    MissingVariableError,
    PromptRegistry,
    UnknownVariableError,
    create_prompt_registry,
)
from prompt_client.contract import PromptMeta, text_sha256
from prompt_cluster.testing import wait_for
from prompt_sidecar.files import PromptFiles


class Writer:
    """Writes files exactly as the sidecar does."""

    def __init__(self, directory: Path) -> None:
        self.files = PromptFiles(str(directory))

    def put(self, key: str, text: str, variables: tuple[str, ...] = (), **extra: object) -> str:
        data = text.encode()
        revision = text_sha256(data)[:12]
        self.files.write(
            PromptMeta(
                key=key,
                prompt=f"ns/{key}",
                revision=revision,
                sha256=text_sha256(data),
                updated_at="t",
                variables=variables,
                **extra,
            ),
            data,
        )  # type: ignore[arg-type]
        return revision


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    d = tmp_path / "prompts"
    d.mkdir()
    return d


@pytest.fixture
def registry(prompt_dir: Path) -> Iterator[PromptRegistry]:
    reg = PromptRegistry(str(prompt_dir))
    yield reg
    reg.close()


def theirs(prompt_dir: Path):  # type: ignore[no-untyped-def]
    from prompt_hot_reloading import PromptRegistry as TheirRegistry
    from prompt_hot_reloading.prompt_source.file_system_source import (
        FileSystemSource as TheirSource,
    )

    return TheirRegistry(TheirSource(str(prompt_dir)))


def test_update_is_seen_by_both_readers(prompt_dir: Path, registry: PromptRegistry) -> None:
    writer = Writer(prompt_dir)
    writer.put("greeting", "hello")
    other = theirs(prompt_dir)
    revision = writer.put("greeting", "hello again")
    wait_for(lambda: registry.get("greeting") == "hello again", timeout=5)
    wait_for(lambda: other["greeting"] == "hello again", timeout=5)
    assert registry.info("greeting").revision == revision
    assert registry.info("greeting").source == "ns/greeting"


def test_their_factory_breaks_ours_works(prompt_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import prompt_hot_reloading

    Writer(prompt_dir).put("a", "text")
    monkeypatch.setenv("PROMPT_DIR", str(prompt_dir))
    with pytest.raises(TypeError):
        prompt_hot_reloading.create_prompt_registry()
    ours = create_prompt_registry()
    assert ours["a"] == "text"
    ours.close()


def test_s3_source_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPT_SOURCE", "s3")
    with pytest.raises(ValueError, match="PROMPT_SOURCE=fs and PROMPT_DIR"):
        create_prompt_registry()


def test_deleted_prompt_disappears_unless_defaulted(prompt_dir: Path) -> None:
    writer = Writer(prompt_dir)
    writer.put("gone", "soon gone")
    writer.put("kept", "kept")
    ours = PromptRegistry(str(prompt_dir), defaults={"kept": "fallback"})
    other = theirs(prompt_dir)
    writer.files.remove("gone")
    writer.files.remove("kept")
    wait_for(lambda: "gone" not in ours, timeout=5)
    with pytest.raises(KeyError):
        ours["gone"]
    assert ours["kept"] == "fallback"
    assert ours.info("kept").source == "default"
    assert other["gone"] == "soon gone"  # theirs keeps serving deleted prompts forever
    ours.close()


def test_dot_files_are_not_prompts(prompt_dir: Path, registry: PromptRegistry) -> None:
    (prompt_dir / ".hidden").write_text("junk")
    (prompt_dir / "real.txt").write_text("real")
    registry.refresh()
    other = theirs(prompt_dir)
    assert set(registry) == {"real"}
    assert set(other.keys()) - {"real"}  # theirs turns the dot-file into a junk key


def test_vanishing_files_never_kill_the_watcher(prompt_dir: Path, registry: PromptRegistry) -> None:
    for i in range(300):
        path = prompt_dir / f"flicker{i % 7}.txt"
        path.write_text("x")
        path.unlink()
    (prompt_dir / "after.txt").write_text("still watching")
    wait_for(lambda: registry.get("after") == "still watching", timeout=5)
    assert not [k for k in registry if k.startswith("flicker")]


def test_failing_callback_is_logged_and_watching_goes_on(
    prompt_dir: Path, registry: PromptRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    writer = Writer(prompt_dir)
    calls: list[tuple[str, str | None]] = []

    def broken(name: str, revision: str | None) -> None:
        raise RuntimeError("app bug")

    registry.on_change(broken)
    registry.on_change(lambda name, revision: calls.append((name, revision)))
    first = writer.put("p", "one")
    wait_for(lambda: ("p", first) in calls, timeout=5)
    second = writer.put("p", "two")
    wait_for(lambda: ("p", second) in calls, timeout=5)
    assert "on_change callback failed" in caplog.text


def test_render_uses_restricted_rules_and_names_what_is_wrong(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    writer = Writer(prompt_dir)
    writer.put(
        "agent",
        "Hi {customer}, about {product}. {{json}}",
        ("customer", "product"),
        defaults={"product": "Acme"},
    )
    registry.refresh()
    assert registry.render("agent", customer="Ada") == "Hi Ada, about Acme. {json}"
    with pytest.raises(MissingVariableError) as missing:
        registry.render("agent")
    assert "'agent'" in str(missing.value) and "customer" in str(missing.value)
    assert "declared: customer, product" in str(missing.value)
    with pytest.raises(UnknownVariableError, match=r"unknown variable.*tone.*declared"):
        registry.render("agent", customer="Ada", tone="x")

    class Secret:
        password = "hunter2"

    writer.put("evil", "{user.password}", ("user",))
    registry.refresh()
    with pytest.raises(ValueError, match="attribute or index access"):
        registry.render("evil", user=Secret())


def test_snapshot_keeps_one_version(prompt_dir: Path, registry: PromptRegistry) -> None:
    writer = Writer(prompt_dir)
    writer.put("p", "version 1")
    registry.refresh()
    session = registry.snapshot()
    writer.put("p", "version 2")
    wait_for(lambda: registry["p"] == "version 2", timeout=5)
    assert session["p"] == "version 1"
    assert session.info("p").revision != registry.info("p").revision


def test_log_usage_reports_revision_and_goes_to_callbacks(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    revision = Writer(prompt_dir).put("p", "text")
    registry.refresh()
    got: list[dict[str, object]] = []
    registry.on_usage(got.append)
    record = registry.log_usage("p", outcome="resolved")
    assert got == [record]
    assert record["revision"] == revision and record["outcome"] == "resolved"


def test_many_unicode_and_huge_prompts(prompt_dir: Path) -> None:
    writer = Writer(prompt_dir)
    for i in range(1000):
        writer.put(f"prompt-{i}", f"text {i}")
    writer.put("grüße-🚀", "ünïcödé\r\ntext")
    huge = "ä" * (450 * 1024)  # 900 KiB in UTF-8
    writer.put("huge", huge)
    reg = PromptRegistry(str(prompt_dir))
    assert len(reg) == 1002
    assert reg["grüße-🚀"] == "ünïcödé\r\ntext"  # exact bytes: CRLF stays CRLF
    assert reg["huge"] == huge
    reg.close()


def test_rapid_rewrites_read_by_8_threads_never_tear(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    writer = Writer(prompt_dir)
    texts = [f"{i:03d}:" + (chr(0x41 + i % 26) * 20000) for i in range(100)]
    writer.put("p", texts[0])
    registry.refresh()
    valid = set(texts)
    bad: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            text = registry["p"]
            if text not in valid:
                bad.append(text[:20])
            info = registry.snapshot().info("p")
            assert info.sha256 is not None
            time.sleep(0.0002)  # busy readers, but let the writer and watcher run too

    readers = [threading.Thread(target=read) for _ in range(8)]
    for t in readers:
        t.start()
    try:
        for text in texts[1:]:
            writer.put("p", text)
        wait_for(lambda: registry["p"] == texts[-1], timeout=5)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert bad == []
    assert registry.info("p").sha256 == text_sha256(texts[-1].encode())


def test_drop_in_shapes(prompt_dir: Path) -> None:
    (prompt_dir / "a.md").write_text("A")
    reg = PromptRegistry(FileSystemSource(str(prompt_dir)))
    assert reg["a"] == "A" and dict(reg) == {"a": "A"} and len(reg) == 1
    assert FileSystemSource(str(prompt_dir)).load_all() == {"a": "A"}
    reg.close()


@pytest.mark.slow
def test_client_installs_alone_without_kopf_or_kubernetes(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    repo = Path(__file__).resolve().parents[3]
    subprocess.run(
        [str(pip), "install", "-q", str(repo / "client")],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    installed = subprocess.run(
        [str(pip), "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    names = {line.split("==")[0] for line in installed.split()}
    assert "prompt-operator-client" in names
    assert not names & {"kopf", "kubernetes", "boto3", "aiohttp", "pyyaml"}, names
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import prompt_client, sys; prompt_client.create_prompt_registry; "
            "assert 'kopf' not in sys.modules",
        ],
        check=True,
        cwd=tmp_path,
    )
