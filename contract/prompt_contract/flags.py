"""Command-line flags declared once: the parser, the ``--help`` line and the docs row.

A command lists its flags as a tuple of ``Flag``. ``build_parser`` makes the
argparse parser from it (each help line ends with ``(env: NAME; default: X)``),
``parse`` turns argv and the environment into typed values (a flag beats its
variable, the variable beats the default), ``fill`` puts them into the
command's frozen config dataclass, and ``markdown_table`` writes the docs page.

argparse only collects strings here; converting them is ours, so that a bad
value from a variable is refused as clearly as one from a flag, naming where it
came from and what is allowed. Standard library only: the operator and the
sidecar both import it, and neither may import the other.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # typing costs every sidecar 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    from _typeshed import DataclassInstance

    # text: a string; int, float: numbers; path: a pathlib.Path; bool: --x/--no-x
    # with a true/false variable; switch: --x alone, no value.
    Kind = Literal["text", "int", "float", "path", "bool", "switch"]
    # repeat: the flag may be given many times, its variable is comma-separated;
    # comma: one value, comma-separated. Either way the value is a tuple of strings.
    Many = Literal["", "repeat", "comma"]
    D = TypeVar("D", bound=DataclassInstance)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class FlagError(ValueError):
    """A value that does not fit its flag; the message names the flag or variable."""


@dataclass(frozen=True)
class Flag:
    name: str  # "--log-format"
    help: str
    env: str | None = None  # the variable read when the flag is not given
    env_then: tuple[str, ...] = ()  # read in order when ``env`` is unset too
    # The variable is honoured by the code that uses the value (a kubeconfig
    # loader that takes a list of files), so the parser only names it.
    env_read_later: bool = False
    kind: Kind = "text"
    many: Many = ""
    default: Any = None
    shown_default: str | None = None  # words for the default where the value says too little
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    short: str | None = None  # "-n"
    dest: str | None = None  # the config field; default: the name without dashes
    # An empty variable counts as unset unless the empty string means something
    # (no file extension); for a list it is the empty list.
    empty_is_value: bool = False
    required: bool = False  # neither the flag nor its variable may be left out

    @property
    def key(self) -> str:
        return self.dest or self.name.lstrip("-").replace("-", "_")

    def option_strings(self) -> list[str]:
        names = [self.name, self.short] if self.short else [self.name]
        if self.kind == "bool":
            names.append("--no-" + self.name.removeprefix("--"))
        return names


def build_parser(
    flags: Sequence[Flag], *, prog: str, description: str, epilog: str = ""
) -> argparse.ArgumentParser:
    """The argparse parser of ``flags``; ``parse`` gives the values their types."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag in flags:
        names = [flag.name, flag.short] if flag.short else [flag.name]
        options: dict[str, Any] = {
            "dest": flag.key,
            "default": argparse.SUPPRESS,  # absent: the variable or the default decides
            "help": help_line(flag).replace("%", "%%"),
        }
        if flag.kind == "switch":
            options["action"] = "store_true"
        elif flag.kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["action"] = "append" if flag.many == "repeat" else "store"
            options["metavar"] = flag.metavar or flag.name.lstrip("-").upper().replace("-", "_")
            if flag.choices:
                options["choices"] = flag.choices
        parser.add_argument(*names, **options)
    return parser


def parse(
    flags: Sequence[Flag],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
) -> argparse.Namespace:
    """Typed values of every flag; raise ``FlagError`` for a value that does not fit.

    argparse still exits on --help, an unknown flag or a missing value."""
    given = vars(parser.parse_args(argv))
    values = argparse.Namespace()
    for flag in flags:
        value = _value(flag, given, environ)
        if flag.required and value in (None, ""):
            source = f"{flag.name} (or {flag.env})" if flag.env else flag.name
            raise FlagError(f"{source} is required: {flag.help}")
        setattr(values, flag.key, value)
    return values


