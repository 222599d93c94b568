"""The pure expansion of spec.includes: texts, nesting, and every refusal."""

from __future__ import annotations

import asyncio
from typing import Any

from prompt_operator.includes import Expansion, expand, included_names
from prompt_operator.model import Prompt, PromptRef, parse_prompt
from prompt_operator.policies import Problem, evaluate
from prompt_operator.render import render


def prompt(name: str, template: str = "", **spec: Any) -> Prompt:
    body = {
        "metadata": {"name": name, "namespace": "ns", "uid": name, "generation": 1},
        "spec": {"template": template, **spec},
    }
    return parse_prompt(body)


def includes(**names: str) -> list[dict[str, str]]:
    return [{"name": k, "prompt": v} for k, v in names.items()]


def expanded(result: Expansion | Problem) -> Prompt:
    assert isinstance(result, Expansion), result
    return result.prompt


def refused(result: Expansion | Problem) -> Problem:
    assert isinstance(result, Problem), result
    return result


def test_placeholder_is_replaced_by_the_snippet_text_and_other_placeholders_stay() -> None:
    a = prompt(
        "a",
        "{safety}\nHello {user} {{literal}}",
        includes=includes(safety="pre"),
        variables=[{"name": "user"}],
    )
    result = expand(a, {"pre": prompt("pre", "Be safe.")})
    assert expanded(result).template == "Be safe.\nHello {user} {{literal}}"
    assert isinstance(result, Expansion) and result.resolved[0].reaches == ("pre",)


def test_snippet_placeholders_become_the_includers_and_are_checked() -> None:
    a = prompt("a", "{safety}", includes=includes(safety="pre"))
    out = expanded(expand(a, {"pre": prompt("pre", "Hi {user}", variables=[{"name": "user"}])}))
    verdict = evaluate(out, render(out))
    assert verdict.problem is not None and verdict.problem.reason == "UndeclaredVariable"


def test_raw_snippet_is_inserted_literally() -> None:
    a = prompt("a", "{s}", includes=includes(s="raw"))
    out = expanded(expand(a, {"raw": prompt("raw", "json {x}", format="raw")}))
    assert out.template == "json {{x}}"
    assert evaluate(out, render(out)).ok


def test_raw_includer_is_refused() -> None:
    a = prompt("a", "{s}", includes=includes(s="b"), format="raw")
    assert refused(expand(a, {"b": prompt("b", "x")})).reason == "InvalidInclude"


def test_includes_nest_and_reach_every_prompt() -> None:
    a = prompt("a", "A[{b}]", includes=includes(b="b"))
    b = prompt("b", "B[{c}]", includes=includes(c="c"))
    result = expand(a, {"b": b, "c": prompt("c", "C")})
    assert expanded(result).template == "A[B[C]]"
    assert isinstance(result, Expansion) and result.resolved[0].reaches == ("b", "c")


def test_variants_messages_and_schedule_are_expanded() -> None:
    a = prompt(
        "a",
        includes=includes(s="s"),
        variants=[{"name": "x", "weight": 1, "template": "x {s}"}],
        schedule=[{"at": "2030-01-01T00:00:00Z", "template": "later {s}"}],
    )
    out = expanded(expand(a, {"s": prompt("s", "S")}))
    assert out.variants[0].template == "x S"
    assert out.schedule[0].template == "later S"
    chat = prompt("c", messages=[{"role": "system", "content": "{s}!"}], includes=includes(s="s"))
    out = expanded(expand(chat, {"s": prompt("s", "S")}))
    assert out.messages is not None and out.messages[0].content == "S!"


def test_cycle_names_the_chain() -> None:
    a = prompt("a", "{b}", includes=includes(b="b"))
    b = prompt("b", "{a}", includes=includes(a="a"))
    problem = refused(expand(a, {"a": a, "b": b}))
    assert problem.reason == "IncludeCycle"
    assert "a -> b -> a" in problem.message
    assert refused(expand(a, {"a": a, "b": b})).reason == "IncludeCycle"
    itself = prompt("a", "{a1}", includes=includes(a1="a"))
    assert "a -> a" in refused(expand(itself, {"a": itself})).message


def test_missing_include_names_the_prompt_and_field() -> None:
    a = prompt("a", "{s}", includes=includes(s="gone"))
    problem = refused(expand(a, {"gone": None}))
    assert problem.reason == "IncludeMissing"
    assert "spec.includes[0] (s)" in problem.message and "ns/gone" in problem.message


def test_cross_namespace_name_clash_and_duplicates_are_refused() -> None:
    other = prompt("a", "{s}", includes=includes(s="other/pre"))
    assert "own namespace" in refused(expand(other, {})).message
    clash = prompt("a", "{s}", includes=includes(s="pre"), variables=[{"name": "s"}])
    assert refused(expand(clash, {"pre": prompt("pre", "x")})).reason == "InvalidInclude"
    twice = prompt(
        "a", "{s}", includes=[{"name": "s", "prompt": "p"}, {"name": "s", "prompt": "q"}]
    )
    assert "two includes" in refused(expand(twice, {"p": prompt("p"), "q": prompt("q")})).message


