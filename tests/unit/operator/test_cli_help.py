"""The command line explains itself: every command has a description, help for
every argument, an example, one way of naming environment variables, and
`--version` says which release is installed."""

from __future__ import annotations

import argparse
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from prompt_contract.flags import Flag, help_line
from prompt_operator import (
    cli,
    config,
    files_cli,
    revisions_cli,
    rollout_cli,
    signing_cli,
    validate,
)
from prompt_operator.console import command as console_command
from prompt_sidecar import config as sidecar_config
from prompt_sidecar import main as sidecar_main


def _revision_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = revisions_cli._parser("prompt-operator")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


PARSERS: dict[str, argparse.ArgumentParser] = {
    "run": config.parser(),
    "sidecar": sidecar_config.build_parser(),  # its own command: prompt-sidecar
    "validate": validate.parser(),
    "console": console_command.parser(),
    "files": files_cli.parser(),
    "rollout": rollout_cli.parser(),
    "signing-keys": signing_cli.parser(),
    **_revision_parsers(),
}


def test_every_command_in_the_usage_has_a_parser_here() -> None:
    listed = re.findall(r"^  ([\w-]+)\s{2,}", cli._USAGE, flags=re.MULTILINE)
    assert sorted(listed) == sorted(set(PARSERS) - {"sidecar"})


def _help_page(name: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The --help page of command ``name`` and how its example lines start."""
    with pytest.raises(SystemExit) as done:
        if name == "sidecar":
            sidecar_main.run(["--help"])
        else:
            cli.main([name, "--help"])
    assert done.value.code == 0
    return (
        capsys.readouterr().out,
        "prompt-sidecar" if name == "sidecar" else f"prompt-operator {name}",
    )


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_command_has_a_description_argument_help_and_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = PARSERS[name]
    assert parser.description and len(parser.description) > 40, name
    undocumented = [
        a.option_strings or [a.dest]
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert not undocumented, f"{name}: arguments without help: {undocumented}"
    page, command = _help_page(name, capsys)
    # The example is a runnable line of this very command, kept verbatim.
    assert re.search(rf"^example.*:\n(  .*\n)*  {command} ", page, re.MULTILINE), page


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_environment_variables_are_named_one_way(name: str) -> None:
    helps = " ".join(a.help or "" for a in PARSERS[name]._actions)
    assert "[env" not in helps and "[PROMPT_" not in helps, helps
    for match in re.finditer(r"\((env: )?(PROMPT_[A-Z_]+|KUBECONFIG|POD_NAME)\b", helps):
        assert match.group(1), f"{name}: write (env: NAME), not {match.group(0)!r}"


TABLES: dict[str, tuple[Flag, ...]] = {
    "run": config.FLAGS,
    "sidecar": sidecar_config.FLAGS,
    "console": console_command.FLAGS,
}


@pytest.mark.parametrize("name", ["run", "sidecar"])
def test_every_flag_of_a_daemon_says_its_environment_variable(name: str) -> None:
    without = [
        a.option_strings[0]
        for a in PARSERS[name]._actions
        if a.option_strings and a.dest not in ("help", "verbose") and "(env: " not in (a.help or "")
    ]
    assert not without, f"{name}: flags whose help names no (env: ...): {without}"
    undeclared = [f.name for f in TABLES[name] if not f.env and f.name != "--verbose"]
    assert not undeclared, f"{name}: flags declared without a variable: {undeclared}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_parser_is_made_from_the_flag_table_alone(name: str) -> None:
    """No flag is added by hand beside the table, and each help line ends the one way."""
    actions = [a for a in PARSERS[name]._actions if not isinstance(a, argparse._HelpAction)]
    assert [a.option_strings for a in actions] == [
        [f.name, f.short] if f.short else f.option_strings() for f in TABLES[name]
    ]
    for action, flag in zip(actions, TABLES[name], strict=True):
        assert action.help == help_line(flag).replace("%", "%%")
        if flag.env:
            assert f"(env: {flag.env}" in (action.help or ""), action.help


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_distributions_version(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([flag]) == 0
    assert capsys.readouterr().out == f"prompt-operator {version('prompt-operator')}\n"


def test_version_without_package_metadata_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "DISTRIBUTION", "prompt-operator-not-installed-anywhere")
    assert cli.version() == "unknown (not installed as a package)"


def test_a_plugin_kubeconfig_without_kubectl_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """{"apiVersion": "v1", "kind": "Config", "current-context": "eks",
  "contexts": [{"name": "eks", "context": {"cluster": "c", "user": "u"}}],
  "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
  "users": [{"name": "u", "user": {"exec": {"command": "aws", "apiVersion":
    "client.authentication.k8s.io/v1beta1"}}}]}"""
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl here
    assert cli.main(["history", "p", "--kubeconfig", str(kubeconfig)]) == 1
    err = capsys.readouterr().err
    assert "exec or auth-provider plugin" in err and "install kubectl" in err, err


def test_an_unreadable_kubeconfig_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert cli.main(["diff", "p", "1", "--kubeconfig", str(missing)]) == 1
    assert f"cannot read kubeconfig {missing}" in capsys.readouterr().err
