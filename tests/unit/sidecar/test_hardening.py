"""Pure rules that bound what a pod's answer or a forged signal may cost."""

from __future__ import annotations

import json

import pytest

from prompt_contract import signals
from prompt_sidecar.planning import plan_reads, stale_names


def test_an_answer_keeps_only_the_names_signalled() -> None:
    body = json.dumps({"pod": "x", "served": {"a": "r1", "b": None, "extra": "r9"}}).encode()
    assert signals.parse_signal_response(body, {"a": "r1", "b": "r2"}) == {"a": "r1", "b": None}


def test_an_answer_over_64_kib_is_refused_whole() -> None:
    served = {f"p{i}": "r" for i in range(10_000)}
    body = json.dumps({"pod": "x", "served": served}).encode()
    assert len(body) > signals.MAX_ANSWER_BYTES
    with pytest.raises(signals.SignalError, match="larger than 65536"):
        signals.parse_signal_response(body, {"p1": "r"})


@pytest.mark.parametrize(
    "revision",
    ["a" * (signals.MAX_REVISION_LENGTH + 1), "a" * 60_000, "../etc", "r\u00e9v", "r v"],
)
def test_an_answer_with_a_revision_no_sidecar_serves_is_refused_whole(revision: str) -> None:
    body = json.dumps({"pod": "x", "served": {"a": "r1", "b": revision}}).encode()
    with pytest.raises(signals.SignalError, match="not a revision") as refused:
        signals.parse_signal_response(body, {"a": "r1", "b": "r2"})
    assert revision not in str(refused.value)  # an answer is never logged


def test_a_revision_of_the_longest_length_is_accepted() -> None:
    longest = "a" * signals.MAX_REVISION_LENGTH
    body = json.dumps({"pod": "x", "served": {"a": longest, "b": ""}}).encode()
    assert signals.parse_signal_response(body, {"a": "r1", "b": "r2"}) == {"a": longest, "b": ""}


def test_dropping_a_prompt_never_served_is_free() -> None:
    served = {"mine": ("mine", "r1")}
    pairs = [("mine", ""), ("other", ""), ("other2", "r5"), ("mine", "r1")]
    assert stale_names(pairs, served) == ["mine", "other2"]


def test_names_never_served_cost_one_get_each_within_the_tokens() -> None:
    reads = plan_reads([f"n{i}" for i in range(10)], {"mine"}, False, tokens=4.5)
    assert (reads.full, reads.gets, reads.cost) == (False, ("n0", "n1", "n2", "n3"), 4)
    assert reads.later == tuple(f"n{i}" for i in range(4, 10))
    # Even with no token left, work moves one name at a time (its delay came first).
    assert plan_reads(["a", "b"], set(), False, tokens=-3).gets == ("a",)


def test_a_list_only_for_a_resync_or_many_names_already_served() -> None:
    served = {f"s{i}" for i in range(10)}
    assert plan_reads(["s1", "s2", "s3", "s4", "s5"], served, False, 40).full
    assert plan_reads(["x"], served, True, 40).full
    many_new = plan_reads([f"new{i}" for i in range(100)], served, False, 40)
    assert not many_new.full and len(many_new.gets) == 40


def test_a_backlog_of_new_names_brings_the_resync_forward_only_when_allowed() -> None:
    new = [f"new{i}" for i in range(100)]
    # A directory of Prompts applied at once: one list instead of 100 gets...
    assert plan_reads(new, set(), False, 40, early_resync_allowed=True).full
    # ...but not again within the interval (a forged flood's bound), and never
    # for a backlog the tokens cover.
    assert not plan_reads(new, set(), False, 40, early_resync_allowed=False).full
    assert not plan_reads(new[:40], set(), False, 40, early_resync_allowed=True).full


def test_a_big_batch_goes_as_signals_whose_answers_fit_the_bound() -> None:
    pairs = [("p" * 253 if i % 2 else f"n{i}", "r" * 16) for i in range(3000)]
    bodies = signals.signal_bodies((n, signals.encode_entry(n, r)) for n, r in pairs)
    assert [n for names, _ in bodies for n in names] == [n for n, _ in pairs]
    for names, body in bodies:
        assert len(names) <= signals.MAX_SIGNAL_PAIRS
        assert len(body) <= signals.BODY_BUDGET
        worst = dict.fromkeys(names, "r" * signals.MAX_REVISION_LENGTH)
        answer = signals.encode_signal_response("p" * 253, worst)
        assert len(answer) <= signals.MAX_ANSWER_BYTES
        assert [n for n, _ in signals.parse_signal(body)] == names


def test_a_signal_with_too_many_pairs_is_refused_before_parsing() -> None:
    body = signals.encode_signal((f"n{i}", "r") for i in range(signals.MAX_SIGNAL_PAIRS + 1))
    with pytest.raises(signals.SignalError, match="more than 2000"):
        signals.parse_signal(body)
    with pytest.raises(signals.SignalError, match="more than 2000"):
        signals.parse_signal(b"[" + b"1," * 50_000 + b"1]")
