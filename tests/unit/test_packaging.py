"""What can be checked of the image and chart without a container engine or a cluster."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)

import tomllib

REPO = Path(__file__).resolve().parents[2]


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_dockerfile_copies_files_that_exist() -> None:
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_entrypoint_is_our_console_script_and_runs_non_root() -> None:
    final = dockerfile_stages()[-1]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entry = next(line for line in final if line.startswith("ENTRYPOINT"))
    assert re.search(r'\["([^"]+)"\]', entry).group(1) in scripts  # type: ignore[union-attr]
    user = next(line for line in final if line.startswith("USER"))
    assert not user.split()[1].startswith(("0", "root"))
    assert not any(tool in " ".join(final) for tool in ("gcc", "build-essential", "apt-get"))
    assert len(dockerfile_stages()) >= 2


def test_chart_ships_the_same_crd_as_crds_folder() -> None:
    chart_copy = REPO / "charts" / "prompt-operator" / "files" / "prompts.yaml"
    assert chart_copy.read_bytes() == (REPO / "crds" / "prompts.yaml").read_bytes(), (
        "run `make chart-crd` after editing crds/prompts.yaml"
    )


def test_dockerfile_base_is_a_build_argument_defaulting_to_python_slim() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim$", text, re.MULTILINE)
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "${BASE_IMAGE}" for line in froms), froms


def test_the_local_cluster_is_not_in_the_product_wheel_or_image() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert not any(p.startswith("prompt_cluster") for p in setuptools["packages"])
    assert "prompt_cluster" not in setuptools.get("package-dir", {})
    assert "prompt-cluster" not in config["project"]["scripts"]
    assert "hack/" not in (REPO / "Dockerfile").read_text()
    harness = tomllib.loads((REPO / "hack" / "control-plane" / "pyproject.toml").read_text())
    assert harness["project"]["scripts"]["prompt-cluster"] == "prompt_cluster.cli:main"


@pytest.mark.parametrize("project", [".", "client", "contract", "sidecar"])
def test_every_python_package_is_in_the_wheel(project: str) -> None:
    """setuptools lists packages by hand here: a new subpackage left out would be
    missing from the image while an editable install still finds it."""
    root = REPO / project
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = config.get("package-dir") or {p: p for p in listed if "." not in p}
    for package, folder in folders.items():
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            assert ".".join((package, *parts)) in listed, f"add {init.parent} to packages"


PROJECTS = {".": "prompt_operator", "client": "prompt_client", "sidecar": "prompt_sidecar"}


@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_each_distribution_ships_its_own_package_and_requires_the_contract(project: str) -> None:
    """No wheel ships another distribution's code: the contract, which all three
    share, is a distribution of its own that each requires at the same version."""
    pyproject = tomllib.loads((REPO / project / "pyproject.toml").read_text())
    contract = tomllib.loads((REPO / "contract" / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} == {PROJECTS[project]}
    version = contract["project"]["version"]
    assert f"prompt-operator-contract=={version}" in pyproject["project"]["dependencies"]
    assert contract["project"]["dependencies"] == []  # the standard library only


def test_the_image_and_the_dev_install_build_every_distribution_from_its_folder() -> None:
    assert (
        "pip wheel --no-cache-dir --wheel-dir /wheels ./contract ./client ./sidecar ."
        in (REPO / "Dockerfile").read_text()
    )
    assert "-e contract -e client -e sidecar " in (REPO / "Makefile").read_text()
