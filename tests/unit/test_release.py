"""Release machinery: one version and its copies, the bump, the chart README,
what PyPI renders, the image archive's names, and the release workflow."""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from prompt_cluster import release

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def _copy_release_files(dest: Path) -> Path:
    """The files bump and check read, in a scratch repository."""
    paths = {c.path for c in release.COPIES} | {p for p, _ in release.ADDRESSES} | {"VERSION"}
    for rel in paths:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    shutil.copytree(REPO / release.CHART_DIR, dest / release.CHART_DIR, dirs_exist_ok=True)
    return dest


def test_every_copy_of_the_version_and_the_addresses_agree() -> None:
    assert release.check() == []


def test_a_stale_copy_is_named_with_its_line(tmp_path: Path) -> None:
    root = _copy_release_files(tmp_path)
    (root / "VERSION").write_text("9.9.9\n")
    problems = release.check(root)
    for copy in release.COPIES:
        assert any(p.startswith(copy.path) and copy.what in p for p in problems), copy
    chart = next(p for p in problems if "appVersion" in p)
    assert re.match(r"charts/prompt-operator/Chart\.yaml:\d+: appVersion is \d", chart), chart
    assert "make bump VERSION=9.9.9" in chart


def test_bump_writes_every_copy_and_releases_the_changelog(tmp_path: Path) -> None:
    root = _copy_release_files(tmp_path)
    old = release.read_version(root)
    changelog = (root / "CHANGELOG.md").read_text()
    # Whatever the repository's Unreleased section holds today, the copy's holds one entry.
    head, rest = changelog.split("## [Unreleased]\n", 1)
    released = rest[rest.index("\n## [") + 1 :]
    (root / "CHANGELOG.md").write_text(
        f"{head}## [Unreleased]\n\n### Fixed\n\n- a bug\n\n{released}"
    )
    changed = release.bump("1.2.3", root, today=datetime.date(2030, 1, 2))
    assert release.check(root) == []
    assert release.read_version(root) == "1.2.3"
    assert "deploy/install.yaml" in changed and "VERSION" in changed
    install = (root / "deploy" / "install.yaml").read_text()
    assert f"image: {release.IMAGE_REPOSITORY}:1.2.3" in install
    assert old not in re.sub(r"v\d+\.\d+\.\d+", "", install.split("\n---\n", 1)[1])
    text = (root / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [1.2.3] - 2030-01-02\n\n### Fixed\n\n- a bug" in text
    assert f"## [{old}] - " in text  # older entries stay
    assert f"[1.2.3]: {release.REPOSITORY_URL}/compare/v{old}...v1.2.3" in text
    assert release.release_notes("1.2.3", root) == "### Fixed\n\n- a bug\n"
    # The chart README follows the chart.
    assert (root / release.CHART_DIR / "README.md").read_text() == release.chart_readme(root)


def test_bump_to_the_current_version_only_repairs_the_copies(tmp_path: Path) -> None:
    root = _copy_release_files(tmp_path)
    version = release.read_version(root)
    chart = root / release.CHART_DIR / "Chart.yaml"
    chart.write_text(chart.read_text().replace(f'appVersion: "{version}"', 'appVersion: "0.0.1"'))
    changelog = (root / "CHANGELOG.md").read_text()
    assert release.check(root) != []
    release.bump(version, root)
    assert release.check(root) == []
    assert (root / "CHANGELOG.md").read_text() == changelog


@pytest.mark.parametrize("bad", ["v1.2.3", "1.2", "1.2.3-rc.1", "01.2.3", ""])
def test_bump_refuses_what_is_not_x_y_z(tmp_path: Path, bad: str) -> None:
    root = _copy_release_files(tmp_path)
    with pytest.raises(release.ReleaseError, match=r"like 1\.2\.3"):
        release.bump(bad, root)
    assert release.check(root) == []


def test_release_notes_are_the_changelog_entry() -> None:
    notes = release.release_notes(release.read_version())
    assert notes.strip()
    assert "## [" not in notes and "]: http" not in notes
    with pytest.raises(release.ReleaseError, match=r"## \[0\.0\.9\]"):
        release.release_notes("0.0.9")


def test_license_is_the_apache_text_and_every_distribution_ships_the_same() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    for project in ("client", "contract", "sidecar"):
        assert (REPO / project / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()


def test_chart_readme_is_generated_from_the_schema() -> None:
    assert release.missing_descriptions() == [], (
        "add a description to these values.schema.json keys"
    )
    committed = (REPO / release.CHART_DIR / "README.md").read_text()
    assert committed == release.chart_readme(), "run `make chart-readme`"
    assert '| `sidecar.namespaces` | array | `["default"]` |' in committed


def test_a_key_without_description_is_found(tmp_path: Path) -> None:
    root = _copy_release_files(tmp_path)
    schema_path = root / release.CHART_DIR / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    del schema["properties"]["sidecar"]["properties"]["port"]["description"]
    schema_path.write_text(json.dumps(schema))
    assert release.missing_descriptions(root) == ["sidecar.port"]


# Links that work on PyPI: absolute, or anchors within the page.
_LINK = re.compile(r"\]\(([^)\s]+)")


@pytest.mark.parametrize("readme", ["operator/README.md", "client/README.md"])
def test_package_descriptions_link_only_absolute_addresses(readme: str) -> None:
    links = _LINK.findall((REPO / readme).read_text())
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert relative == [], f"{readme} is the PyPI page: make these links absolute"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("ghcr.io/a/b:1.2.3", ("ghcr.io/a/b", "1.2.3")),
        ("localhost:5000/b:dev", ("localhost:5000/b", "dev")),
    ],
)
def test_split_image(ref: str, expected: tuple[str, str]) -> None:
    assert release.split_image(ref) == expected


