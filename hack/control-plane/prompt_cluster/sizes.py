"""The size rule for product code: modules under 450 lines, functions under 60.

A long module usually holds more than one concern and a long function more
than one step; both are where a newcomer gets lost. The rule covers the
product's packages (client/, contract/, sidecar/ and operator/: every package
directly under them), not tests, benchmarks or this harness.

How it counts: a module is its physical lines. A function (or method) runs from
its ``def`` line to its last line, docstring, comments and blank lines
included; its decorators are not counted. A nested function counts inside the
one that holds it (a reader reads it there) and is also measured on its own,
named ``outer.inner``; methods are ``Class.method``.

Something that must stay whole says why, and is then not reported:

* a function: a comment ``# size: <reason>`` on the line directly above its
  ``def`` or above its first decorator, or at the end of its ``def`` line;
* a module: ``# size: <reason>`` in its first 20 lines.

Offenders known when the rule came in are listed in ``size_debt.txt`` (path and
name per line) and pass; any other offender fails, and so does a listed one
that no longer offends, so the list only shrinks (``--prune`` drops those).

    python -m prompt_cluster.sizes            # check; exit 1 on a new or stale entry
    python -m prompt_cluster.sizes --prune    # also rewrite size_debt.txt without stale entries
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEBT = Path(__file__).resolve().parent / "size_debt.txt"
PRODUCT_ROOTS = ("client", "contract", "sidecar", "operator")
MODULE_LIMIT = 450
FUNCTION_LIMIT = 60
MODULE_HEAD = 20  # a module's exemption must be in its first lines, where a reader starts
MODULE = "<module>"  # the name a module's own entry carries in size_debt.txt
EXEMPTION = re.compile(r"#\s*size:\s*(\S.*)?$")

HINT = (
    "Split it along its concerns (one module per concern, one step per function), or, "
    "if it must stay whole, say why in a `# size: <reason>` comment directly above the "
    f"def (for a module: in its first {MODULE_HEAD} lines). See docs/contributing.md, Layers."
)


@dataclass(frozen=True)
class Offence:
    path: str  # relative to the repository, with forward slashes
    line: int
    name: str  # MODULE, or the function's dotted name
    size: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.name)

    def __str__(self) -> str:
        if self.name == MODULE:
            return f"{self.path}:{self.line}: module is {self.size} lines (limit {MODULE_LIMIT})"
        return (
            f"{self.path}:{self.line}: function {self.name} is {self.size} lines "
            f"(limit {FUNCTION_LIMIT})"
        )


def _exempt(line: str) -> bool:
    """A ``# size:`` comment that gives a reason (an empty one exempts nothing)."""
    found = EXEMPTION.search(line)
    return found is not None and bool(found.group(1))


def _functions(
    nodes: Iterable[ast.stmt], prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, nested ones too, with its dotted name."""
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")
        else:  # a def under if/try/with/for still belongs to this scope
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from _functions(children, prefix)


def measure(path: str, text: str) -> list[Offence]:
    """What in one module's source breaks the size rule and says no reason why."""
    lines = text.splitlines()
    found = []
    if len(lines) > MODULE_LIMIT and not any(_exempt(line) for line in lines[:MODULE_HEAD]):
        found.append(Offence(path, 1, MODULE, len(lines)))
    for name, node in _functions(ast.parse(text, filename=path).body):
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        marks = {first - 1, node.lineno - 1, node.lineno}  # 1-based: above either, the def
        if size > FUNCTION_LIMIT and not any(_exempt(lines[n - 1]) for n in marks if n >= 1):
            found.append(Offence(path, node.lineno, name, size))
    return found


def product_files(root: Path) -> list[Path]:
    """Every module of every package directly under the product's folders."""
    files: list[Path] = []
    for top in PRODUCT_ROOTS:
        for package in sorted((root / top).glob("*/__init__.py")):
            files += sorted(package.parent.rglob("*.py"))
    return files


def read_debt(path: Path) -> set[tuple[str, str]]:
    """(path, name) per entry; ``#`` starts a comment, blank lines are skipped."""
    if not path.exists():
        return set()
    entries = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].split()
        if entry:
            entries.add((entry[0], entry[1] if len(entry) > 1 else MODULE))
    return entries


@dataclass(frozen=True)
class Verdict:
    new: list[Offence]  # not in the debt file: fail
    known: list[Offence]  # in the debt file: pass, for now
    stale: list[tuple[str, str]]  # in the debt file but no longer offending: fail

    @property
    def ok(self) -> bool:
        return not self.new and not self.stale


def judge(offences: Sequence[Offence], debt: set[tuple[str, str]]) -> Verdict:
    offending = {offence.key for offence in offences}
    return Verdict(
        new=[offence for offence in offences if offence.key not in debt],
        known=[offence for offence in offences if offence.key in debt],
        stale=sorted(debt - offending),
    )


def check(root: Path, debt_file: Path) -> Verdict:
    offences = []
    for file in product_files(root):
        offences += measure(file.relative_to(root).as_posix(), file.read_text(encoding="utf-8"))
    return judge(offences, read_debt(debt_file))


def prune(debt_file: Path, stale: Iterable[tuple[str, str]]) -> None:
    """Drop the stale entries' lines from the debt file; comments stay as they are."""
    gone = set(stale)
    kept = [
        line
        for line in debt_file.read_text(encoding="utf-8").splitlines()
        if not (entry := line.split("#", 1)[0].split())
        or (entry[0], entry[1] if len(entry) > 1 else MODULE) not in gone
    ]
    debt_file.write_text("\n".join(kept) + "\n", encoding="utf-8")


def report(verdict: Verdict, debt_file: Path) -> str:
    out = [str(offence) for offence in verdict.new]
    if verdict.new:
        out.append(f"  {HINT}")
    out += [
        f"{debt_file.name}: `{path} {name}` no longer offends; remove it "
        "(python -m prompt_cluster.sizes --prune)"
        for path, name in verdict.stale
    ]
    out.append(
        f"sizes: {len(verdict.new)} new, {len(verdict.stale)} stale, "
        f"{len(verdict.known)} known in {debt_file.name}"
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prompt_cluster.sizes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root", type=Path, default=REPO, help="the repository (default: this one)"
    )
    parser.add_argument("--debt", type=Path, default=DEBT, help="the debt file")
    parser.add_argument("--prune", action="store_true", help="remove stale debt entries")
    args = parser.parse_args(argv)
    verdict = check(args.root, args.debt)
    if args.prune and verdict.stale:
        prune(args.debt, verdict.stale)
        verdict = Verdict(verdict.new, verdict.known, [])
    print(report(verdict, args.debt))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
