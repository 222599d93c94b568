"""`prompt-operator files`: the directory a sidecar would write, from manifests.

The sidecar's own writer (``PromptFiles``) fed with the ConfigMaps the operator
builds is the reference: the command must write the same bytes."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from prompt_client import PromptRegistry
from prompt_contract.files import PromptMeta
from prompt_contract.selector import parse_selector
from prompt_contract.writer import PromptFiles
from prompt_operator.cli import main as cli_main
from prompt_operator.configmap import build_configmap
from prompt_operator.files_cli import plan, write_directory
from prompt_operator.model import parse_prompt
from prompt_operator.render import render
from prompt_operator.validation.reading import documents
from prompt_sidecar.planning import desired_from_configmap, meta_for

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
WHEN = "2026-05-01T12:00:00.000000Z"


def tree(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` by relative path, with its bytes."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def sidecar_wrote(directory: Path, namespace: str, pod: str) -> dict[str, bytes]:
    """What the sidecar writes for every example Prompt, through its own functions."""
    files = PromptFiles(str(directory))
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in documents(path.read_text(encoding="utf-8"), str(path)):
            if doc.data.get("kind") != "Prompt":
                continue
            body = {**doc.data, "metadata": {**doc.data["metadata"], "namespace": namespace}}
            prompt = parse_prompt(body)
            cm = build_configmap(prompt, render(prompt), 1)
            item = desired_from_configmap(cm, parse_selector(""), pod)
            assert not isinstance(item, str), item
            files.write(meta_for(item, namespace, WHEN), item.text)
    return tree(directory)


def _rewrite_updated_at(directory: Path) -> None:
    """Give every metadata file the reference's ``updated_at`` (the write's own time)."""
    for path in (directory / ".prompts" / "meta").glob("*.json"):
        meta = PromptMeta.from_json(path.read_bytes())
        path.write_bytes(dataclasses.replace(meta, updated_at=WHEN).to_json())


@pytest.mark.parametrize("pod", ["helpdesk-7d9f-abcde", "laptop"])
def test_files_are_byte_identical_to_what_the_sidecar_writes(tmp_path: Path, pod: str) -> None:
    planned, findings = plan([str(EXAMPLES)], "team-a", pod)
    assert not [f for f in findings if not f.warning], findings
    ours = tmp_path / "ours"
    written, _ = write_directory(str(ours), planned, "team-a")
    assert len(written) == len(planned)
    _rewrite_updated_at(ours)
    theirs = sidecar_wrote(tmp_path / "sidecar", "team-a", pod)
    assert tree(ours) == theirs
    # The A/B example chose its variant by the pod name, as in a pod.
    assert json.loads(theirs[".prompts/meta/greeting.json"])["variant"] in ("control", "concise")


def test_the_command_writes_the_directory_and_the_client_reads_it_with_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prompts"
    assert cli_main(["files", str(EXAMPLES), "--out", str(out), "--pod", "laptop"]) == 0
    written = tree(out)
    reference = sidecar_wrote(tmp_path / "sidecar", "default", "laptop")
    assert written.keys() == reference.keys()
    for name, data in written.items():
        if name.startswith(".prompts/meta/"):  # only the time of the write differs
            data = json.dumps({**json.loads(data), "updated_at": WHEN}).encode()
            expected = json.dumps(json.loads(reference[name])).encode()
            assert data == expected, name
        else:
            assert data == reference[name], name
    # The declared defaults (product, tone) come with the files: render needs only the rest.
    with PromptRegistry(out, watch=False) as prompts:
        text = prompts.render("support_agent", customer_name="Ada")
    assert "support agent for Acme Cloud" in text and "talking to Ada" in text
    assert "6 written" in capsys.readouterr().err


def test_running_again_rewrites_nothing_and_removes_what_left_the_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prompts"
    assert cli_main(["files", str(EXAMPLES), "--out", str(out)]) == 0
    before = {p: os.stat(out / p).st_ino for p in tree(out)}
    assert cli_main(["files", str(EXAMPLES), "--out", str(out)]) == 0
    assert {p: os.stat(out / p).st_ino for p in tree(out)} == before  # not even renamed
    assert "0 written, 6 unchanged" in capsys.readouterr().err
    assert cli_main(["files", str(EXAMPLES / "support-agent.yaml"), "--out", str(out)]) == 0
    assert sorted(tree(out)) == [".prompts/meta/support_agent.json", "support_agent.txt"]
    assert "5 removed" in capsys.readouterr().err


def test_other_namespaces_and_unselected_prompts_are_left_out(tmp_path: Path) -> None:
    planned, _ = plan([str(EXAMPLES)], "default", "p", selector="prompts.dev/team=support")
    assert [item.content.key for item in planned] == ["support_agent"]
    manifest = tmp_path / "elsewhere.yaml"
    manifest.write_text(
        "apiVersion: prompts.dev/v1alpha1\nkind: Prompt\n"
        "metadata: {name: other, namespace: team-b}\nspec: {template: hi}\n"
    )
    assert plan([str(manifest)], "default", "p")[0] == []
    assert [i.content.key for i in plan([str(manifest)], "team-b", "p")[0]] == ["other"]


def test_a_bad_manifest_writes_nothing_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: prompts.dev/v1alpha1\nkind: Prompt\n"
        "metadata: {name: bad}\nspec: {template: 'Hello {who}'}\n"
    )
    out = tmp_path / "prompts"
    assert cli_main(["files", str(bad), str(EXAMPLES), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "who" in err and "nothing written" in err
    assert not out.exists()


def test_two_prompts_with_one_key_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "".join(
            f"---\napiVersion: prompts.dev/v1alpha1\nkind: Prompt\n"
            f"metadata: {{name: {name}}}\nspec: {{key: same, template: hi}}\n"
            for name in ("one", "two")
        )
    )
    assert cli_main(["files", str(twice), "--out", str(tmp_path / "p")]) == 2
    assert "both use key 'same'" in capsys.readouterr().err


def test_the_command_never_writes_through_planted_symlinks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sidecar's hardening holds for the command: it writes through the same writer."""
    out, outside = tmp_path / "prompts", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"keep me")
    (out / ".prompts").mkdir(parents=True)
    (out / ".prompts" / "meta").symlink_to(outside)  # planted where our directory belongs
    (out / "support_agent.txt").symlink_to(outside / "secret")
    assert cli_main(["files", str(EXAMPLES), "--out", str(out)]) == 0
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"keep me"
    meta_dir = out / ".prompts" / "meta"
    assert meta_dir.is_dir() and not meta_dir.is_symlink()
    text = out / "support_agent.txt"
    assert not text.is_symlink() and b"support agent" in text.read_bytes()


