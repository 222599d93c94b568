"""The sidecar's JSON log lines: one object a line, extra fields as keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from prompt_sidecar.main import JsonFormatter


def test_a_log_line_is_one_json_object_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "prompt_sidecar.sync",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "prompt %s -> %s at revision %s",
            "args": ("grüße", "grüße.txt", "7f3a"),
            "where": Path("/prompts"),  # not JSON: written as its str()
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "grüße" in line  # not escaped: the line stays readable
    entry = json.loads(line)
    assert entry["message"] == "prompt grüße -> grüße.txt at revision 7f3a"
    assert (entry["level"], entry["logger"], entry["where"]) == (
        "INFO",
        "prompt_sidecar.sync",
        "/prompts",
    )
    assert "args" not in entry and "msg" not in entry
