"""Fuzzing the parsers that take input from outside: bounded, seconds in all.

Each target may refuse its input only with its own documented error; any other
exception is a crash. Where a trusted implementation exists, the property is
agreement with it (our template renderer and ``str.format`` on the templates
both accept).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prompt_contract import signals
from prompt_contract.selector import parse_selector
from prompt_contract.templates import TemplateError, parse_template, render_template
from prompt_contract.writer import PromptFiles
from prompt_operator.model import SpecError, parse_prompt
from prompt_operator.policies import evaluate
from prompt_operator.render import render
from prompt_operator.validate import Document, InputError, _documents, check_document
from prompt_sidecar.server import SidecarServer
from prompt_sidecar.sync import Syncer
from tests.unit.sidecar.support import FakeApi, configmap, serving

EXAMPLES = 400
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
# Specs that look like Prompt specs often enough to get past the first checks.
spec_fields = st.sampled_from(
    ["template", "variants", "schedule", "variables", "key", "format", "revisionHistoryLimit"]
)
specs = st.dictionaries(spec_fields, json_values, max_size=5) | json_values
templates = st.text(
    alphabet=st.sampled_from(list("ab{}!:.[]0_ \\x")) | st.characters(), max_size=30
)


@pytest.mark.reliability(
    case="S-fuzz signal", did=f"hypothesis: {EXAMPLES} bodies of random bytes and JSON shapes"
)
@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_signal_bodies_parse_or_are_refused_with_a_signal_error(body: bytes) -> None:
    try:
        pairs = signals.parse_signal(body)
    except signals.SignalError:
        return
    assert all(isinstance(name, str) and isinstance(rev, str) for name, rev in pairs)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
            st.from_regex(r"[A-Za-z0-9._:-]{0,40}", fullmatch=True),
        ),
        max_size=10,
    )
)
def test_signals_we_send_are_signals_we_read(pairs: list[tuple[str, str]]) -> None:
    assert signals.parse_signal(signals.encode_signal(pairs)) == pairs


@pytest.mark.reliability(
    case="S-fuzz template",
    did=f"hypothesis: {EXAMPLES} templates of brace-heavy random text, compared with str.format",
)
@FUZZ
@given(templates)
def test_templates_are_refused_or_render_as_str_format_would(text: str) -> None:
    try:
        parsed = parse_template(text)
    except TemplateError as exc:
        assert exc.reason in ("MalformedTemplate", "ForbiddenPlaceholder")
        return
    values = {name: f"<{name}>" for name in parsed.names}
    assert render_template(text, values) == text.format(**values)


@pytest.mark.reliability(
    case="S-fuzz manifest",
    did=f"hypothesis: {EXAMPLES} Prompt documents with random specs through validate's checks",
)
@FUZZ
@given(specs, json_values)
def test_validate_reports_findings_for_any_prompt_document(spec: Any, metadata: Any) -> None:
    data = {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": metadata if isinstance(metadata, dict) else {"name": "fuzz"},
        "spec": spec,
    }
    text = json.dumps(data)
    doc = Document("<fuzz>", yaml.compose(text, Loader=yaml.SafeLoader), data)
    findings = check_document(doc)
    assert all(f.message for f in findings)


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=200))  # surrogates too
# What random text rarely reaches: nesting past the recursion limit, an escaped
# lone surrogate, an unquoted time.
@example("spec: {template: " + "[" * 5000 + "]" * 5000 + "}")
@example('apiVersion: prompts.dev/v1alpha1\nkind: Prompt\nspec: {template: "a\\ud800"}')
@example("apiVersion: prompts.dev/v1alpha1\nkind: Prompt\nspec: {schedule: [{at: 2030-01-01}]}")
def test_any_text_is_documents_or_an_input_error(text: str) -> None:
    try:
        for doc in _documents(text, "<fuzz>"):
            check_document(doc)
    except InputError:
        pass


@pytest.mark.reliability(
    case="S-fuzz operator parser",
    did=f"hypothesis: {EXAMPLES} stored Prompt objects with random specs through "
    "parse, render and the policies",
)
@FUZZ
@given(specs)
def test_the_operator_parses_any_stored_object_or_says_spec_error(spec: Any) -> None:
    body = {
        "metadata": {"name": "fuzz", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec,
    }
    try:
        prompt = parse_prompt(body)
    except SpecError:
        return
    evaluate(prompt, render(prompt))


# -- the sidecar's HTTP endpoint, in process, with raw bytes --------------------------------


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SidecarServer, Path]]:
    directory = tmp_path_factory.mktemp("fuzz") / "prompts"
    api = FakeApi()
    api.put(configmap("p", "genuine"))
    syncer = Syncer(
        api,  # type: ignore[arg-type]
        PromptFiles(str(directory)),
        "ns",
        parse_selector(""),
        reads_per_second=1000.0,
        burst=1000,
    )
    syncer.start()
    assert syncer.ready.wait(5)
    with serving(syncer, "app") as server:
        yield server, directory
    syncer.stop()


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


requests = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda method, path, headers, body: (
            f"{method} {path} HTTP/1.1\r\n".encode() + headers + b"\r\n" + body
        ),
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "XYZ", ""]),
        st.sampled_from(["/v1/signal", "/readyz", "/healthz", "/metrics", "/", "/../etc"]),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Type: application/json\r\n",
                    b"Content-Type: text/plain\r\n",
                    b"Content-Length: 5\r\n",
                    b"Content-Length: -1\r\n",
                    b"Content-Length: 99999999999\r\n",
                    b"Content-Length: x\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"X: \xff\xfe\r\n",
                ]
            ),
            max_size=4,
        ).map(b"".join),
        st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode()),
    ),
)


@pytest.mark.reliability(
    case="S-fuzz sidecar endpoint",
    did="hypothesis: 150 raw HTTP requests (random bytes, methods, paths, headers, bodies) "
    "to the sidecar's server",
)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=requests)
def test_the_sidecar_endpoint_survives_any_request(
    sidecar: tuple[SidecarServer, Path], raw: bytes
) -> None:
    server, directory = sidecar
    port = server.server_address[1]
    answer = _exchange(port, raw)
    assert answer == b"" or answer.startswith((b"HTTP/1.0 ", b"HTTP/1.1 ")), answer[:200]
    assert b"<html" not in answer.lower()
    assert (directory / "p.txt").read_bytes() == b"genuine"
    assert _exchange(port, b"GET /readyz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