def test_the_command_makes_files_an_app_of_another_user_can_read(tmp_path: Path) -> None:
    out = tmp_path / "prompts"
    old = os.umask(0o077)
    try:
        assert cli_main(["files", str(EXAMPLES), "--out", str(out)]) == 0
    finally:
        os.umask(old)
    for path in [out, out / ".prompts", out / ".prompts" / "meta", *out.rglob("*")]:
        want = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_a_fifo_planted_as_metadata_does_not_hang_the_command(tmp_path: Path) -> None:
    out = tmp_path / "prompts"
    (out / ".prompts" / "meta").mkdir(parents=True)
    os.mkfifo(out / ".prompts" / "meta" / "support_agent.json")
    os.mkfifo(out / ".prompts" / "meta" / "stray.json")
    assert cli_main(["files", str(EXAMPLES / "support-agent.yaml"), "--out", str(out)]) == 0
    meta = PromptMeta.from_json((out / ".prompts" / "meta" / "support_agent.json").read_bytes())
    assert meta.key == "support_agent"


def test_includes_resolve_among_the_manifests_given(tmp_path: Path) -> None:
    manifests = tmp_path / "prompts.yaml"
    manifests.write_text(
        "apiVersion: prompts.dev/v1alpha1\nkind: Prompt\nmetadata: {name: preamble}\n"
        "spec: {template: 'Never share passwords.'}\n---\n"
        "apiVersion: prompts.dev/v1alpha1\nkind: Prompt\nmetadata: {name: helper}\n"
        "spec:\n  includes: [{name: safety, prompt: preamble}]\n"
        "  template: 'Help. {safety}'\n"
    )
    out = tmp_path / "out"
    assert cli_main(["files", str(manifests), "--out", str(out)]) == 0
    assert PromptRegistry(str(out), watch=False).render("helper") == "Help. Never share passwords."
    alone = tmp_path / "alone.yaml"
    alone.write_text(manifests.read_text().split("---\n")[1])
    planned, findings = plan([str(alone)], "default", "pod")
    assert planned == [] and any("IncludeMissing" in f.message for f in findings)
