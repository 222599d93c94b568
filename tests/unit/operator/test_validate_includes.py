"""`prompt-operator validate` resolves spec.includes among the manifests it is given."""

from __future__ import annotations

from pathlib import Path

from prompt_operator.validate import main, validate


def manifest(name: str, template: str, *, includes: str = "", namespace: str = "") -> str:
    lines = [
        "apiVersion: prompts.dev/v1alpha1",
        "kind: Prompt",
        "metadata:",
        f"  name: {name}",
        *([f"  namespace: {namespace}"] if namespace else []),
        "spec:",
        f"  template: {template!r}",
    ]
    if includes:
        lines.append("  includes:")
        for pair in includes.split(","):
            key, prompt = pair.split("=")
            lines += [f"    - name: {key}", f"      prompt: {prompt}"]
    return "\n".join(lines) + "\n"


def run(tmp_path: Path, *docs: str) -> list[str]:
    for i, doc in enumerate(docs):
        (tmp_path / f"p{i}.yaml").write_text(doc, encoding="utf-8")
    findings, _ = validate([str(tmp_path)])
    return [str(f) for f in findings if not f.warning]


def test_resolved_include_passes_and_its_placeholders_are_checked(tmp_path: Path) -> None:
    assert run(tmp_path, manifest("a", "{s} hi", includes="s=b"), manifest("b", "Be safe.")) == []
    assert main([str(tmp_path), "-q"]) == 0
    (tmp_path / "p1.yaml").write_text(manifest("b", "Be {tone}."), encoding="utf-8")
    findings, _ = validate([str(tmp_path)])
    assert any("UndeclaredVariable" in str(f) and "{tone}" in str(f) for f in findings)


def test_cycle_is_found_and_named(tmp_path: Path) -> None:
    found = run(
        tmp_path, manifest("a", "{x}", includes="x=b"), manifest("b", "{y}", includes="y=a")
    )
    assert len(found) == 2
    assert any("IncludeCycle" in f and "a -> b -> a" in f for f in found)
    assert any("IncludeCycle" in f and "b -> a -> b" in f for f in found)
    assert main([str(tmp_path), "-q"]) == 1


def test_missing_include_says_not_among_the_manifests(tmp_path: Path) -> None:
    found = run(tmp_path, manifest("a", "{x}", includes="x=gone"))
    assert len(found) == 1 and "IncludeMissing" in found[0]
    assert "not among the manifests" in found[0] and ":8:" in found[0]  # spec.includes


def test_include_from_another_namespace_is_refused(tmp_path: Path) -> None:
    found = run(
        tmp_path,
        manifest("a", "{x}", includes="x=other/b", namespace="ns"),
        manifest("b", "B", namespace="other"),
    )
    assert len(found) == 1 and "own namespace" in found[0]
    found = run(tmp_path, manifest("a", "{x}", includes="x=b", namespace="ns"))
    assert len(found) == 1 and "not among the manifests" in found[0]  # b is in "other"


def test_over_size_expansion_is_refused(tmp_path: Path) -> None:
    ten = "{x}" * 10
    docs = [manifest("a", ten, includes="x=b")]
    for name, nxt in (("b", "c"), ("c", "d"), ("d", "e"), ("e", "f")):
        docs.append(manifest(name, ten, includes=f"x={nxt}"))
    docs.append(manifest("f", "y" * 200))
    found = run(tmp_path, *docs)
    assert found and all("IncludeTooLarge" in f for f in found)
