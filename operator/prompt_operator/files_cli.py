"""`prompt-operator files`: the prompt directory a sidecar would write, from manifests.

So an app runs on a laptop (or in CI) against the same files and metadata it
gets in a pod: every Prompt is checked as `prompt-operator validate` checks it,
rendered as the operator renders it into its ConfigMap, and turned into a file
and its metadata by the same contract functions the sidecar uses
(``payload.file_content``, ``PromptMeta.to_json``). Only ``updated_at`` differs.

Writes go through the sidecar's own writer (``prompt_contract.writer``):
metadata first, then the text, each renamed into place from
``.prompts/staging``, never through a symlink, so an app watching the
directory while the command runs again never reads half a file. A file whose text and
metadata are already current is not touched; a prompt this command (or a
sidecar) wrote earlier whose Prompt is gone from the manifests is removed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_contract import objects, payload
from prompt_contract.files import DEFAULT_EXT
from prompt_contract.selector import SelectorError, parse_selector
from prompt_contract.timing import now_rfc3339
from prompt_contract.writer import FileWriteError, PromptFiles, ext_problem

from .configmap import build_configmap
from .model import parse_prompt
from .render import render
from .validation import includes
from .validation.checks import Finding, check_document
from .validation.reading import InputError, documents, files

_EXAMPLE = """\
example:
  prompt-operator files examples/ --out ./prompts
  PROMPT_DIR=./prompts python my_app.py
"""


class FilesError(Exception):
    """Manifests that cannot become a prompt directory; the message says why."""


@dataclass(frozen=True)
class Planned:
    source: str  # file the Prompt came from, for messages
    content: payload.FileContent


def plan(
    arguments: Sequence[str], namespace: str, pod: str, selector: str = ""
) -> tuple[list[Planned], list[Finding]]:
    """The files the sidecar of pod ``pod`` in ``namespace`` would write for the
    Prompts in ``arguments`` (files, directories, ``-``), and the findings.

    Prompts of other namespaces, and those ``selector`` (a pod's
    ``prompts.dev/selector``) does not select, are left out as the sidecar
    leaves them out. Raises ``InputError`` for unreadable input and
    ``FilesError`` for a selector that does not parse or two Prompts with one key.
    """
    try:
        chosen = parse_selector(selector)
    except SelectorError as exc:
        raise FilesError(f"--selector {selector!r}: {exc}") from None
    planned: dict[str, Planned] = {}
    findings: list[Finding] = []
    docs = [doc for source, text in files(arguments) for doc in documents(text, source)]
    prompts = includes.index(docs)  # includes resolve among the manifests given
    for doc in docs:
        expanded, found = includes.resolve(doc, prompts)
        if not any(not f.warning for f in found):
            found += check_document(expanded)
        findings += found
        data, source = expanded.data, doc.source
        if not isinstance(data, dict) or data.get("kind") != "Prompt":
            continue
        if any(not f.warning for f in found) or data.get("apiVersion") != objects.API_VERSION:
            continue
        meta = dict(data.get("metadata") or {})
        if (meta.get("namespace") or namespace) != namespace:
            continue
        prompt = parse_prompt({**data, "metadata": {**meta, "namespace": namespace}})
        configmap = build_configmap(prompt, render(prompt), 1)
        if not chosen.matches(configmap["metadata"]["labels"]):
            continue
        content = payload.file_content(configmap, pod, payload.configmap_metadata(configmap) or {})
        if isinstance(content, str):  # validation refuses what would get here
            raise FilesError(f"{source}: Prompt {prompt.ref}: {content}")
        held = planned.get(content.key)
        if held is not None:
            raise FilesError(
                f"Prompts {held.content.prompt} ({held.source}) and {content.prompt} "
                f"({source}) both use key {content.key!r}; in a cluster the older one "
                "would be served: give one of them another spec.key"
            )
        planned[content.key] = Planned(source, content)
    return [planned[key] for key in sorted(planned)], findings


def write_directory(
    directory: str, planned: Sequence[Planned], namespace: str, ext: str = DEFAULT_EXT
) -> tuple[list[str], list[str]]:
    """Write ``planned`` into ``directory`` through the contract's writer, the
    sidecar's own; remove the prompts recorded there that are not planned.

    Returns the keys written (those already current are not) and removed.
    Raises ``FileWriteError`` (the previous file intact) when a write fails.
    """
    files = PromptFiles(directory, ext)
    updated_at = now_rfc3339()
    written = [
        item.content.key
        for item in planned
        if files.write(item.content.meta(namespace, updated_at), item.content.text)
    ]
    keep = {item.content.key for item in planned}
    # all_meta() also clears what an interrupted run left in staging.
    removed = [key for key in sorted(files.all_meta()) if key not in keep and files.remove(key)]
    return written, removed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prompt-operator files",
        description="Write the prompt files and metadata a sidecar would write for the Prompts "
        "in the given manifests, so an app (prompt_client, or any reader of the file "
        "contract) runs on a laptop against a directory. The manifests are checked as "
        "`prompt-operator validate` checks them; nothing is written when one has a "
        "problem. Exit 0 when written, 1 on problems, 2 when input cannot be read.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="YAML/JSON files, directories (searched recursively), or - for stdin; "
        "documents that are not Prompts are skipped",
    )
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="DIR",
        help="the prompt directory to write (created if missing); point PROMPT_DIR at it",
    )
    p.add_argument(
        "--namespace",
        "-n",
        default="default",
        help="the app's namespace: Prompts without one count as in it, Prompts of other "
        "namespaces are left out, as a pod sees only its own (default: default)",
    )
    p.add_argument(
        "--selector",
        "-l",
        default="",
        help="the pod's prompts.dev/selector annotation, e.g. team=support (default: every Prompt)",
    )
    p.add_argument(
        "--pod",
        default=socket.gethostname(),
        help="the pod name that chooses the A/B variant, as a pod's name does in a cluster "
        "(default: this host's name, which is the pod's name inside a pod)",
    )
    p.add_argument(
        "--ext",
        default=DEFAULT_EXT,
        help=f"extension of the prompt files, as the sidecar's --ext (default: {DEFAULT_EXT})",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    problem = ext_problem(args.ext)
    if problem:
        p.error(f"--ext {args.ext!r}: {problem}")
    try:
        planned, findings = plan(args.paths, args.namespace, args.pod, args.selector)
    except (InputError, FilesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding, file=sys.stderr)
    if any(not f.warning for f in findings):
        print("error: nothing written; fix the problems above", file=sys.stderr)
        return 1
    directory = os.path.abspath(args.out)
    try:
        written, removed = write_directory(directory, planned, args.namespace, args.ext)
    except FileWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(planned)} prompt(s) in {directory}: {len(written)} written, "
        f"{len(planned) - len(written)} unchanged, {len(removed)} removed",
        file=sys.stderr,
    )
    return 0
