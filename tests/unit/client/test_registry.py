"""The registry on real files written by the sidecar's own writer, with real threads."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

import pytest

import prompt_client.registry
from prompt_client import PromptRegistry
from prompt_client.usage import OTHER_OUTCOME
from prompt_contract.files import META_DIR, text_sha256

from .support import Writer, meta_for, wait_for


def test_update_is_served_with_its_revision_and_source(
    writer: Writer, registry: PromptRegistry
) -> None:
    first = writer.put("greeting", "hello", variant="b")
    wait_for(lambda: registry.get("greeting") == "hello")
    info = registry.info("greeting")
    assert (info.revision, info.variant, info.source) == (first, "b", "ns/greeting")
    assert info.sha256 == text_sha256(b"hello") and info.loaded_at.tzinfo is not None
    second = writer.put("greeting", "hello again")
    wait_for(lambda: registry.get("greeting") == "hello again")
    assert registry.info("greeting").revision == second != first


def test_deleted_prompt_disappears_unless_the_app_gave_a_default(
    prompt_dir: Path, writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    writer.put("gone", "soon gone")
    writer.put("kept", "from the file")
    with PromptRegistry(prompt_dir, defaults={"kept": "fallback", "never": "x"}) as reg:
        assert reg["kept"] == "from the file"
        writer.remove("gone")
        writer.remove("kept")
        wait_for(lambda: "gone" not in reg and reg["kept"] == "fallback")
        with pytest.raises(KeyError):
            reg["gone"]
        assert reg.info("kept").source == "default" and reg.info("kept").revision is None
        for _ in range(3):
            assert reg["kept"] == "fallback" and reg.snapshot()["kept"] == "fallback"
        assert sorted(reg) == ["kept", "never"]
    logged = [r for r in caplog.records if "serving the app's default" in r.getMessage()]
    assert [r.args for r in logged] == [("kept",)]  # once, and only for what was served


def test_on_change_reports_name_and_revision_and_survives_a_failing_callback(
    writer: Writer, registry: PromptRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[str, str | None]] = []

    def broken(name: str, revision: str | None) -> None:
        raise RuntimeError("app bug")

    registry.on_change(broken)
    registry.on_change(lambda name, revision: calls.append((name, revision)))
    first = writer.put("p", "one")
    wait_for(lambda: ("p", first) in calls)
    second = writer.put("p", "two")
    wait_for(lambda: ("p", second) in calls)
    writer.remove("p")
    wait_for(lambda: ("p", None) in calls)
    assert "on_change callback failed" in caplog.text
    assert calls == [("p", first), ("p", second), ("p", None)]  # no spurious repeats


def test_snapshot_keeps_one_version_for_a_whole_conversation(
    writer: Writer, registry: PromptRegistry
) -> None:
    old_revision = writer.put("p", "version 1 for {user}", variables=("user",))
    registry.refresh()
    session = registry.snapshot()
    writer.put("p", "version 2 for {user}", variables=("user",))
    writer.put("q", "new prompt")
    wait_for(lambda: registry["p"] == "version 2 for {user}" and "q" in registry)
    assert session["p"] == "version 1 for {user}" and "q" not in session
    assert session.render("p", user="Ada") == "version 1 for Ada"
    assert session.info("p").revision == old_revision
    assert session.log_usage("p")["revision"] == old_revision


def test_log_usage_is_a_structured_record_for_logs_callbacks_and_prometheus(
    writer: Writer, registry: PromptRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    revision = writer.put("p", "text", variant="b")
    registry.refresh()
    got: list[dict[str, object]] = []
    registry.on_usage(lambda record: 1 / 0)  # type: ignore[arg-type,func-returns-value]
    registry.on_usage(got.append)
    labels = {"prompt": "p", "revision": revision, "variant": "b", "outcome": OTHER_OUTCOME}
    before = REGISTRY.get_sample_value("prompt_usage_total", labels) or 0.0
    with caplog.at_level(logging.INFO, logger="prompt_client.usage"):
        record = registry.log_usage("p", outcome="resolved", latency_ms=812)
    assert got == [record]
    assert record["prompt"] == "p" and record["revision"] == revision
    assert record["variant"] == "b" and record["source"] == "ns/p"
    assert record["outcome"] == "resolved" and "timestamp" in record
    (logged,) = [r for r in caplog.records if hasattr(r, "prompt_usage")]
    assert logged.prompt_usage == record
    assert "usage callback failed" in caplog.text
    assert REGISTRY.get_sample_value("prompt_usage_total", labels) == before + 1
    assert registry.log_usage("no-such-prompt")["revision"] is None  # never raises


def test_thousand_unicode_and_huge_prompts_arrive_through_the_watcher(
    writer: Writer, registry: PromptRegistry
) -> None:
    for i in range(1000):
        writer.put(f"prompt-{i}", f"text {i}")
    writer.put("grüße-🚀", "ünïcödé\r\ntext ✓")
    huge = "ä" * (450 * 1024)  # 900 KiB in UTF-8
    writer.put("huge", huge)
    wait_for(lambda: len(registry) == 1002)
    wait_for(lambda: registry.get("huge") == huge)
    assert registry["grüße-🚀"] == "ünïcödé\r\ntext ✓"  # exact bytes: CRLF stays CRLF
    assert all(registry[f"prompt-{i}"] == f"text {i}" for i in range(1000))
    assert registry.info("huge").sha256 == text_sha256(huge.encode())
    for i in range(0, 1000, 2):
        writer.remove(f"prompt-{i}")
    wait_for(lambda: len(registry) == 502)


def test_rapid_rewrites_read_by_8_threads_never_tear(
    writer: Writer, registry: PromptRegistry
) -> None:
    texts = [f"{i:03d}:" + (chr(0x41 + i % 26) * 20000) for i in range(100)]
    writer.put("p", texts[0])
    registry.refresh()
    valid = {text_sha256(t.encode()): t for t in texts}
    bad: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            snap = registry.snapshot()
            text, info = snap["p"], snap.info("p")
            if text not in valid.values() or valid.get(info.sha256 or "") != text:
                bad.append(text[:20])
            time.sleep(0.0002)  # busy readers that still let the writer run

    readers = [threading.Thread(target=read) for _ in range(8)]
    for t in readers:
        t.start()
    try:
        for text in texts[1:]:
            writer.put("p", text)
        wait_for(lambda: registry["p"] == texts[-1])
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert bad == []
    assert registry.info("p").sha256 == text_sha256(texts[-1].encode())


def test_text_caught_between_the_two_renames_is_read_again(
    prompt_dir: Path, writer: Writer
) -> None:
    writer.put("p", "old")
    new = b"new text"
    staged = prompt_dir / ".prompts" / "staging" / "new.tmp"
    staged.write_bytes(new)
    # Step 2 of a write: the metadata is in place, the text is not yet.
    (prompt_dir / META_DIR / "p.json").write_bytes(meta_for("p", new).to_json())
    renamer = threading.Timer(0.03, os.rename, (staged, prompt_dir / "p.txt"))
    renamer.start()
    with PromptRegistry(prompt_dir, watch=False) as reg:
        info = reg.info("p")
        assert info.sha256 == text_sha256(reg["p"].encode())
        assert info.revision == (meta_for("p", new).revision if reg["p"] == "new text" else None)
    renamer.join()


def test_text_that_never_matches_its_metadata_is_served_without_it(
    prompt_dir: Path, writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    writer.put("p", "old")
    (prompt_dir / META_DIR / "p.json").write_bytes(meta_for("p", b"other").to_json())
    with PromptRegistry(prompt_dir, watch=False) as reg:
        assert reg["p"] == "old" and reg.info("p").revision is None
    assert "disagreeing" in caplog.text


def test_files_that_appear_vanish_and_are_renamed(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    for i in range(300):
        path = prompt_dir / f"flicker{i % 7}.txt"
        path.write_text("x")
        path.unlink()
    (prompt_dir / "a.txt").write_text("A")
    wait_for(lambda: registry.get("a") == "A")
    os.replace(prompt_dir / "a.txt", prompt_dir / "b.txt")
    wait_for(lambda: "a" not in registry and registry.get("b") == "A")
    assert sorted(registry) == ["b"]


def test_fifo_or_directory_with_a_prompt_name_never_hangs_the_watcher(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    os.mkfifo(prompt_dir / "pipe.txt")
    (prompt_dir / "dir.txt").mkdir()
    (prompt_dir / "after.txt").write_text("ok")
    wait_for(lambda: registry.get("after") == "ok")
    registry.refresh()
    assert sorted(registry) == ["after"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_briefly_unreadable_file_keeps_its_last_text(
    prompt_dir: Path, registry: PromptRegistry
) -> None:
    path = prompt_dir / "p.txt"
    path.write_text("one")
    wait_for(lambda: registry.get("p") == "one")
    path.chmod(0)
    path.touch()
    registry.refresh()
    assert registry["p"] == "one"
    path.chmod(0o644)
    path.write_text("two")
    wait_for(lambda: registry.get("p") == "two")


def test_watcher_restarts_after_an_error(
    prompt_dir: Path,
    writer: Writer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_scan = prompt_client.registry.scan_directory
    armed = threading.Event()
    failures: list[int] = []

    def scan_that_fails_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if armed.is_set() and not failures:
            failures.append(1)
            raise OSError("simulated I/O error")
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(prompt_client.registry, "scan_directory", scan_that_fails_once)
    with PromptRegistry(prompt_dir, rescan_interval=0.2) as reg:
        armed.set()
        writer.put("p", "one")
        wait_for(lambda: failures, what="the watcher to hit the error")
        writer.put("p", "after the error")
        wait_for(lambda: reg.get("p") == "after the error")
    assert "prompt watcher" in caplog.text and "restarting" in caplog.text


def test_directory_created_after_the_registry(tmp_path: Path) -> None:
    late = tmp_path / "late"
    with PromptRegistry(late, wait_for_directory=True) as reg:
        assert len(reg) == 0
        Writer(late).put("p", "here now")
        wait_for(lambda: reg.get("p") == "here now")
        Writer(late).put("p", "changed")
        wait_for(lambda: reg.get("p") == "changed")


def test_reads_from_asyncio_never_block_and_changes_reach_the_loop(
    writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("p", "one")
    registry.refresh()

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        registry.on_change(lambda name, revision: loop.call_soon_threadsafe(changed.set))
        seen = [registry["p"]]
        await loop.run_in_executor(None, writer.put, "p", "two")
        await asyncio.wait_for(changed.wait(), timeout=5)
        seen.append(registry["p"])
        return seen

    assert asyncio.run(main()) == ["one", "two"]


def test_two_files_with_one_name_never_flip(prompt_dir: Path) -> None:
    (prompt_dir / "a.md").write_text("from md")
    (prompt_dir / "a.txt").write_text("from txt")
    with PromptRegistry(prompt_dir, watch=False) as reg:
        changes: list[str] = []
        reg.on_change(lambda name, revision: changes.append(name))
        for _ in range(3):
            reg.refresh()
        assert reg["a"] == "from md" and changes == []


def test_variant_key_splits_users_by_the_weights_and_always_gives_one_user_one_variant(
    writer: Writer, registry: PromptRegistry
) -> None:
    variants = {
        "control": {"weight": 90, "text": "Hello {user}."},
        "concise": {"weight": 10, "text": "Hi {user}"},
    }
    revision = writer.put(
        "p", "Hello {user}.", variables=("user",), variant="control", variants=variants
    )
    registry.refresh()
    assert registry.render("p", user="Ada") == "Hello Ada."  # the pod's own variant
    assert registry.info("p").variant == "control"
    chosen = [registry.info("p", variant_key=f"user-{i}").variant for i in range(10_000)]
    assert 8_800 < chosen.count("control") < 9_200 and set(chosen) == {"control", "concise"}
    assert chosen == [registry.info("p", variant_key=f"user-{i}").variant for i in range(10_000)]
    user = f"user-{chosen.index('concise')}"
    assert registry.render("p", variant_key=user, user="Ada") == "Hi Ada"
    info = registry.info("p", variant_key=user)
    assert (info.variant, info.revision, info.sha256) == (
        "concise",
        revision,
        text_sha256(b"Hi {user}"),
    )
    record = registry.log_usage("p", variant_key=user, outcome="resolved")
    assert (record["variant"], record["revision"]) == ("concise", revision)
    session = registry.snapshot()
    assert session.render("p", variant_key=user, user="Bo") == "Hi Bo"


def test_variant_key_without_variants_changes_nothing(
    writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("p", "plain {user}", variables=("user",))
    registry.refresh()
    assert registry.render("p", variant_key="anyone", user="Ada") == "plain Ada"
    assert registry.info("p", variant_key="anyone").variant is None


def test_usage_outcome_label_is_bounded_to_the_declared_set(
    writer: Writer, prompt_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    revision = writer.put("q", "text")
    registry = PromptRegistry(str(prompt_dir), watch=False, outcomes=("resolved", "escalated"))

    def count(outcome: str) -> float:
        labels = {"prompt": "q", "revision": revision, "variant": "", "outcome": outcome}
        return REGISTRY.get_sample_value("prompt_usage_total", labels) or 0.0

    before = {o: count(o) for o in ("resolved", "escalated", OTHER_OUTCOME, "")}
    with caplog.at_level(logging.WARNING, logger="prompt_client.usage"):
        registry.log_usage("q", outcome="resolved")
        registry.log_usage("q", outcome="resolved")
        registry.log_usage("q", outcome="escalated")
        record = registry.log_usage("q", outcome="user typed anything")
        registry.log_usage("q", outcome="and more")
        registry.log_usage("q")
    assert count("resolved") == before["resolved"] + 2
    assert count("escalated") == before["escalated"] + 1
    assert count(OTHER_OUTCOME) == before[OTHER_OUTCOME] + 2  # free text never becomes a label
    assert count("") == before[""] + 1
    assert (
        REGISTRY.get_sample_value(
            "prompt_usage_total",
            {"prompt": "q", "revision": revision, "variant": "", "outcome": "and more"},
        )
        is None
    )
    assert record["outcome"] == "user typed anything"  # the record keeps what was given
    assert caplog.text.count("is not declared") == 1  # warned once, not per call
    registry.close()


@pytest.mark.parametrize("outcomes", [("",), ("other",), tuple(f"o{i}" for i in range(21))])
def test_a_bad_outcome_set_is_refused_at_start(prompt_dir: Path, outcomes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="outcome"):
        PromptRegistry(str(prompt_dir), watch=False, outcomes=outcomes)


def test_a_missing_directory_is_an_error_that_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, a wrong PROMPT_DIR looked like a directory with no prompts yet.
    from prompt_client import PromptDirectoryError, create_prompt_registry

    with pytest.raises(PromptDirectoryError) as caught:
        PromptRegistry(tmp_path / "typo")
    message = str(caught.value)
    assert str(tmp_path / "typo") in message and "prompt-operator files" in message
    assert isinstance(caught.value, FileNotFoundError)  # as prompt-hot-reloading raises
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPT_DIR", raising=False)
    with pytest.raises(PromptDirectoryError, match="PROMPT_DIR is not set"):
        create_prompt_registry()
    monkeypatch.setenv("PROMPT_DIR", "elsewhere")
    with pytest.raises(PromptDirectoryError, match="PROMPT_DIR=elsewhere"):
        create_prompt_registry()
    with create_prompt_registry(wait_for_directory=True) as reg:
        assert len(reg) == 0
