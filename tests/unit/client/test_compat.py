"""prompt_client beside prompt-hot-reloading 0.1.4 on the same directory and writes:
ours agrees wherever theirs is right, and is right where theirs is wrong."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import prompt_client
from prompt_client import FileSystemSource, PromptRegistry, create_prompt_registry

from .support import Writer, their_registry, wait_for


def their_observer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "Observer" in type(t).__name__]


def test_both_readers_agree_on_the_sidecars_writes(
    prompt_dir: Path, writer: Writer, registry: PromptRegistry
) -> None:
    for i in range(20):
        writer.put(f"prompt-{i}", f"text {i}")
    writer.put("grüße-🚀", "ünïcödé {name}")
    theirs = their_registry(prompt_dir)  # loads everything at once
    wait_for(lambda: dict(registry) == theirs.copy(), what="ours to see the same prompts")
    for i in range(0, 20, 3):
        writer.put(f"prompt-{i}", f"text {i}, second edition")
    writer.put("new", "created after both started")
    expected = {
        **{f"prompt-{i}": f"text {i}" for i in range(20)},
        **{f"prompt-{i}": f"text {i}, second edition" for i in range(0, 20, 3)},
        "grüße-🚀": "ünïcödé {name}",
        "new": "created after both started",
    }
    wait_for(lambda: dict(registry) == expected, what="ours to catch up")
    wait_for(lambda: theirs.copy() == expected, what="theirs to catch up")


def test_their_factory_raises_type_error_ours_reads_prompt_dir(
    prompt_dir: Path, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prompt_hot_reloading

    writer.put("a", "text")
    monkeypatch.setenv("PROMPT_SOURCE", "fs")
    monkeypatch.setenv("PROMPT_DIR", str(prompt_dir))
    with pytest.raises(TypeError):
        prompt_hot_reloading.create_prompt_registry()
    with create_prompt_registry() as ours:
        assert ours["a"] == "text"
        writer.put("a", "changed")
        wait_for(lambda: ours["a"] == "changed")


def test_s3_source_gets_an_error_saying_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPT_SOURCE", "s3")
    with pytest.raises(ValueError, match=r"PROMPT_SOURCE=fs and PROMPT_DIR.*S3PollingSource"):
        create_prompt_registry()
    monkeypatch.setenv("PROMPT_SOURCE", "ftp")
    with pytest.raises(ValueError, match="unknown"):
        create_prompt_registry()


def test_deleted_prompt_is_gone_from_ours_and_served_forever_by_theirs(
    prompt_dir: Path, writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("gone", "soon gone")
    theirs = their_registry(prompt_dir)
    registry.refresh()
    writer.remove("gone")
    writer.put("marker", "written after the delete")
    wait_for(lambda: "marker" in registry and "marker" in theirs)
    assert "gone" not in registry
    with pytest.raises(KeyError):
        registry["gone"]
    assert theirs["gone"] == "soon gone"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_vanishing_file_kills_their_watcher_not_ours(
    prompt_dir: Path, registry: PromptRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    before = set(their_observer_threads())
    theirs = their_registry(prompt_dir)
    (observer,) = set(their_observer_threads()) - before
    flicker = prompt_dir / "flicker.txt"
    deadline = time.monotonic() + 5
    while observer.is_alive() and time.monotonic() < deadline:
        flicker.write_text("x")  # created, then gone before their handler reads it
        flicker.unlink()
        time.sleep(0.001)
    assert not observer.is_alive(), "their watcher survived (it usually dies at once)"
    (prompt_dir / "after.txt").write_text("still watching")
    wait_for(lambda: registry.get("after") == "still watching")
    assert "flicker" not in registry
    assert "after" not in theirs  # their watcher is dead: no update ever again


def test_dot_files_are_junk_keys_in_theirs_and_ignored_by_ours(
    prompt_dir: Path, writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("real", "real")
    (prompt_dir / ".real.txt.swp").write_text("editor junk")
    (prompt_dir / ".hidden").write_text("junk")
    theirs = their_registry(prompt_dir)
    registry.refresh()
    assert set(registry) == {"real"}
    assert {".hidden", ".real.txt"} <= set(theirs.keys())


def test_their_updates_bypass_their_lock_ours_swap_whole_views(
    prompt_dir: Path, writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("p", "one")
    theirs = their_registry(prompt_dir)
    with theirs._lock.gen_wlock():  # nobody may change the map while this is held...
        writer.put("p", "two")
        wait_for(lambda: theirs.prompts["p"] == "two")  # ...yet their watcher does
    # Ours: every update is a swap of an immutable dict, so iterating while
    # prompts are created never sees a dict change size under it.
    errors: list[BaseException] = []
    stop = threading.Event()

    def iterate() -> None:
        while not stop.is_set():
            try:
                for name in registry:
                    registry.get(name)
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=iterate)
    reader.start()
    try:
        for i in range(200):
            (prompt_dir / f"n{i}.txt").write_text("x")
        wait_for(lambda: len(registry) == 201)
    finally:
        stop.set()
        reader.join()
    assert errors == []


def test_drop_in_import_shapes(prompt_dir: Path) -> None:
    from prompt_client.prompt_registry import PromptRegistry as CompatRegistry
    from prompt_client.prompt_registry import create_prompt_registry as compat_factory
    from prompt_client.prompt_source.file_system_source import FileSystemSource as CompatSource
    from prompt_client.prompt_source.prompt_source import PromptSource

    assert CompatRegistry is PromptRegistry and CompatSource is FileSystemSource
    assert compat_factory is create_prompt_registry and PromptSource is not None
    (prompt_dir / "a.md").write_text("A")
    for reg in (
        PromptRegistry(FileSystemSource(str(prompt_dir))),
        PromptRegistry(prompt_source=FileSystemSource(prompt_dir)),
        PromptRegistry(str(prompt_dir)),
        PromptRegistry(prompt_dir),
    ):
        with reg:
            assert reg["a"] == "A" and dict(reg) == {"a": "A"} and len(reg) == 1
            assert "a" in reg and reg.has_key("a") and list(reg.keys()) == ["a"]
            assert reg.get("b") is None and reg.copy() == {"a": "A"}
    assert FileSystemSource(str(prompt_dir)).load_all() == {"a": "A"}
    assert set(prompt_client.__all__) >= {
        "PromptRegistry",
        "FileSystemSource",
        "create_prompt_registry",
    }


def test_their_source_interface_works_with_our_registry(prompt_dir: Path) -> None:
    """Any object with load_all() and watch(on_change) is a source, as in theirs."""

    class Pushed:
        def __init__(self) -> None:
            self.on_change: object = None

        def load_all(self) -> dict[str, str]:
            return {"a": "one"}

        def watch(self, on_change):  # type: ignore[no-untyped-def]
            self.on_change = on_change

    source = Pushed()
    reg = PromptRegistry(source)
    changes: list[tuple[str, str | None]] = []
    reg.on_change(lambda name, revision: changes.append((name, revision)))
    source.on_change("a", "two")  # type: ignore[operator]
    assert reg["a"] == "two" and changes == [("a", None)]


def test_our_source_watch_calls_back_like_theirs(prompt_dir: Path, writer: Writer) -> None:
    got: dict[str, str] = {}
    FileSystemSource(str(prompt_dir)).watch(lambda name, text: got.__setitem__(name, text))
    writer.put("x", "hello")
    (prompt_dir / ".dot").write_text("ignored")
    wait_for(lambda: got.get("x") == "hello")
    os.replace(prompt_dir / "x.txt", prompt_dir / "y.txt")
    wait_for(lambda: got.get("y") == "hello")
    assert ".dot" not in got


def test_our_registry_reads_their_file_source_our_way(prompt_dir: Path, writer: Writer) -> None:
    from prompt_hot_reloading.prompt_source.file_system_source import (
        FileSystemSource as TheirSource,
    )

    writer.put("a", "A")
    (prompt_dir / ".junk").write_text("junk")
    with PromptRegistry(TheirSource(str(prompt_dir))) as reg:
        assert dict(reg) == {"a": "A"} and reg.info("a").source == "ns/a"
        writer.remove("a")
        wait_for(lambda: "a" not in reg)
