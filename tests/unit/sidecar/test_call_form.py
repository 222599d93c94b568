"""The sidecar serves a call-form revision as <key>.json and follows form changes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prompt_contract import objects
from prompt_contract.calls import call_document, dump_call
from prompt_contract.files import read_meta
from prompt_contract.selector import parse_selector
from prompt_contract.writer import PromptFiles
from prompt_sidecar.planning import Desired, desired_from_configmap
from prompt_sidecar.sync import Syncer

from .support import FakeApi, configmap

DOCUMENT = dump_call(
    call_document(
        format="python",
        variables=[],
        defaults={},
        messages=[{"role": "system", "content": "Be brief."}],
        model={"name": "gpt-4o-mini", "parameters": {"temperature": 0.2}},
    )
)


def call_configmap(name: str, revision: str, **variants: str) -> dict[str, Any]:
    """A call-form revision ConfigMap as the operator writes it."""
    cm = configmap(name, "", revision)
    data: dict[str, str] = {}
    extra: dict[str, Any] = {"form": "call", "variables": [], "defaults": {}}
    if variants:
        data.update({objects.variant_data_key(v): text for v, text in variants.items()})
        extra["variants"] = [{"name": v, "weight": 1} for v in variants]
    else:
        data[objects.CALL_DATA_KEY] = DOCUMENT
    cm["data"] = {**data, objects.METADATA_DATA_KEY: json.dumps(extra)}
    return cm


def test_a_call_form_configmap_is_served_from_call_json() -> None:
    desired = desired_from_configmap(call_configmap("greet", "r1"), parse_selector(""))
    assert isinstance(desired, Desired)
    assert (desired.form, desired.text) == ("call", DOCUMENT.encode())
    with_variants = call_configmap("greet", "r1", a=DOCUMENT, b=DOCUMENT.replace("0.2", "0.9"))
    desired = desired_from_configmap(with_variants, parse_selector(""), "pod-1")
    assert isinstance(desired, Desired) and desired.form == "call"
    assert desired.variants[str(desired.variant)]["text"] == desired.text.decode()
    broken = call_configmap("greet", "r1")
    del broken["data"][objects.CALL_DATA_KEY]
    assert "missing the 'call.json' data key" in str(
        desired_from_configmap(broken, parse_selector(""))
    )


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_sidecar_moves_a_key_between_forms_leaving_one_file(tmp_path: Path) -> None:
    api = FakeApi()
    api.put(call_configmap("greet", "r1"))
    directory = tmp_path / "prompts"
    syncer = Syncer(api, PromptFiles(str(directory)), "ns", parse_selector(""))  # type: ignore[arg-type]
    syncer.start()
    try:
        assert syncer.ready.wait(5)
        assert listing(directory) == [".prompts", "greet.json"]
        assert (directory / "greet.json").read_text() == DOCUMENT
        assert read_meta(str(directory), "greet").form == "call"  # type: ignore[union-attr]
        api.put(configmap("greet", "Hello", "r2"))
        syncer.signal([("greet", "r2")])
        wait_until(lambda: listing(directory) == [".prompts", "greet.txt"])
        api.put(call_configmap("greet", "r3"))
        syncer.signal([("greet", "r3")])
        wait_until(lambda: listing(directory) == [".prompts", "greet.json"])
        assert (directory / "greet.json").read_text() == DOCUMENT
    finally:
        syncer.stop()
