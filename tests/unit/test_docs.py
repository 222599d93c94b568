"""The README stays short, and no link in it or in docs/ points nowhere: every
relative link names a file that exists, and every #anchor a heading there.
docs/configuration.md lists every flag the commands define, in the tables
generated from their declarations."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from prompt_cluster import flagdocs
from prompt_operator import config
from prompt_operator.console import command as console_command
from prompt_sidecar import config as sidecar_config

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")


def links(page: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return LINK.findall(text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move details to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        if not re.fullmatch(r"[\w./#%-]+", target):
            # Not a path: docs/reliability.md quotes the API server's regexes
            # verbatim, and `[a-z]([-a-z]*)` parses as a link there.
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_the_readmes_two_setup_commands_are_the_ones_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo   # local control plane + operator + an app pod" in readme
    assert "\nmake test   # the whole test suite" in readme


@pytest.mark.parametrize(
    "parser",
    [config.parser(), sidecar_config.build_parser(), console_command.parser()],
    ids=["run", "sidecar", "console"],
)
def test_configuration_page_lists_every_flag(parser: argparse.ArgumentParser) -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [
        option
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
        if f"`{option}`" not in page
    ]
    assert not missing, f"docs/configuration.md does not list {missing}"


def test_configuration_page_tables_are_the_generated_ones() -> None:
    committed = flagdocs.PAGE.read_text(encoding="utf-8")
    assert committed == flagdocs.generated(committed), (
        "docs/configuration.md's flag tables differ from the commands' FLAGS: run `make flags-doc`"
    )
