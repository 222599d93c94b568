"""The `prompt-operator` command (and `kubectl prompt`). Each subcommand imports
its part lazily, so `validate` or `history` never load kopf. The sidecar has a
command of its own, `prompt-sidecar`, in its own distribution."""

from __future__ import annotations

import sys

DISTRIBUTION = "prompt-operator"

_USAGE = """\
prompt-operator <command> [options]
prompt-operator --version

commands:
  run        run the operator (watches Prompts, writes ConfigMaps, signals sidecars)
  validate   check Prompt manifests offline, for CI pipelines
  files      write the prompt files a sidecar would, from manifests (run an app locally)
  history    list a Prompt's revisions (number, hash, time, source, summary)
  diff       unified diff between two revisions of a Prompt
  rollback   make an earlier revision current again (--to NUMBER)
  rollout    a progressive rollout: status, promote, abort, pause, resume, retry
  console    a local web console for Prompts (browse, diff, edit, roll back)
  signing-keys  the keys that sign signals: status, rotate

`prompt-operator <command> --help` describes each command, its flags, the
environment variable behind each flag (shown as "env: NAME") and an example.

example:
  prompt-operator validate prompts/
  prompt-operator history support-agent -n team-a
"""


def version() -> str:
    """The installed distribution's version; a source tree that was never installed
    (PYTHONPATH only) has no metadata, and says so rather than failing."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        print(f"prompt-operator {version()}")
        return 0
    command, rest = args[0], args[1:]
    if command == "sidecar":
        print(
            "prompt-operator: the sidecar is its own command now: prompt-sidecar "
            "(from the prompt-operator-sidecar distribution; the image has both)",
            file=sys.stderr,
        )
        return 2
    if command == "run":
        from prompt_operator.runner import run as run_operator

        return run_operator(rest)
    if command in ("history", "diff", "rollback"):
        from prompt_operator.revisions_cli import run as run_revisions

        return run_revisions(command, rest)
    if command == "rollout":
        from prompt_operator.rollout_cli import run as run_rollout

        return run_rollout(rest)
    if command == "console":
        from prompt_operator.console.command import run as run_console

        return run_console(rest)
    if command == "signing-keys":
        from prompt_operator.signing_cli import run as run_signing_keys

        return run_signing_keys(rest)
    if command == "validate":
        from prompt_operator.validate import main as run_validate

        return run_validate(rest)
    if command == "files":
        from prompt_operator.files_cli import main as run_files

        return run_files(rest)
    print(f"prompt-operator: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
