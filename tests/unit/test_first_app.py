"""The first app (examples/app/) works with a default install: the chart prints
the same manifest in its NOTES, runs the image the chart installs, and the
injection webhook with the chart's default values accepts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prompt_operator.inject import InjectionConfig, injected

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "app" / "deployment.yaml"
CHART = REPO / "charts" / "prompt-operator"


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return doc


def test_the_notes_print_the_example_itself() -> None:
    # NOTES.txt prints files/first-app.yaml (comments out, the release's image in).
    assert (CHART / "files" / "first-app.yaml").read_text() == EXAMPLE.read_text(), (
        "copy examples/app/deployment.yaml to charts/prompt-operator/files/first-app.yaml"
    )


def test_the_example_runs_the_image_a_default_install_pulls() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    default_image = (
        f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    )
    (container,) = example()["spec"]["template"]["spec"]["containers"]
    assert container["image"] == default_image


def test_a_default_install_injects_the_example_in_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    config = InjectionConfig(image="x", sidecar_namespaces=tuple(values["sidecar"]["namespaces"]))
    template = example()["spec"]["template"]
    assert template["metadata"]["labels"]["prompts.dev/inject"] == "true"
    pod = {**template, "metadata": {**template["metadata"], "namespace": "default"}}
    out = injected(pod, config)
    assert out is not None
    app = out["spec"]["containers"][0]
    assert {"name": "PROMPT_DIR", "value": "/prompts"} in app["env"]
