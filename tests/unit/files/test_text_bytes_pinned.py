"""A text-only Prompt's files are byte for byte what they were before call documents.

The literals were computed on main before the call form existed (#26); they
must never change, or existing readers (prompt-hot-reloading included) see a
difference. Only ``updated_at`` is fixed here; the sidecar sets it to the time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prompt_contract import objects, payload
from prompt_contract.writer import PromptFiles


def revision_configmap(data: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    annotations = {
        objects.PROMPT_ANNOTATION: "greet",
        objects.REVISION_ANNOTATION: "abc123def456",
        objects.KEY_ANNOTATION: "grüße",
    }
    return {
        "metadata": {"name": "prompt-greet-abc", "annotations": annotations},
        "data": {**data, objects.METADATA_DATA_KEY: json.dumps(extra)},
    }


PLAIN = revision_configmap(
    {objects.TEXT_DATA_KEY: "Hallo {name}!\r\n🚀"},
    {"variables": ["name"], "defaults": {"name": "Welt"}, "format": "python"},
)
WITH_VARIANTS = revision_configmap(
    {"variant.a": "A {name}", "variant.b": "B {name}"},
    {
        "variables": ["name"],
        "defaults": {},
        "format": "python",
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 0}],
    },
)
PLAIN_FILES = {
    "grüße.txt": b"Hallo {name}!\r\n\xf0\x9f\x9a\x80",
    ".prompts/meta/grüße.json": b'{"defaults": {"name": "Welt"}, "format": "python", "key": '
    b'"gr\xc3\xbc\xc3\x9fe", "prompt": "ns/greet", "revision": "abc123def456", "sha256": '
    b'"fa87a455cccbd2ced6a6069f7df09d9d84e191aeb11bc757e8596d12d38499d7", "updated_at": '
    b'"2025-01-01T00:00:00Z", "variables": ["name"], "variant": null, "variants": {}, '
    b'"version": 1}',
}
VARIANT_FILES = {
    "grüße.txt": b"A {name}",
    ".prompts/meta/grüße.json": b'{"defaults": {}, "format": "python", "key": '
    b'"gr\xc3\xbc\xc3\x9fe", "prompt": "ns/greet", "revision": "abc123def456", "sha256": '
    b'"f207f20e111a0c9a961471c29342709fcb1cfb41468ea7aa0b1f5ce87adb7524", "updated_at": '
    b'"2025-01-01T00:00:00Z", "variables": ["name"], "variant": "a", "variants": {"a": '
    b'{"text": "A {name}", "weight": 1}, "b": {"text": "B {name}", "weight": 0}}, '
    b'"version": 1}',
}


@pytest.mark.parametrize(
    ("configmap", "expected"), [(PLAIN, PLAIN_FILES), (WITH_VARIANTS, VARIANT_FILES)]
)
def test_text_prompt_files_are_pinned_byte_for_byte(
    tmp_path: Path, configmap: dict[str, Any], expected: dict[str, bytes]
) -> None:
    content = payload.file_content(configmap, "pod-1", payload.configmap_metadata(configmap) or {})
    assert isinstance(content, payload.FileContent)
    PromptFiles(str(tmp_path)).write(content.meta("ns", "2025-01-01T00:00:00Z"), content.text)
    found = {
        str(path.relative_to(tmp_path)): path.read_bytes()
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert found == expected
