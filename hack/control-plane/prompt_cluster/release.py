"""Release machinery: the version and its copies, and every release artifact.

``VERSION`` at the repository root holds the version. The files that must
carry it too (pyprojects, the chart, the Dockerfile's label, the packages'
``__version__``, the rendered install.yaml, the CHANGELOG's top entry) are
listed once in ``COPIES``: ``bump`` rewrites them, ``check`` finds the ones
that disagree (a unit test runs it).

``dist`` builds what a release publishes into one folder: the wheels and
sdists of both distributions (checked with ``twine check --strict``), the
chart (``helm package``), the image as an OCI archive, install.yaml rendered
for the image reference, and SHA256SUMS. ``make dist`` and the end-to-end
layer run the same code.

    python -m prompt_cluster.release bump 0.2.0
    python -m prompt_cluster.release check
    python -m prompt_cluster.release dist --out dist --image ghcr.io/OWNER/prompt-operator:0.2.0
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]

# Where the project lives and publishes. Placeholders until the maintainers
# confirm the GitHub organisation; `check` finds every copy that disagrees.
REPOSITORY_URL = "https://github.com/prompt-operator/prompt-operator"
IMAGE_REPOSITORY = "ghcr.io/prompt-operator/prompt-operator"
CHART_REPOSITORY = "oci://ghcr.io/prompt-operator/charts"

CHART_DIR = Path("charts/prompt-operator")
# Semantic versions without pre-release or build parts: Helm needs semver,
# PyPI needs PEP 440, and X.Y.Z is both.
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_V = r"(?P<v>\d+\.\d+\.\d+)"


class ReleaseError(RuntimeError):
    """A release step failed; the message says what and how to fix it."""


@dataclass(frozen=True)
class Copy:
    """A file that carries the version: every match of ``pattern`` (whose
    group ``v`` is the version) must equal it, and there must be at least one."""

    path: str
    pattern: str
    what: str


COPIES: tuple[Copy, ...] = (
    Copy("pyproject.toml", rf'(?m)^version = "{_V}"$', "[project] version"),
    Copy("pyproject.toml", rf'"prompt-operator-contract=={_V}"', "the contract dependency"),
    Copy("contract/pyproject.toml", rf'(?m)^version = "{_V}"$', "[project] version"),
    Copy("contract/prompt_contract/__init__.py", rf'(?m)^__version__ = "{_V}"$', "__version__"),
    Copy("client/pyproject.toml", rf'(?m)^version = "{_V}"$', "[project] version"),
    Copy("client/pyproject.toml", rf'"prompt-operator-contract=={_V}"', "the contract dependency"),
    Copy("client/prompt_client/__init__.py", rf'(?m)^__version__ = "{_V}"$', "__version__"),
    Copy("sidecar/pyproject.toml", rf'(?m)^version = "{_V}"$', "[project] version"),
    Copy("sidecar/pyproject.toml", rf'"prompt-operator-contract=={_V}"', "the contract dependency"),
    Copy("sidecar/prompt_sidecar/__init__.py", rf'(?m)^__version__ = "{_V}"$', "__version__"),
    Copy("operator/prompt_operator/__init__.py", rf'(?m)^__version__ = "{_V}"$', "__version__"),
    Copy("charts/prompt-operator/Chart.yaml", rf"(?m)^version: {_V}$", "chart version"),
    Copy("charts/prompt-operator/Chart.yaml", rf'(?m)^appVersion: "{_V}"$', "appVersion"),
    Copy(
        "charts/prompt-operator/Chart.yaml",
        rf"image: {re.escape(IMAGE_REPOSITORY)}:{_V}",
        "artifacthub.io/images",
    ),
    Copy("Dockerfile", rf'org\.opencontainers\.image\.version="{_V}"', "image version label"),
    # Rendered from the chart (`make manifests`); these are its only
    # version-dependent lines, so bumping them in place equals a re-render.
    Copy("deploy/install.yaml", rf"helm\.sh/chart: prompt-operator-{_V}", "chart labels"),
    Copy("deploy/install.yaml", rf'app\.kubernetes\.io/version: "{_V}"', "version labels"),
    Copy("deploy/install.yaml", rf"{re.escape(IMAGE_REPOSITORY)}:{_V}", "image references"),
    Copy("CHANGELOG.md", rf"(?m)^## \[{_V}\] - \d{{4}}-\d{{2}}-\d{{2}}$", "top released entry"),
    Copy("docs/gitops.md", rf"(?m)^    rev: v{_V}$", "the pre-commit hook's rev"),
    # The first app runs the image a default install pulls.
    Copy("examples/app/deployment.yaml", rf"{re.escape(IMAGE_REPOSITORY)}:{_V}", "the image"),
    Copy(
        "charts/prompt-operator/files/first-app.yaml",
        rf"{re.escape(IMAGE_REPOSITORY)}:{_V}",
        "the image",
    ),
)


def read_version(root: Path = REPO) -> str:
    text = (root / "VERSION").read_text().strip()
    if not VERSION_PATTERN.match(text):
        raise ReleaseError(f"VERSION holds {text!r}; write a version like 1.2.3")
    return text


def _first_entry_only(copy: Copy, matches: list[re.Match[str]]) -> list[re.Match[str]]:
    # Only the CHANGELOG's newest entry must match; older ones stay as they were.
    return matches[:1] if copy.path == "CHANGELOG.md" else matches


def check(root: Path = REPO) -> list[str]:
    """Every copy of the version and of the project's addresses that
    disagrees with VERSION and the constants above, as messages."""
    version = read_version(root)
    problems = []
    for copy in COPIES:
        text = (root / copy.path).read_text()
        matches = _first_entry_only(copy, list(re.finditer(copy.pattern, text)))
        if not matches:
            problems.append(f"{copy.path}: no {copy.what} found (pattern {copy.pattern})")
        for match in matches:
            if match["v"] != version:
                line = text.count("\n", 0, match.start()) + 1
                problems.append(
                    f"{copy.path}:{line}: {copy.what} is {match['v']}, VERSION is {version}; "
                    f"run `make bump VERSION={version}`"
                )
    return problems + _address_problems(root)


# Files that must name the project's addresses (see REPOSITORY_URL).
ADDRESSES: tuple[tuple[str, str], ...] = (
    ("pyproject.toml", f'Repository = "{REPOSITORY_URL}"'),
    ("client/pyproject.toml", f'Repository = "{REPOSITORY_URL}"'),
    ("charts/prompt-operator/Chart.yaml", f"home: {REPOSITORY_URL}"),
    ("charts/prompt-operator/values.yaml", f"repository: {IMAGE_REPOSITORY}"),
    ("operator/prompt_operator/__init__.py", f'IMAGE_REPOSITORY = "{IMAGE_REPOSITORY}"'),
    ("Dockerfile", f'org.opencontainers.image.source="{REPOSITORY_URL}"'),
    ("docs/gitops.md", f"- repo: {REPOSITORY_URL}"),
)


def _address_problems(root: Path) -> list[str]:
    return [
        f"{path}: expected `{line}` (the project's address is set in {Path(__file__).name})"
        for path, line in ADDRESSES
        if line not in (root / path).read_text()
    ]


def bump(new: str, root: Path = REPO, today: datetime.date | None = None) -> list[str]:
    """Write ``new`` into VERSION and every copy; the CHANGELOG's Unreleased
    section becomes the new version's entry. Returns the files changed."""
    if not VERSION_PATTERN.match(new):
        raise ReleaseError(f"{new!r} is not a version like 1.2.3 (no leading v, no suffix)")
    old = read_version(root)
    changed: dict[str, str] = {}
    for copy in COPIES:
        if copy.path == "CHANGELOG.md":
            continue
        path = root / copy.path
        text = changed.get(copy.path, path.read_text())
        changed[copy.path] = re.sub(copy.pattern, lambda m: _with_version(m, new), text)
    changed["CHANGELOG.md"] = _changelog_release(
        (root / "CHANGELOG.md").read_text(), old, new, today or datetime.date.today()
    )
    changed["VERSION"] = new + "\n"
    for rel, text in changed.items():
        (root / rel).write_text(text)
    (root / CHART_DIR / "README.md").write_text(chart_readme(root))
    return sorted([*changed, str(CHART_DIR / "README.md")])


