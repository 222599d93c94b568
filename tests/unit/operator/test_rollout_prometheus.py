"""The Prometheus analysis provider's pure parts (queries, answers) and its
failures against real local sockets: every way of not getting one number is
``None`` or ``PrometheusUnavailable``, never a number to pass on."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prompt_operator.rollouts.prometheus import (
    PrometheusUnavailable,
    expand_placeholders,
    outcome_share_queries,
    promql_string,
    query_scalar,
    query_url,
    revisions_regex,
    scalar_from_answer,
)

URL = "http://prometheus:9090"


def test_the_default_queries_are_the_documented_share_and_its_denominator() -> None:
    share, samples = outcome_share_queries(
        "greeter", ["aaaa1111", "bbbb2222"], "canary", ["resolved", "thanked"], 30
    )
    uses = 'prompt="greeter",revision=~"aaaa1111|bbbb2222",variant="canary"'
    assert samples == f"sum(increase(prompt_usage_total{{{uses}}}[30s]))"
    assert share == (
        f'(sum(increase(prompt_usage_total{{{uses},outcome=~"resolved|thanked"}}[30s]))'
        f" or vector(0)) / {samples}"
    )


def test_label_values_are_escaped_for_the_string_and_for_the_regex() -> None:
    share, samples = outcome_share_queries('say "hi"\\\n', ["a.b"], "c\u00e9", ["ok (1)|2"], 5)
    assert 'prompt="say \\"hi\\"\\\\\\n"' in samples
    assert 'revision=~"a\\\\.b"' in samples  # RE2 a\.b, its backslash doubled in the string
    assert 'variant="c\u00e9"' in samples
    assert 'outcome=~"ok \\\\(1\\\\)\\\\|2"' in share


def test_regex_escaping_makes_every_re2_special_literal() -> None:
    assert revisions_regex(["a|b", "c.d", "x"]) == "a\\|b|c\\.d|x"
    assert revisions_regex([r"\.+*?()|[]{}^$"]) == "".join("\\" + c for c in r"\.+*?()|[]{}^$")
    assert promql_string("a\tb") == '"a\\tb"'


@pytest.mark.parametrize(
    ("revisions", "outcomes", "window", "says"),
    [
        ([], ["ok"], 30, "no revisions"),
        (["a"], [], 30, "no good outcomes"),
        (["a"], ["ok"], 0, "at least 1s"),
    ],
)
def test_queries_that_could_only_mislead_are_refused(
    revisions: list[str], outcomes: list[str], window: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        outcome_share_queries("p", revisions, "canary", outcomes, window)


def test_a_users_query_gets_the_rollouts_revisions_and_variant() -> None:
    query = 'sum(rate(x{revision=~"$REVISIONS",variant="$VARIANT"}[1m]))'
    assert (
        expand_placeholders(query, ["ab12", "cd.3"], "canary")
        == 'sum(rate(x{revision=~"ab12|cd\\\\.3",variant="canary"}[1m]))'
    )


def test_the_query_endpoint_keeps_a_path_prefix() -> None:
    assert query_url("http://p:9090/") == "http://p:9090/api/v1/query"
    assert query_url("http://p/prom") == "http://p/prom/api/v1/query"


def _answer(result_type: str, result: object, status: str = "success") -> bytes:
    return json.dumps(
        {"status": status, "data": {"resultType": result_type, "result": result}}
    ).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_answer("vector", [{"metric": {}, "value": [1.5, "0.875"]}]), 0.875),
        (_answer("scalar", [1.5, "3"]), 3.0),
        (_answer("vector", []), None),  # no series: no data
        (_answer("vector", [{"metric": {}, "value": [1.5, "NaN"]}]), None),  # 0/0
        (_answer("vector", [{"metric": {}, "value": [1.5, "+Inf"]}]), None),
        (_answer("scalar", [1.5, "-Inf"]), None),
    ],
)
def test_one_number_or_none_from_an_answer(raw: bytes, expected: float | None) -> None:
    assert scalar_from_answer(URL, 200, raw) == expected


@pytest.mark.parametrize(
    ("status", "raw", "says"),
    [
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}',
            "refused the query (HTTP 400, bad_data: parse error at char 3)",
        ),
        (503, b"upstream connect error", "HTTP 503 with something that is not JSON"),
        (200, b"[1, 2]", "HTTP 200 with list"),
        (200, b'{"status":"success"}', "without data"),
        (
            200,
            _answer("vector", [{"metric": {"a": "1"}, "value": [1, "1"]}] * 2),
            "answered 2 series; an analysis query must give one number",
        ),
        (200, _answer("matrix", []), "answered a matrix"),
        (200, _answer("vector", [{"metric": {}, "value": [1]}]), "a sample without a number"),
        (200, _answer("vector", [{"metric": {}, "value": [1, "x"]}]), "without a number"),
    ],
)
def test_every_other_answer_is_unavailable_with_the_reason(
    status: int, raw: bytes, says: str
) -> None:
    with pytest.raises(PrometheusUnavailable, match="Prometheus at http://prometheus:9090") as info:
        scalar_from_answer(URL, status, raw)
    assert says in str(info.value)


@pytest.fixture
def stalling_server() -> Iterator[str]:
    """An HTTP server that takes each request and never answers."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            release.wait(30)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_prometheus_that_does_not_answer_is_unavailable_after_the_timeout(
    stalling_server: str,
) -> None:
    with pytest.raises(PrometheusUnavailable, match=r"did not answer within 0\.3s"):
        asyncio.run(query_scalar(stalling_server, "up", timeout=0.3))


def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PrometheusUnavailable, match=f"cannot reach Prometheus at .*:{port}"):
        asyncio.run(query_scalar(f"http://127.0.0.1:{port}", "up", timeout=2))