@pytest.mark.parametrize("ref", ["ghcr.io/a/b", "localhost:5000/b", "a/b@sha256:00", ":1"])
def test_split_image_refuses_a_reference_without_tag(ref: str) -> None:
    with pytest.raises(release.ReleaseError, match="REPOSITORY:TAG"):
        release.split_image(ref)


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_the_image_archive_is_named_for_containerd_and_oci_tools(tmp_path: Path) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:ab",
                "size": 3,
                "annotations": {"org.opencontainers.image.ref.name": "0.1.0-abc"},
            }
        ],
    }
    blob = bytes(range(256)) * 100
    _tar(
        tmp_path / "in.tar",
        {"oci-layout": b"{}", "index.json": json.dumps(index).encode(), "blobs/sha256/ab": blob},
    )
    out = tmp_path / "out.tar"
    release._rename_oci_archive(tmp_path / "in.tar", out, "ghcr.io/x/y:1.0.0", "1.0.0")
    with tarfile.open(out) as tar:
        renamed = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert tar.extractfile("blobs/sha256/ab").read() == blob  # type: ignore[union-attr]
    (manifest,) = renamed["manifests"]
    assert manifest["digest"] == "sha256:ab"
    assert manifest["annotations"] == {
        "io.containerd.image.name": "ghcr.io/x/y:1.0.0",
        "org.opencontainers.image.ref.name": "1.0.0",
    }


def test_each_wheel_ships_only_its_own_package_and_passes_twine(tmp_path: Path) -> None:
    """The trap: two wheels shipped prompt_client, so uninstalling the client
    left the operator importing a copy pip did not know about."""
    files = release.python_dists(tmp_path, isolated=False)
    names = sorted(p.name for p in files)
    version = release.read_version()
    dists = ("prompt_operator", "prompt_operator_client", "prompt_operator_contract")
    dists += ("prompt_operator_sidecar",)
    assert names == sorted(
        f"{dist}-{version}{suffix}" for dist in dists for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    import zipfile

    def wheel(name: str) -> zipfile.ZipFile:
        return zipfile.ZipFile(tmp_path / f"{name}-{version}-py3-none-any.whl")

    packages = {
        "prompt_operator": "prompt_operator",
        "prompt_operator_client": "prompt_client",
        "prompt_operator_contract": "prompt_contract",
        "prompt_operator_sidecar": "prompt_sidecar",
    }
    for dist, package in packages.items():
        z = wheel(dist)
        assert {n.split("/", 1)[0] for n in z.namelist()} == {
            package,
            f"{dist}-{version}.dist-info",
        }
        metadata = z.read(f"{dist}-{version}.dist-info/METADATA").decode()
        required = f"Requires-Dist: prompt-operator-contract=={version}\n" in metadata
        assert required == (dist != "prompt_operator_contract"), dist
    assert "prompt_operator/crd.yaml" in wheel("prompt_operator").namelist()
    for dist in packages:
        z = wheel(dist)
        assert (
            z.read(f"{dist}-{version}.dist-info/licenses/LICENSE")
            == (REPO / "LICENSE").read_bytes()
        )
        meta = z.read(f"{dist}-{version}.dist-info/METADATA").decode()
        assert "License-Expression: Apache-2.0" in meta
        assert f"Project-URL: Repository, {release.REPOSITORY_URL}" in meta
    out = release.twine_check(files)
    assert out.count("PASSED") == 8, out


def test_the_release_workflow_publishes_what_dist_builds() -> None:
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)", text)
    assert uses and all(re.search(r"@v\d+\.\d+\.\d+$", u) for u in uses), (
        f"pin every action to a full version: {uses}"
    )
    assert 'tags: ["v*"]' in text
    assert '[ "$TAG" != "v$version" ]' in text  # the tag must match VERSION
    assert "make dist" in text
    assert "skopeo copy" in text and "helm push" in text
    assert "pypa/gh-action-pypi-publish@" in text and "id-token: write" in text
    assert "gh release create" in text


def test_actionlint_passes_the_workflows_and_catches_a_broken_one(tmp_path: Path) -> None:
    # Built from its Go module on first use (cached), so this never skips.
    good = release.actionlint()
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text()
        .replace("steps.version.outputs.image", "steps.versoin.outputs.image")
        .replace('[ "$TAG" != "v$version" ]', "[ $TAG != v$version ]")
    )
    bad = release.actionlint([broken])
    assert bad.returncode != 0, bad.stdout
    assert "versoin" in bad.stdout  # actionlint's own check
    assert "SC2086" in bad.stdout  # shellcheck's, on the run: script