def _with_version(match: re.Match[str], new: str) -> str:
    text, start = match[0], match.start()
    return text[: match.start("v") - start] + new + text[match.end("v") - start :]


def _changelog_release(text: str, old: str, new: str, today: datetime.date) -> str:
    """Keep a Changelog: `## [Unreleased]` becomes `## [new] - date`, a fresh
    empty Unreleased goes on top, and the compare links follow."""
    if "## [Unreleased]" not in text:
        raise ReleaseError("CHANGELOG.md has no `## [Unreleased]` section to release")
    if f"## [{new}] - " in text:  # already released: bump only rewrites the copies
        return text
    text = text.replace(
        "## [Unreleased]", f"## [Unreleased]\n\n## [{new}] - {today.isoformat()}", 1
    )
    unreleased = re.compile(r"(?m)^\[Unreleased\]: .*$")
    links = (
        f"[Unreleased]: {REPOSITORY_URL}/compare/v{new}...HEAD\n"
        f"[{new}]: {REPOSITORY_URL}/compare/v{old}...v{new}"
    )
    if unreleased.search(text):
        return unreleased.sub(links, text, count=1)
    return text.rstrip("\n") + "\n\n" + links + "\n"


def release_notes(version: str, root: Path = REPO) -> str:
    """The CHANGELOG entry of ``version``, for the GitHub release."""
    text = (root / "CHANGELOG.md").read_text()
    match = re.search(
        rf"(?ms)^## \[{re.escape(version)}\][^\n]*\n(?P<body>.*?)(?=^## \[|^\[[^\]]+\]: |\Z)", text
    )
    if match is None:
        raise ReleaseError(f"CHANGELOG.md has no entry `## [{version}] - DATE`")
    return match["body"].strip() + "\n"


