"""`prompt-operator files`: the prompt directory a sidecar would write, from manifests.

So an app runs on a laptop (or in CI) against the same files and metadata it
gets in a pod: every Prompt is checked as `prompt-operator validate` checks it,
rendered as the operator renders it into its ConfigMap, and turned into a file
and its metadata by the same contract functions the sidecar uses
(``payload.file_content``, ``PromptMeta.to_json``). Only ``updated_at`` differs.

Writes follow the file contract: metadata first, then the text, each renamed
into place from ``.prompts/staging``, so an app watching the directory while
the command runs again never reads half a file. A file whose text and
metadata are already current is not touched; a prompt this command (or a
sidecar) wrote earlier whose Prompt is gone from the manifests is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_contract import objects, payload
from prompt_contract.files import (
    DEFAULT_EXT,
    META_DIR,
    META_SUFFIX,
    STAGING_DIR,
    PromptMeta,
    read_meta,
    read_regular,
    text_path,
)
from prompt_contract.selector import SelectorError, parse_selector
from prompt_contract.timing import now_rfc3339

from .configmap import build_configmap
from .model import parse_prompt
from .render import render
from .validation.checks import Finding, check_document
from .validation.reading import InputError, documents, files

FILE_MODE = 0o644  # the sidecar's: an app running as another user can read them
DIR_MODE = 0o755

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
    for source, text in files(arguments):
        for doc in documents(text, source):
            found = check_document(doc)
            findings += found
            data = doc.data
            if not isinstance(data, dict) or data.get("kind") != "Prompt":
                continue
            if any(not f.warning for f in found) or data.get("apiVersion") != objects.API_VERSION:
                continue
            meta = dict(data.get("metadata") or {})
            if (meta.get("namespace") or namespace) != namespace:
                continue
            body = {**data, "metadata": {**meta, "namespace": namespace}}
            prompt = parse_prompt(body)
            configmap = build_configmap(prompt, render(prompt), 1)
            if not chosen.matches(configmap["metadata"]["labels"]):
                continue
            content = payload.file_content(
                configmap, pod, payload.configmap_metadata(configmap) or {}
            )
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


def _stage(directory: str, data: bytes) -> str:
    """A new file in the staging directory holding ``data``; returns its path."""
    staging = os.path.join(directory, STAGING_DIR)
    os.makedirs(staging, mode=DIR_MODE, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=staging, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(path, FILE_MODE)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _current(directory: str, meta: PromptMeta, data: bytes, ext: str) -> bool:
    """Whether the directory already holds ``data`` and ``meta`` (``updated_at`` aside)."""
    old = read_meta(directory, meta.key)
    if old is None or old != dataclasses.replace(meta, updated_at=old.updated_at):
        return False
    found = read_regular(text_path(directory, meta.key, ext))
    return found is not None and found[0] == data


def write_prompt(directory: str, meta: PromptMeta, data: bytes, ext: str = DEFAULT_EXT) -> bool:
    """Put ``meta`` and then ``data`` in place, each by rename; False when both were current."""
    if _current(directory, meta, data, ext):
        return False
    os.makedirs(os.path.join(directory, META_DIR), mode=DIR_MODE, exist_ok=True)
    meta_file = os.path.join(directory, META_DIR, meta.key + META_SUFFIX)
    os.replace(_stage(directory, meta.to_json()), meta_file)
    os.replace(_stage(directory, data), text_path(directory, meta.key, ext))
    return True


def remove_others(directory: str, keep: set[str], ext: str = DEFAULT_EXT) -> list[str]:
    """Remove the prompts recorded in the metadata whose key is not in ``keep``:
    the text first, then its metadata, as the sidecar does. Returns their keys."""
    meta_dir = os.path.join(directory, META_DIR)
    try:
        names = sorted(os.listdir(meta_dir))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        key = name[: -len(META_SUFFIX)]
        if not name.endswith(META_SUFFIX) or key in keep or read_meta(directory, key) is None:
            continue
        for path in (text_path(directory, key, ext), os.path.join(meta_dir, name)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        removed.append(key)
    return removed


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
    if not args.ext.startswith(".") or "/" in args.ext or "\x00" in args.ext:
        p.error(f"--ext {args.ext!r}: give an extension that starts with '.', such as .txt")
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
    updated_at = now_rfc3339()
    written = [
        item.content.key
        for item in planned
        if write_prompt(
            directory, item.content.meta(args.namespace, updated_at), item.content.text, args.ext
        )
    ]
    removed = remove_others(directory, {item.content.key for item in planned}, args.ext)
    print(
        f"{len(planned)} prompt(s) in {directory}: {len(written)} written, "
        f"{len(planned) - len(written)} unchanged, {len(removed)} removed",
        file=sys.stderr,
    )
    return 0
