"""The sidecar's pure parts: selectors, the signal protocol, sync planning, the file writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from prompt_contract import objects, signals
from prompt_contract.files import PromptMeta, text_sha256
from prompt_contract.selector import SelectorError, parse_selector
from prompt_contract.writer import PromptFiles
from prompt_sidecar.planning import Desired, by_key, desired_from_configmap, plan


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("team=support", {"team": "support"}, True),
        ("team==support", {"team": "sales"}, False),
        ("team!=support", {}, True),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("beta", {"beta": ""}, True),
        ("!beta", {"beta": "x"}, False),
        (
            "app.kubernetes.io/part-of=helpdesk,!legacy",
            {"app.kubernetes.io/part-of": "helpdesk"},
            True,
        ),
    ],
)
def test_selector_matches_like_kubernetes(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "bad", ["a=(", "in (x", "=x", "a=b c", "../x=1", "a in (b", "a,,b", "x" * 5000]
)
def test_bad_selectors_are_refused_with_a_message(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(bad)


def test_signal_round_trip() -> None:
    pairs = [("p1", "abc"), ("greeter.v2", "")]
    assert signals.parse_signal(signals.encode_signal(pairs)) == pairs
    body = signals.encode_signal_response("pod", {"p1": "abc", "x": None})
    assert signals.parse_signal_response(body) == {"p1": "abc", "x": None}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff",
        b"[]",
        b"null",
        b'{"prompts": {}}',
        b'{"prompts": [1]}',
        b'{"prompts": [{"name": "", "revision": "r"}]}',
        b'{"prompts": [{"name": "p", "revision": 5}]}',
        b'{"prompts": [{"name": "' + b"x" * 300 + b'", "revision": "r"}]}',
        b"{" * 100000,
    ],
)
def test_malformed_signals_raise_signal_error(body: bytes) -> None:
    with pytest.raises(signals.SignalError):
        signals.parse_signal(body)


def test_configmap_name_fits_kubernetes_limits() -> None:
    revision = "0123456789abcdef"
    assert objects.configmap_name("greeter", revision) == f"prompt-greeter-{revision}"
    long = objects.configmap_name("a" * 253, revision)
    assert len(long) <= 253 and long != objects.configmap_name("a" * 252 + "b", revision)
    assert long != objects.configmap_name("a" * 253, "fedcba9876543210")
    assert (
        objects.revision_number_of({"metadata": {"labels": {objects.REVISION_NUMBER_LABEL: "12"}}})
        == 12
    )
    assert (
        objects.revision_number_of({"metadata": {"labels": {objects.REVISION_NUMBER_LABEL: "x"}}})
        == 0
    )


def cm(name: str, key: str, revision: str = "r1", text: str = "t", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": objects.configmap_name(name, revision),
            "creationTimestamp": f"2026-01-01T00:00:0{len(name) % 10}Z",
            "labels": {objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE, **labels},
            "annotations": {
                objects.PROMPT_ANNOTATION: name,
                objects.REVISION_ANNOTATION: revision,
                objects.KEY_ANNOTATION: key,
            },
        },
        "data": {objects.TEXT_DATA_KEY: text, objects.METADATA_DATA_KEY: '{"variables": ["x"]}'},
    }


def test_only_managed_and_selected_configmaps_are_used() -> None:
    everything = parse_selector("")
    result = desired_from_configmap(cm("p", "k"), everything)
    assert isinstance(result, Desired) and result.variables == ("x",)
    foreign = cm("p", "k")
    del foreign["metadata"]["labels"][objects.MANAGED_BY_LABEL]
    assert "not written by prompt-operator" in str(desired_from_configmap(foreign, everything))
    assert "not selected" in str(desired_from_configmap(cm("p", "k"), parse_selector("team=a")))
    assert "cannot name a file" in str(desired_from_configmap(cm("p", "../etc"), everything))
    assert "cannot name a file" in str(desired_from_configmap(cm("p", ".hidden"), everything))


def test_plan_writes_changes_and_removes_what_is_gone() -> None:
    everything = parse_selector("")
    wanted, warnings = by_key(
        d
        for d in (
            desired_from_configmap(cm("a", "ka", "r2"), everything),
            desired_from_configmap(cm("bb", "kb"), everything),
        )
        if isinstance(d, Desired)
    )
    present = {"ka": ("a", "r1"), "kb": ("bb", "r1"), "gone": ("gone", "r1")}
    todo = plan(wanted, present, {"ka", "kb", "gone"})
    assert [d.prompt for d in todo.writes] == ["a"]
    assert todo.removes == ("gone",)
    assert warnings == []


def test_two_prompts_with_one_key_keep_the_oldest() -> None:
    everything = parse_selector("")
    items = [
        d
        for d in (
            desired_from_configmap(cm("young-one", "k"), everything),
            desired_from_configmap(cm("old", "k"), everything),
        )
        if isinstance(d, Desired)
    ]
    chosen, warnings = by_key(items)
    assert chosen["k"].prompt == "old" and len(warnings) == 1


def meta(key: str, data: bytes) -> PromptMeta:
    return PromptMeta(key, f"ns/{key}", "r", text_sha256(data), "t")


def test_writer_never_follows_planted_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "prompts"
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    (target / ".prompts").symlink_to(outside)  # planted hidden dir
    (target / "p.txt").symlink_to(tmp_path / "victim")  # planted file link
    files = PromptFiles(str(target))
    files.write(meta("p", b"safe"), b"safe")
    assert not (target / ".prompts").is_symlink()
    assert not (target / "p.txt").is_symlink() and (target / "p.txt").read_bytes() == b"safe"
    assert list(outside.iterdir()) == [] and not (tmp_path / "victim").exists()
    assert oct((target / "p.txt").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("key", ["../x", "a/b", ".x", "", "x\x00y"])
def test_writer_refuses_keys_that_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        PromptFiles(str(tmp_path)).write(meta(key, b"x"), b"x")
    assert not any(p.name != ".prompts" for p in tmp_path.iterdir())


def test_writer_is_atomic_and_leaves_no_staging_files(tmp_path: Path) -> None:
    files = PromptFiles(str(tmp_path))
    assert files.write(meta("p", b"one\r\n"), b"one\r\n")
    assert not files.write(meta("p", b"one\r\n"), b"one\r\n")  # unchanged: nothing written
    inode = os.stat(tmp_path / "p.txt").st_ino
    assert files.write(meta("p", b"two"), b"two")
    assert os.stat(tmp_path / "p.txt").st_ino != inode  # replaced by rename, never in place
    assert os.listdir(tmp_path / ".prompts" / "staging") == []
    assert sorted(os.listdir(tmp_path)) == [".prompts", "p.txt"]
    assert files.current("p") is not None and files.keys() == {"p"}
    assert files.remove("p") and files.keys() == set() and files.current("p") is None
