"""`prompt-operator validate`: check Prompt manifests offline, for CI pipelines.

Every Prompt document is checked against the CRD's own schema (the file
installed with the operator), the rules the API server enforces with CEL, and
then the operator's template checks, so a manifest that passes here is
accepted by `kubectl apply` and becomes Ready. Output, one line per problem:

    file:line: Prompt namespace/name: message

Exit status: 0 when clean, 1 when any problem was found, 2 when input could
not be read or parsed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .validation import includes
from .validation.checks import Finding, check_document
from .validation.reading import Document, InputError, documents, files

# The names other modules and tests import from here.
__all__ = [
    "Document",
    "Finding",
    "InputError",
    "_documents",
    "check_document",
    "main",
    "validate",
]
_documents = documents


def validate(arguments: Sequence[str]) -> tuple[list[Finding], int]:
    """All findings for the given files, directories or ``-``, and how many Prompts."""
    findings: list[Finding] = []
    count = 0
    docs = [doc for source, text in files(arguments) for doc in documents(text, source)]
    prompts = includes.index(docs)  # includes resolve among all the manifests given
    for doc in docs:
        if isinstance(doc.data, dict) and doc.data.get("kind") == "Prompt":
            count += 1
        expanded, found = includes.resolve(doc, prompts)
        findings += found if any(not f.warning for f in found) else found + check_document(expanded)
    return findings, count


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prompt-operator validate",
        description="Check Prompt manifests offline: the CRD schema, the API server's rules "
        "and the operator's template checks. Exit 0 when clean, 1 on problems, 2 when "
        "input cannot be read.",
        epilog="example:\n"
        "  prompt-operator validate prompts/           # every YAML file below prompts/\n"
        "  kustomize build overlays/prod | prompt-operator validate -\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="YAML/JSON files, directories (searched recursively), or - for stdin",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print problems only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        findings, count = validate(args.paths)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    errors = [f for f in findings if not f.warning]
    if not args.quiet:
        print(f"{count} Prompt(s) checked, {len(errors)} problem(s)", file=sys.stderr)
    return 1 if errors else 0
