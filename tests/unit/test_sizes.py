"""The size rule's checker (prompt_cluster.sizes) on small files made here."""

from __future__ import annotations

from pathlib import Path

from prompt_cluster.sizes import MODULE, Offence, check, judge, main, measure, prune, read_debt


def function(name: str, lines: int, indent: str = "", def_comment: str = "") -> list[str]:
    """A function of exactly ``lines`` lines, counted from its def line."""
    head = f"{indent}def {name}() -> None:{def_comment}"
    return [head] + [f"{indent}    x{i} = {i}" for i in range(lines - 1)]


def source(*parts: list[str] | str) -> str:
    lines: list[str] = []
    for part in parts:
        lines += [part] if isinstance(part, str) else part
    return "\n".join(lines) + "\n"


def names(text: str) -> list[tuple[str, int]]:
    return [(offence.name, offence.size) for offence in measure("m.py", text)]


def test_a_function_of_60_lines_passes_and_one_of_61_is_reported_with_its_line() -> None:
    text = source("import os", function("short", 60), function("long", 61))
    assert measure("pkg/m.py", text) == [Offence("pkg/m.py", 62, "long", 61)]
    assert str(measure("pkg/m.py", text)[0]) == (
        "pkg/m.py:62: function long is 61 lines (limit 60)"
    )


def test_a_reason_directly_above_or_on_the_def_line_exempts_a_function() -> None:
    above = source("# size: one table, read top to bottom", function("f", 80))
    on_def = source(function("f", 80, def_comment="  # size: a generated dispatch"))
    assert names(above) == [] and names(on_def) == []


def test_a_reason_not_directly_above_or_an_empty_one_exempts_nothing() -> None:
    gap = source("# size: too far away", "", function("f", 80))
    empty = source("# size:", function("f", 80))
    assert names(gap) == [("f", 80)] and names(empty) == [("f", 80)]


def test_decorators_are_not_counted_and_the_reason_may_sit_above_them() -> None:
    decorators = ["@staticmethod", "@some.decorator(", "    'with arguments',", ")"]
    just_under = source(decorators, function("f", 60))
    assert names(just_under) == []
    exempt = source("# size: kept whole on purpose", decorators, function("f", 70))
    between = source(decorators, "# size: between them and the def", function("f", 70))
    assert names(exempt) == [] and names(between) == []


def test_nested_functions_count_in_their_outer_one_and_on_their_own() -> None:
    outer = ["def outer() -> None:", *function("inner", 65, indent="    "), "    inner()"]
    assert names(source(outer)) == [("outer", 67), ("outer.inner", 65)]
    exempt_inner = [
        "def outer() -> None:",
        "    # size: the inner one is a generated table",
        *function("inner", 65, indent="    "),
    ]
    assert names(source(exempt_inner)) == [("outer", 67)]


def test_methods_async_functions_and_defs_under_if_are_named_and_measured() -> None:
    text = source(
        "class Syncer:",
        function("cycle", 61, indent="    "),
        "if True:",
        [line.replace("def ", "async def ", 1) for line in function("later", 62, indent="    ")],
    )
    assert names(text) == [("Syncer.cycle", 61), ("later", 62)]


def test_a_module_over_450_lines_needs_its_reason_in_its_first_20_lines() -> None:
    body = [f"x{i} = {i}" for i in range(451)]
    assert names(source(body)) == [(MODULE, 451)]
    assert names(source(body[:450])) == []
    head = source('"""Doc."""', "# size: the whole grammar in one place", body)
    assert names(head) == []
    late = source(body[:20], "# size: line 21 is too late", body[20:])
    assert names(late) == [(MODULE, 452)]
    assert str(measure("a.py", source(body))[0]) == "a.py:1: module is 451 lines (limit 450)"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_only_product_packages_are_checked_and_the_debt_file_lets_known_ones_pass(
    tmp_path: Path,
) -> None:
    long = source(function("handle", 70))
    write(tmp_path, "operator/prompt_operator/__init__.py", "")
    write(tmp_path, "operator/prompt_operator/handlers.py", long)
    write(tmp_path, "sidecar/prompt_sidecar/__init__.py", "")
    write(tmp_path, "sidecar/prompt_sidecar/sub/sync.py", long)
    write(tmp_path, "client/scripts/latency.py", long)  # not a package
    write(tmp_path, "tests/unit/test_x.py", long)
    write(tmp_path, "hack/tool.py", long)
    debt = tmp_path / "debt.txt"
    debt.write_text("# known\noperator/prompt_operator/handlers.py handle\n")
    verdict = check(tmp_path, debt)
    assert [o.key for o in verdict.known] == [("operator/prompt_operator/handlers.py", "handle")]
    assert [o.key for o in verdict.new] == [("sidecar/prompt_sidecar/sub/sync.py", "handle")]
    assert not verdict.ok


def test_a_debt_entry_that_no_longer_offends_fails_until_pruned(tmp_path: Path) -> None:
    write(tmp_path, "operator/prompt_operator/__init__.py", "")
    write(tmp_path, "operator/prompt_operator/small.py", source(function("f", 10)))
    debt = tmp_path / "debt.txt"
    debt.write_text(
        "# header stays\noperator/prompt_operator/small.py f\noperator/prompt_operator/gone.py\n"
    )
    verdict = check(tmp_path, debt)
    assert verdict.stale == [
        ("operator/prompt_operator/gone.py", MODULE),
        ("operator/prompt_operator/small.py", "f"),
    ]
    assert not verdict.ok
    prune(debt, verdict.stale)
    assert debt.read_text() == "# header stays\n"
    assert read_debt(debt) == set() and check(tmp_path, debt).ok


def test_main_prints_each_offender_with_a_hint_and_exits_1(tmp_path: Path, capsys: object) -> None:
    write(tmp_path, "contract/prompt_contract/__init__.py", source(function("wire", 61)))
    debt = tmp_path / "debt.txt"
    debt.write_text("")
    assert main(["--root", str(tmp_path), "--debt", str(debt)]) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "contract/prompt_contract/__init__.py:1: function wire is 61 lines (limit 60)" in out
    assert "# size: <reason>" in out
    debt.write_text("contract/prompt_contract/__init__.py wire\n")
    assert main(["--root", str(tmp_path), "--debt", str(debt)]) == 0


def test_judge_keeps_new_known_and_stale_apart() -> None:
    a, b = Offence("a.py", 3, "f", 61), Offence("b.py", 1, MODULE, 500)
    verdict = judge([a, b], {("a.py", "f"), ("c.py", "g")})
    assert (verdict.new, verdict.known, verdict.stale) == ([b], [a], [("c.py", "g")])