# ---- the chart README, generated from values.schema.json -------------------

CHART_README_HEADER = """\
<!-- Generated from values.schema.json and values.yaml by `make chart-readme`; do not edit. -->
# prompt-operator

{description}

Installs the `Prompt` CRD (`prompts.dev/v1alpha1`), the operator (two
replicas, one leader), its admission webhooks and least-privilege RBAC, and
the `prompt-sidecar` ServiceAccount in the namespaces you list.

## Install

```sh
helm install prompt-operator {chart_repository}/prompt-operator \\
  --namespace prompt-system --create-namespace \\
  --set 'sidecar.namespaces={{my-app-namespace}}'
```

The default image is `{image}` at the chart's appVersion.
Source, documentation and issues: {home}

## Values

Every key is checked by `values.schema.json`: a misspelt key fails
`helm install` instead of being ignored.

| Key | Type | Default | Description |
|-----|------|---------|-------------|
"""


def _schema_rows(
    schema: dict[str, Any], values: Any, prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, sub in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        default = values.get(name) if isinstance(values, dict) else None
        if sub.get("properties"):
            rows.extend(_schema_rows(sub, default, key + "."))
            continue
        kind = sub.get("type") or ("enum" if "enum" in sub else "")
        kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
        if "enum" in sub:
            kind = " \\| ".join(f"`{v}`" if v else '`""`' for v in sub["enum"])
        rows.append((key, kind, json.dumps(default), str(sub.get("description", ""))))
    return rows


def missing_descriptions(root: Path = REPO) -> list[str]:
    """Keys of values.schema.json without a description."""
    schema = json.loads((root / CHART_DIR / "values.schema.json").read_text())
    missing: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            if not sub.get("description"):
                missing.append(prefix + name)
            walk(sub, f"{prefix}{name}.")

    walk(schema, "")
    return missing


def chart_readme(root: Path = REPO) -> str:
    import yaml  # the harness depends on pyyaml

    chart = yaml.safe_load((root / CHART_DIR / "Chart.yaml").read_text())
    schema = json.loads((root / CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((root / CHART_DIR / "values.yaml").read_text())
    out = CHART_README_HEADER.format(
        description=chart["description"],
        chart_repository=CHART_REPOSITORY,
        image=values["image"]["repository"],
        home=chart["home"],
    )
    for key, kind, default, description in _schema_rows(schema, values):
        cells = (f"`{key}`", kind, f"`{default}`", description.replace("|", "\\|"))
        out += "| " + " | ".join(cells) + " |\n"
    return out


# ---- release artifacts ------------------------------------------------------


def split_image(ref: str) -> tuple[str, str]:
    """``registry/name:tag`` into repository and tag; a digest is refused
    because the chart and install.yaml take a tag."""
    if "@" in ref:
        raise ReleaseError(f"IMAGE={ref}: give a tag, not a digest (REPOSITORY:TAG)")
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not repository:
        raise ReleaseError(f"IMAGE={ref}: expected REPOSITORY:TAG, e.g. {IMAGE_REPOSITORY}:1.2.3")
    return repository, tag


def default_image(root: Path = REPO) -> str:
    return f"{IMAGE_REPOSITORY}:{read_version(root)}"


def _run(args: Sequence[str | Path], what: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"{what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


# The four Python distributions, each built from its own folder; only the
# contract is required by the other three (at exactly this version).
PROJECTS = (REPO / "contract", REPO / "client", REPO / "sidecar", REPO)


def python_dists(out: Path, *, isolated: bool = True) -> list[Path]:
    """Wheel and sdist of each distribution (contract, client, sidecar, operator) into ``out``."""
    before = set(out.glob("*"))
    flags = [] if isolated else ["--no-isolation"]
    for project in PROJECTS:
        # setuptools puts every file a stale SOURCES.txt names into the sdist
        # (an older layout's, from an editable install); it is rebuilt.
        for stale in project.glob("*.egg-info"):
            shutil.rmtree(stale)
        _run(
            [sys.executable, "-m", "build", *flags, "--sdist", "--wheel", "--outdir", out, project],
            f"python -m build {project.relative_to(REPO.parent)}",
        )
    # setuptools leaves build/ and *.egg-info beside the sources.
    for leftover in (project / "build" for project in PROJECTS):
        shutil.rmtree(leftover, ignore_errors=True)
    return sorted(set(out.glob("*")) - before)


def twine_check(files: Iterable[Path]) -> str:
    return _run(
        [sys.executable, "-m", "twine", "--no-color", "check", "--strict", *files],
        "twine check --strict",
    )


def _staged_chart(tmp: Path, repository: str, tag: str, version: str) -> Path:
    """A copy of the chart whose default image is ``repository:tag``."""
    chart = tmp / "prompt-operator"
    shutil.copytree(REPO / CHART_DIR, chart, ignore=shutil.ignore_patterns("*.tgz"))
    values = chart / "values.yaml"
    text = values.read_text()
    text, count = re.subn(r"(?m)^(  repository: ).*$", lambda m: m[1] + repository, text, count=1)
    if count != 1:
        raise ReleaseError(f"{values}: no `  repository:` line under image")
    if tag != version:
        text, count = re.subn(r'(?m)^(  tag: )"".*$', lambda m: f'{m[1]}"{tag}"', text, count=1)
        if count != 1:
            raise ReleaseError(f'{values}: no `  tag: ""` line under image')
    values.write_text(text)
    # Artifact Hub lists the image the chart installs.
    meta = chart / "Chart.yaml"
    meta.write_text(
        meta.read_text().replace(
            f"image: {IMAGE_REPOSITORY}:{version}", f"image: {repository}:{tag}"
        )
    )
    return chart


def package_chart(out: Path, helm: Path, image: str) -> Path:
    """`helm package` of the chart, its default image set to ``image``."""
    repository, tag = split_image(image)
    version = read_version()
    with tempfile.TemporaryDirectory() as tmp:
        chart = _staged_chart(Path(tmp), repository, tag, version)
        _run([helm, "lint", "--strict", chart], "helm lint")
        _run([helm, "package", chart, "--destination", out], "helm package")
    return out / f"prompt-operator-{version}.tgz"


def image_archive(out: Path, image: str) -> Path:
    """The product image (built from the Dockerfile, cached by content) as an
    OCI archive named ``image``: `ctr images import`, `kind load image-archive`,
    `skopeo copy oci-archive:...` and `podman load` all read the name from it."""
    from .images import operator_image

    source, _ = operator_image()
    _, tag = split_image(image)
    dest = out / f"prompt-operator-image-{read_version()}.tar"
    _rename_oci_archive(source, dest, image, tag)
    return dest


def _rename_oci_archive(source: Path, dest: Path, image: str, tag: str) -> None:
    """Copy an OCI archive, naming its one manifest ``image`` (containerd's
    annotation) and ``tag`` (the OCI ref name). The blobs stay byte for byte."""
    with tarfile.open(source) as src, tarfile.open(dest, "w") as dst:
        for member in src:
            if member.name.lstrip("./") == "index.json":
                index = json.loads(src.extractfile(member).read())  # type: ignore[union-attr]
                (manifest,) = index["manifests"]
                manifest["annotations"] = {
                    "io.containerd.image.name": image,
                    "org.opencontainers.image.ref.name": tag,
                }
                data = json.dumps(index, separators=(",", ":")).encode()
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def install_yaml(out: Path, helm: Path, image: str) -> Path:
    from .manifests import render

    dest = out / "install.yaml"
    dest.write_text(render(helm, image=image))
    return dest


def sha256sums(out: Path) -> Path:
    lines = []
    for path in sorted(p for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {path.name}\n")
    dest = out / "SHA256SUMS"
    dest.write_text("".join(lines))
    return dest


def dist(out: Path, image: str | None = None, *, isolated: bool = True) -> list[Path]:
    """Every release artifact into ``out`` (emptied first)."""
    from .build import ensure_helm

    problems = check()
    if problems:
        raise ReleaseError("the version's copies disagree:\n  " + "\n  ".join(problems))
    image = image or default_image()
    split_image(image)
    helm = ensure_helm()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _log(f"python distributions into {out}")
    for line in twine_check(python_dists(out, isolated=isolated)).splitlines():
        _log(f"twine check --strict: {line.removeprefix('Checking ')}")
    _log("chart, install.yaml")
    package_chart(out, helm, image)
    install_yaml(out, helm, image)
    _log(f"image {image} as an OCI archive")
    image_archive(out, image)
    sha256sums(out)
    return sorted(out.iterdir())


# The inputs of `dist`: a change in any of them builds anew (see cached_dist).
DIST_SOURCES = (
    "VERSION",
    "LICENSE",
    "Dockerfile",
    "pyproject.toml",
    "operator",
    "sidecar",
    "client",
    "contract",
    "crds",
    "charts",
    # and how they are built
    "hack/control-plane/prompt_cluster/release.py",
    "hack/control-plane/prompt_cluster/manifests.py",
)


def cached_dist(image: str | None = None) -> Path:
    """`dist` into the cache, keyed by its inputs, so a second run (the
    end-to-end layer's) reuses it. Built without build isolation: the same
    files, no download of setuptools each time."""
    from .build import cache_root
    from .images import _tree_hash

    image = image or default_image()
    key = _tree_hash((REPO / s for s in DIST_SOURCES), image, "dist v1")
    dest = cache_root().parent / "dist" / key
    if (dest / "SHA256SUMS").is_file():
        return dest
    staging = dest.with_name(f".{key}-{os.getpid()}")
    try:
        dist(staging, image, isolated=False)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    for old in dest.parent.iterdir():
        if old != dest and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return dest


# ---- actionlint ---------------------------------------------------------------

ACTIONLINT_VERSION = "v1.7.12"


def ensure_actionlint() -> Path:
    """actionlint built from its Go module into the tool cache (once)."""
    from .build import cache_root

    dest = cache_root() / f"actionlint-{ACTIONLINT_VERSION}"
    binary = dest / "actionlint"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ReleaseError("actionlint is built with Go: install Go (see `make binaries`)")
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(dest), CGO_ENABLED="0")
    env.setdefault("GOTOOLCHAIN", "local")
    result = subprocess.run(
        [go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not binary.is_file():
        raise ReleaseError(f"building actionlint {ACTIONLINT_VERSION} failed:\n{result.stderr}")
    return binary


def actionlint(paths: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    """actionlint on the workflows, with the dev extras' shellcheck for their
    `run:` scripts (passed explicitly: what is on PATH differs by machine)."""
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.is_file():
        raise ReleaseError(f"no {shellcheck}: install the dev extras (`make venv`)")
    files = list(paths) or sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
    return subprocess.run(
        [str(ensure_actionlint()), "-shellcheck", str(shellcheck), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def _log(message: str) -> None:
    print(f"[release] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prompt_cluster.release",
        description="Bump the version, check its copies, build the release artifacts.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print VERSION")
    sub.add_parser("image", help="print the default image reference")
    sub.add_parser("chart-repository", help="print the OCI repository the chart is pushed to")
    sub.add_parser("check", help="list copies of the version that disagree with VERSION")
    p = sub.add_parser("bump", help="write a new version everywhere, e.g. `bump 0.2.0`")
    p.add_argument("version")
    p = sub.add_parser("notes", help="print a version's CHANGELOG entry")
    p.add_argument("version")
    sub.add_parser("chart-readme", help="write charts/prompt-operator/README.md from the schema")
    sub.add_parser("actionlint", help="check .github/workflows with actionlint (built once)")
    p = sub.add_parser("dist", help="build every release artifact")
    p.add_argument("--out", type=Path, default=REPO / "dist")
    p.add_argument(
        "--image",
        default="",
        help="image reference the chart and install.yaml point at "
        f"(default {IMAGE_REPOSITORY}:VERSION)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(read_version())
        elif args.command == "image":
            print(default_image())
        elif args.command == "chart-repository":
            print(CHART_REPOSITORY)
        elif args.command == "check":
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        elif args.command == "bump":
            for path in bump(args.version):
                print(path)
        elif args.command == "notes":
            sys.stdout.write(release_notes(args.version))
        elif args.command == "chart-readme":
            (REPO / CHART_DIR / "README.md").write_text(chart_readme())
        elif args.command == "actionlint":
            result = actionlint()
            sys.stdout.write(result.stdout + result.stderr)
            return result.returncode
        elif args.command == "dist":
            for artifact in dist(args.out.resolve(), args.image or None):
                print(artifact)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
