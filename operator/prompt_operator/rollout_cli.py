"""`prompt-operator rollout status | promote | abort | pause | resume | retry NAME`.

Also `kubectl prompt rollout ...` (the kubectl-prompt plugin is the same command).
``status`` prints what ``status.rollout`` records; every other subcommand writes
the annotation ``prompts.dev/rollout-action`` on the Prompt, which the operator
acts on once and removes. The annotation is metadata only: under GitOps it is no
drift, since Argo CD and Flux ignore an annotation the manifest does not set. The
connection (kubeconfig, credentials, RBAC) is the revisions commands' own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from prompt_contract import objects

from .revisions_cli import CONNECTION, CliError, Cluster, connect, connection_flags
from .rollouts import view
from .rollouts.view import AnalysisRun, Rollout, Step

# The subcommands that ask for an action, and what each asks of the operator.
ACTIONS = {
    "promote": "finish the current pause or analysis step and go on to the next",
    "abort": "serve the stable revision alone again, to every pod and user",
    "pause": "stay at the current step until resumed",
    "resume": "go on from a pause asked for with `pause`",
    "retry": "start an aborted rollout again from the first step",
}

# -- pure parts ------------------------------------------------------------------------


def _run_lines(run: AnalysisRun) -> list[str]:
    step = "?" if run.step is None else str(run.step + 1)
    failures = f", {run.failures} failed" if run.failures else ""
    head = f"  step {step}  {run.provider or 'analysis'}  {run.phase or 'Unknown'}{failures}"
    lines = [head + (f": {run.message}" if run.message else "")]
    for m in run.measurements:
        stable = f"  stable {view.number(m.stable)}" if m.stable is not None else ""
        samples = f"  {m.samples} samples" if m.samples is not None else ""
        lines.append(f"    {m.at or '-'}  {m.comparison}{stable}{samples}  {m.phase}")
    if run.job:
        lines.append(f"    job {run.job}" + (f": {run.log}" if run.log else ""))
    return lines


_MARKS = {"done": "done", "current": ">", "stopped": "x", "next": ""}


def _step_lines(steps: Sequence[Step], rollout: Rollout) -> list[str]:
    states = view.step_states(len(steps), rollout)
    return [
        f"  {_MARKS[state]:>4} {i + 1}  {step.text}"
        for i, (step, state) in enumerate(zip(steps, states, strict=True))
    ]


def status_text(name: str, obj: Mapping[str, Any]) -> str:
    """What ``rollout status`` prints for the Prompt ``obj``."""
    status = obj.get("status") or {}
    rollout = view.rollout_of(status)
    if rollout is None:
        return (
            f"Prompt {name} has had no rollout. With spec.rollout set, a change of its "
            "spec starts one (docs/rollouts.md).\n"
        )
    weight = rollout.weight
    lines = [
        f"Prompt {name}: rollout {rollout.phase}, step {rollout.position}"
        + (f", canary {weight}%" if weight is not None else ""),
        f"  stable     {rollout.stable_revision or '?'}"
        + (f"  (served to {100 - weight}%)" if weight is not None else ""),
        f"  candidate  {rollout.candidate_revision or '?'}"
        + (f"  (served to {weight}%)" if weight is not None else ""),
    ]
    if rollout.pause_until and rollout.phase == view.PAUSED:
        lines.append(f"  paused until {rollout.pause_until}")
    if rollout.message:
        lines.append(f"  {rollout.message}")
    steps = view.steps_of(obj.get("spec"))
    if steps:
        lines += ["steps:", *_step_lines(steps, rollout)]
    if rollout.analysis_runs:
        lines.append("analysis runs (measured against the threshold):")
        for run in rollout.analysis_runs:
            lines += _run_lines(run)
    if rollout.phase == view.ABORTED:
        message = view.spec_served_message(status) or view.ABORTED_DEFAULT
        lines.append(f"served differs from the spec: {message}")
        lines.append(
            f"  it clears with a new spec, or `prompt-operator rollout retry {name}` "
            "(from the first step)"
        )
    return "\n".join(lines) + "\n"


def action_value(command: str, full: bool) -> str:
    """The annotation's value for a subcommand (``promote --full``: promote-full)."""
    value = "promote-full" if command == "promote" and full else command
    assert value in objects.ROLLOUT_ACTIONS, value
    return value


def action_patch(action: str) -> dict[str, Any]:
    """A merge patch of metadata only: the spec, and so GitOps, is untouched."""
    return {"metadata": {"annotations": {objects.ROLLOUT_ACTION_ANNOTATION: action}}}


# -- the command -------------------------------------------------------------------------

EPILOG = (
    """\
example:
  prompt-operator rollout status support-agent -n team-a
  prompt-operator rollout promote support-agent --full   # skip the remaining steps
  kubectl prompt rollout abort support-agent -n team-a   # the same, as a kubectl plugin

An action writes the annotation prompts.dev/rollout-action=ACTION on the Prompt;
the operator acts on it once and removes it. An action that makes no sense in the
rollout's phase (promote when none runs, retry when none was aborted) is refused
here with the reason, exit code 1.

"""
    + CONNECTION
)


def parser() -> argparse.ArgumentParser:
    common = connection_flags()
    top = argparse.ArgumentParser(
        prog="prompt-operator rollout",
        description="A Prompt's progressive rollout (spec.rollout): show it, or promote, "
        "abort, pause, resume or retry it. Also `kubectl prompt rollout ...`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, help="what to show or ask for")
    show = sub.add_parser(
        "status",
        parents=[common],
        help="phase, step, weights, analysis runs with measured values",
        description="Print the rollout's phase, step, the stable and candidate revisions "
        "with the share each is served to, the steps, every analysis run with its "
        "measured values against the threshold, and what clears an aborted rollout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("name", help="the Prompt's name (metadata.name)")
    for command, does in ACTIONS.items():
        act = sub.add_parser(
            command,
            parents=[common],
            help=does,
            description=f"Ask the operator to {does} (writes the annotation "
            f"{objects.ROLLOUT_ACTION_ANNOTATION}={command}).",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        act.add_argument("name", help="the Prompt's name (metadata.name)")
        if command == "promote":
            act.add_argument(
                "--full",
                action="store_true",
                help="skip every remaining step: the candidate becomes stable now",
            )
    return top


def run(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        cluster = connect(args.namespace, args.context, args.kubeconfig)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        _command(cluster, args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    return 0


def _command(cluster: Cluster, args: argparse.Namespace) -> None:
    obj = cluster.prompt(args.name)
    if args.command == "status":
        sys.stdout.write(status_text(args.name, obj))
        return
    action = action_value(args.command, getattr(args, "full", False))
    problem = view.action_problem(view.rollout_of(obj.get("status")), action, args.name)
    if problem:
        raise CliError(problem)
    cluster.merge_patch_prompt(args.name, action_patch(action))
    print(
        f"prompt/{args.name}: {action} asked for ({objects.ROLLOUT_ACTION_ANNOTATION}="
        f"{action}); the operator acts on it once and removes the annotation. "
        f"`prompt-operator rollout status {args.name}` shows the result."
    )
