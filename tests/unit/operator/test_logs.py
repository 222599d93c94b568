"""Log lines carry what they are about as fields (JSON mode shows each one)."""

from __future__ import annotations

import json
import logging

from pythonjsonlogger.json import JsonFormatter

from prompt_operator.logs import about
from prompt_operator.model import PromptRef


def test_a_line_about_a_prompt_revision_and_pod_has_each_as_a_field() -> None:
    assert about(PromptRef("ns", "greeter"), revision="abc") == {
        "namespace": "ns",
        "prompt": "greeter",
        "revision": "abc",
    }
    assert about(pod=("ns", "app-1")) == {"namespace": "ns", "pod": "app-1"}


def test_the_json_formatter_kopf_uses_writes_them_as_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "revision %s", ("abc",), None)
    record.__dict__.update(about(PromptRef("ns", "greeter"), revision="abc"))
    line = json.loads(JsonFormatter().format(record))
    assert (line["prompt"], line["namespace"], line["revision"]) == ("greeter", "ns", "abc")
    assert line["message"] == "revision abc"
