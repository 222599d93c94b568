"""Flags declared once: the shared builder's rules (a flag beats its variable, the
variable beats the default, a bad value names its source and what is allowed),
and the three commands' tables wired through it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from prompt_contract.flags import Flag, FlagError, build_parser, fill, help_line, parse
from prompt_operator import config as operator_config
from prompt_operator.console import command as console_command
from prompt_sidecar import config as sidecar_config

FLAGS = (
    Flag("--port", "port to listen on", env="X_PORT", kind="int", default=80),
    Flag("--ratio", "a share", env="X_RATIO", kind="float", default=0.5),
    Flag("--on", "turn it on", env="X_ON", kind="bool", default=False),
    Flag("--mode", "how", env="X_MODE", choices=("a", "b"), default="a"),
    Flag("--name", "a name", env="X_NAME", env_then=("X_FALLBACK",), default="n"),
    Flag("--ns", "namespaces", env="X_NS", many="repeat", default=()),
    Flag("--only", "listed", env="X_ONLY", many="comma"),
    Flag("--ext", "suffix", env="X_EXT", default=".txt", empty_is_value=True),
    Flag("--config", "a file", env="X_CONFIG", env_read_later=True),
    Flag("--verbose", "chatty", kind="switch", default=False),
)


def values(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    return parse(FLAGS, build_parser(FLAGS, prog="x", description="d"), argv, env)


def test_a_flag_beats_its_variable_and_the_variable_beats_the_default() -> None:
    assert values([], {}).port == 80
    assert values([], {"X_PORT": "81"}).port == 81
    assert values(["--port=82"], {"X_PORT": "81"}).port == 82


def test_values_get_their_types_from_either_source() -> None:
    got = values(["--ratio=0.25", "--no-on", "--ns=a", "--ns", "b"], {"X_ON": "true"})
    assert (got.ratio, got.on, got.ns, got.verbose) == (0.25, False, ("a", "b"), False)
    got = values(["--verbose"], {"X_ON": "yes", "X_NS": "a, b,,c", "X_ONLY": "p,q"})
    assert (got.on, got.ns, got.only, got.verbose) == (True, ("a", "b", "c"), ("p", "q"), True)


def test_a_second_variable_is_read_when_the_first_is_unset() -> None:
    assert values([], {"X_FALLBACK": "f"}).name == "f"
    assert values([], {"X_NAME": "first", "X_FALLBACK": "f"}).name == "first"


def test_an_empty_variable_is_unset_unless_empty_means_something() -> None:
    got = values([], {"X_PORT": "", "X_NAME": "", "X_EXT": "", "X_ONLY": ""})
    assert (got.port, got.name, got.ext, got.only) == (80, "n", "", ())
    assert values([], {}).only is None  # unset is not the empty list


def test_a_variable_the_loader_reads_is_named_but_not_read() -> None:
    assert values([], {"X_CONFIG": "/a:/b"}).config is None
    assert "(env: X_CONFIG)" in help_line(FLAGS[8])


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {"X_PORT": "tcp://10.0.0.1:443"}, "X_PORT (the variable behind --port) "),
        ([], {"X_PORT": "8.5"}, "must be a whole number"),
        ([], {"X_RATIO": "half"}, "X_RATIO (the variable behind --ratio) 'half': must be a number"),
        ([], {"X_ON": "maybe"}, "X_ON (the variable behind --on) 'maybe': must be one of 1, true"),
        ([], {"X_MODE": "c"}, "X_MODE (the variable behind --mode) 'c': must be one of a, b"),
        (["--port=http"], {}, "--port 'http': must be a whole number"),
    ],
)
def test_a_bad_value_names_its_source_and_what_is_allowed(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(FlagError) as refused:
        values(argv, env)
    assert message in str(refused.value)


def test_help_says_the_variable_and_the_default_one_way() -> None:
    assert help_line(FLAGS[0]) == "port to listen on (env: X_PORT; default: 80)"
    assert help_line(FLAGS[4]) == "a name (env: X_NAME, then X_FALLBACK; default: n)"
    assert help_line(FLAGS[5]) == "namespaces (env: X_NS, comma-separated; repeatable)"
    assert help_line(FLAGS[9]) == "chatty (default: off)"


@dataclass(frozen=True)
class Settings:
    port: int
    mode: str
    doubled: float


def test_fill_takes_the_fields_from_the_values_and_the_rest_from_the_caller() -> None:
    got = values(["--mode=b"], {})
    assert fill(Settings, got, doubled=got.ratio * 2) == Settings(port=80, mode="b", doubled=1.0)


# -- the commands' tables ---------------------------------------------------------

SIDECAR_ENV = {"POD_NAME": "app-1", "POD_NAMESPACE": "ns", "PROMPT_DIR": "/p"}


@pytest.mark.parametrize(
    "flag",
    [f for f in operator_config.FLAGS if f.env and not f.env_read_later],
    ids=lambda f: f.env,
)
def test_every_variable_of_the_operator_reaches_its_setting(flag: Flag) -> None:
    sample = {"int": "4242", "float": "4.5", "bool": "true"}.get(flag.kind, "team-a")
    sample = flag.choices[-1] if flag.choices else sample
    got = parse(operator_config.FLAGS, operator_config.parser(), [], {flag.env or "": sample})
    default = parse(operator_config.FLAGS, operator_config.parser(), [], {})
    assert getattr(got, flag.key) != getattr(default, flag.key)


def test_a_bad_operator_variable_stops_it_with_the_variables_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What a Kubernetes Service link would set; it used to crash with a traceback.
    env = {"PROMPT_OPERATOR_WEBHOOK_PORT": "tcp://10.0.0.1:443"}
    with pytest.raises(SystemExit) as stopped:
        operator_config.parse_config([], env)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "PROMPT_OPERATOR_WEBHOOK_PORT (the variable behind --webhook-port)" in err, err
    assert "must be a whole number" in err, err


def test_the_operator_reads_its_variables_into_its_config() -> None:
    env = {
        "PROMPT_OPERATOR_NAMESPACES": "a,b,a",
        "PROMPT_OPERATOR_WORKERS": "0",
        "PROMPT_OPERATOR_LEADER_ELECT": "true",
        "POD_NAMESPACE": "ops",
        "POD_NAME": "op-0",
        "PROMPT_OPERATOR_SIDECAR_NAMESPACES": "",
    }
    got = operator_config.parse_config([], env)
    assert (got.namespaces, got.workers, got.leader_elect) == (("a", "b"), 1, True)
    assert (got.lease.namespace, got.lease.identity) == ("ops", "op-0")
    assert got.sidecar_namespaces == ()  # set but empty: checked, and nowhere allowed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROMPT_RESYNC_SECONDS": "soon"}, "PROMPT_RESYNC_SECONDS (the variable behind --resync)"),
        ({"PROMPT_LOG_FORMAT": "yaml"}, "must be one of auto, json, text"),
        ({"PROMPT_DIR": ""}, "--dir (or PROMPT_DIR) is required"),
    ],
)
def test_a_bad_sidecar_variable_is_a_config_error_naming_it(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(sidecar_config.ConfigError) as refused:
        sidecar_config.parse_config([], {**SIDECAR_ENV, **env})
    assert message in str(refused.value)


def test_the_sidecar_keeps_an_empty_extension() -> None:
    assert sidecar_config.parse_config([], {**SIDECAR_ENV, "PROMPT_EXT": ""}).ext == ""


@pytest.mark.parametrize(
    "table",
    [operator_config.FLAGS, sidecar_config.FLAGS, console_command.FLAGS],
    ids=["run", "sidecar", "console"],
)
def test_each_flag_and_variable_is_declared_once(table: tuple[Flag, ...]) -> None:
    names = [name for flag in table for name in flag.option_strings()]
    assert len(names) == len(set(names))
    keys = [flag.key for flag in table]
    assert len(keys) == len(set(keys))
    variables = [name for flag in table for name in (flag.env, *flag.env_then) if name]
    assert len(variables) == len(set(variables))


def test_the_prometheus_url_is_read_and_must_be_http(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"PROMPT_OPERATOR_PROMETHEUS_URL": "http://prometheus.monitoring:9090"}
    assert (
        operator_config.parse_config([], env).prometheus_url
        == env["PROMPT_OPERATOR_PROMETHEUS_URL"]
    )
    assert operator_config.parse_config([], {}).prometheus_url is None
    with pytest.raises(SystemExit):
        operator_config.parse_config(["--prometheus-url=prometheus:9090"], {})
    assert "must start with http:// or https://" in capsys.readouterr().err