def test_snippet_must_be_plain_text() -> None:
    a = prompt("a", "{s}", includes=includes(s="v"))
    v = prompt("v", variants=[{"name": "x", "weight": 1, "template": "x"}])
    assert "plain spec.template" in refused(expand(a, {"v": v})).message


def test_depth_over_eight_is_refused() -> None:
    chain = {
        f"p{i}": prompt(f"p{i}", f"{{n}}{i}", includes=includes(n=f"p{i + 1}")) for i in range(12)
    }
    chain["p12"] = prompt("p12", "end")
    problem = refused(expand(chain["p0"], chain))
    assert problem.reason == "InvalidInclude" and "deeper than 8" in problem.message


def test_expansion_stops_at_the_limit_naming_the_include() -> None:
    ten = "".join("{x}" for _ in range(10))
    snippets = {
        "b": prompt("b", ten, includes=includes(x="c")),
        "c": prompt("c", ten, includes=includes(x="d")),
        "d": prompt("d", ten, includes=includes(x="e")),
        "e": prompt("e", "y" * 1000),
    }
    a = prompt("a", ten, includes=includes(x="b"))
    problem = refused(expand(a, snippets, limit=50_000))
    assert problem.reason == "IncludeTooLarge"
    assert "include x -> " in problem.message


def test_unused_include_is_a_warning_only() -> None:
    a = prompt("a", "no placeholder", includes=includes(s="s"))
    result = expand(a, {"s": prompt("s", "S")})
    assert isinstance(result, Expansion)
    assert [w.reason for w in result.warnings] == ["UnusedInclude"]


def test_new_snippet_text_gives_a_new_revision() -> None:
    a = prompt("a", "{s}", includes=includes(s="s"))
    one = render(expanded(expand(a, {"s": prompt("s", "one")})))
    two = render(expanded(expand(a, {"s": prompt("s", "two")})))
    assert one.revision != two.revision and two.text == "two"


def test_prompt_without_includes_is_unchanged() -> None:
    a = prompt("a", "plain {x}", variables=[{"name": "x"}])
    assert expanded(expand(a, {})) is a


def test_included_names_reads_the_raw_spec() -> None:
    spec = {"includes": [{"name": "a", "prompt": "z"}, {"name": "b", "prompt": "ns/y"}, 3]}
    assert included_names(spec) == ("z",)
    assert included_names(None) == ()


def test_an_edit_of_an_included_prompt_queues_every_includer_transitively_once() -> None:
    from .test_prompt_intake import controller

    def obj(name: str, generation: int, **spec: Any) -> dict[str, Any]:
        meta = {"name": name, "namespace": "ns", "uid": name, "generation": generation}
        return {"metadata": meta, "spec": {"template": "x", **spec}}

    async def drain(prompts: Any) -> set[PromptRef]:
        got = set()
        while len(prompts.queue):
            ref = await prompts.queue.get()
            prompts.queue.done(ref)
            got.add(ref)
        return got

    async def scenario() -> None:
        prompts, _ = controller()
        prompts.submit(obj("a", 1, includes=includes(s="b")))
        prompts.submit(obj("b", 1, includes=includes(s="c")))
        prompts.submit(obj("c", 1))
        prompts.submit(obj("lone", 1))
        assert PromptRef("ns", "a") in await drain(prompts)  # an includer is never settled
        prompts.submit(obj("c", 1))  # a status write: same generation, nothing new
        assert await drain(prompts) == {PromptRef("ns", "c")}
        prompts.submit(obj("c", 2))
        assert await drain(prompts) >= {PromptRef("ns", "a"), PromptRef("ns", "b")}
        prompts.submit_deleted(obj("c", 2))
        assert await drain(prompts) == {PromptRef("ns", n) for n in ("a", "b", "c")}

    asyncio.run(scenario())


def test_deleting_a_snippet_seen_before_its_includer_queues_the_includer() -> None:
    from .test_prompt_intake import controller

    def obj(name: str, **spec: Any) -> dict[str, Any]:
        meta = {"name": name, "namespace": "ns", "uid": name, "generation": 1}
        return {"metadata": meta, "spec": {"template": "x", **spec}}

    async def scenario() -> None:
        prompts, _ = controller()
        prompts.submit(obj("snippet"))  # nobody includes it yet
        prompts.submit(obj("includer", includes=includes(s="snippet")))
        while len(prompts.queue):
            prompts.queue.done(await prompts.queue.get())
        prompts.submit_deleted(obj("snippet"))
        queued = set()
        while len(prompts.queue):
            ref = await prompts.queue.get()
            prompts.queue.done(ref)
            queued.add(ref)
        assert PromptRef("ns", "includer") in queued

    asyncio.run(scenario())