def fill(cls: type[D], values: argparse.Namespace, **derived: Any) -> D:
    """``cls`` (a dataclass) from the values whose names are its fields, and ``derived``."""
    fields = {f.name for f in dataclasses.fields(cls)}
    taken = {k: v for k, v in vars(values).items() if k in fields and k not in derived}
    return cls(**taken, **derived)


def _value(flag: Flag, given: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    if flag.key in given:
        raw = given[flag.key]
        if flag.kind in ("switch", "bool"):
            return bool(raw)
        if flag.many == "repeat":
            return tuple(_converted(flag, item, flag.name) for item in raw)
        return _converted(flag, raw, flag.name)
    for name in () if flag.env_read_later else (flag.env, *flag.env_then):
        raw = environ.get(name) if name else None
        if raw is None or (raw == "" and not flag.many and not flag.empty_is_value):
            continue
        if flag.many:
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        return _converted(flag, raw, f"{name} (the variable behind {flag.name})")
    return flag.default


def _converted(flag: Flag, raw: str, source: str) -> Any:
    if flag.many == "comma":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if flag.choices and raw not in flag.choices:
        raise FlagError(f"{source} {raw!r}: must be one of {', '.join(flag.choices)}")
    convert, allowed = _CONVERTERS[flag.kind]
    try:
        return convert(raw)
    except ValueError:
        raise FlagError(f"{source} {raw!r}: must be {allowed}") from None


def _boolean(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(raw)


_CONVERTERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "text": (str, "text"),
    "path": (Path, "a path"),
    "int": (int, "a whole number"),
    "float": (float, "a number"),
    "bool": (_boolean, f"one of {', '.join(_TRUE + _FALSE)}"),
}


def shown_default(flag: Flag) -> str:
    """The default as help and docs say it; empty when there is nothing to say."""
    if flag.shown_default is not None:
        return flag.shown_default
    if flag.kind in ("bool", "switch"):
        return "on" if flag.default else "off"
    if isinstance(flag.default, float):
        return f"{flag.default:g}"
    if isinstance(flag.default, tuple):
        return ", ".join(flag.default)
    return "" if flag.default is None else str(flag.default)


def _env_words(flag: Flag) -> str:
    if not flag.env:
        return ""
    words = ", then ".join((flag.env, *flag.env_then))
    return words + (", comma-separated" if flag.many else "")


def help_line(flag: Flag) -> str:
    """The flag's help with ``(env: NAME; default: X)``, the form every command uses."""
    notes = []
    if flag.env:
        notes.append(f"env: {_env_words(flag)}")
    if flag.required:
        notes.append("required")
    elif shown_default(flag):
        notes.append(f"default: {shown_default(flag)}")
    if flag.many == "repeat":
        notes.append("repeatable")
    return f"{flag.help} ({'; '.join(notes)})" if notes else flag.help


def markdown_table(flags: Sequence[Flag]) -> str:
    """The docs page's table of ``flags``: flag, variable, default, what it does."""
    rows = ["| flag | env | default | what it does |", "|---|---|---|---|"]
    for flag in flags:
        names = ", ".join(f"`{name}`" for name in flag.option_strings())
        if flag.metavar:
            names += f" {flag.metavar}"
        if flag.many == "repeat":
            names += " (repeatable)"
        env = ", then ".join(f"`{name}`" for name in (flag.env, *flag.env_then) if name)
        if env and flag.many:
            env += " (comma-separated)"
        rows.append(f"| {names} | {env} | {_default_cell(flag)} | {_cell(flag.help)} |")
    return "\n".join(rows) + "\n"


def _default_cell(flag: Flag) -> str:
    if flag.required:
        return "(required)"
    default = shown_default(flag)
    if flag.shown_default is None and default and flag.kind not in ("bool", "switch"):
        default = f"`{default}`"  # a literal value, not words about one
    if flag.choices:
        default += "; one of " + ", ".join(f"`{c}`" for c in flag.choices)
    return default


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
