"""render(): the operator's restricted template rules, with errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_client import (
    MissingVariableError,
    PromptRegistry,
    RenderError,
    TemplateError,
    UnknownVariableError,
)
from tests.reliability.report import Observed

from .support import Writer


@pytest.fixture
def agent(writer: Writer, registry: PromptRegistry) -> PromptRegistry:
    writer.put(
        "agent",
        'Hi {customer}, about {product}. Reply as {{"json": true}}',
        variables=("customer", "product"),
        defaults={"product": "Acme"},
    )
    registry.refresh()
    return registry


def test_render_fills_placeholders_defaults_and_literal_braces(agent: PromptRegistry) -> None:
    assert agent.render("agent", customer="Ada") == 'Hi Ada, about Acme. Reply as {"json": true}'
    assert agent.render("agent", customer="Ada", product="Zed").endswith(
        'Zed. Reply as {"json": true}'
    )
    assert agent["agent"].startswith("Hi {customer}")  # the raw template, as theirs gives it


def test_missing_variable_names_prompt_variable_and_declared_ones(agent: PromptRegistry) -> None:
    with pytest.raises(MissingVariableError) as caught:
        agent.render("agent")
    message = str(caught.value)
    assert "'agent'" in message and "customer" in message
    assert "declared: customer, product" in message
    assert caught.value.missing == ("customer",)
    assert isinstance(caught.value, RenderError) and isinstance(caught.value, ValueError)


def test_unknown_variable_names_prompt_variable_and_declared_ones(agent: PromptRegistry) -> None:
    with pytest.raises(UnknownVariableError) as caught:
        agent.render("agent", customer="Ada", tone="warm")
    assert str(caught.value) == (
        "prompt 'agent': unknown variable(s) tone (declared: customer, product)"
    )


@pytest.mark.reliability(
    case="S-template client",
    did="render {user.password}, {user[0]}, {user!r}, {user:>10} and {0} with an object",
)
def test_template_cannot_reach_into_the_apps_objects(
    writer: Writer, registry: PromptRegistry, observed: Observed
) -> None:
    class Secret:
        password = "hunter2"

    for template in ("{user.password}", "{user[0]}", "{user!r}", "{user:>10}", "{0}"):
        writer.put("evil", template, variables=("user",))
        registry.refresh()
        with pytest.raises(TemplateError) as caught:
            registry.render("evil", user=Secret())
        assert "hunter2" not in str(caught.value)
    observed("TemplateError for each of the 5; the object's secret never in the message")


def test_raw_format_is_served_as_is_and_takes_no_variables(
    writer: Writer, registry: PromptRegistry
) -> None:
    writer.put("raw", "{not a placeholder} {x.y}", format="raw")
    registry.refresh()
    assert registry.render("raw") == "{not a placeholder} {x.y}"
    with pytest.raises(UnknownVariableError, match="'raw' has format raw"):
        registry.render("raw", x=1)


def test_file_without_metadata_declares_its_own_placeholders(prompt_dir: Path) -> None:
    (prompt_dir / "plain.txt").write_text("Dear {name}, {{braces}}")
    with PromptRegistry(prompt_dir, watch=False, defaults={"d": "default {v}"}) as reg:
        assert reg.render("plain", name="Bo") == "Dear Bo, {braces}"
        with pytest.raises(MissingVariableError, match=r"'plain'.*name.*declared: name"):
            reg.render("plain")
        assert reg.render("d", v=1) == "default 1"
        with pytest.raises(KeyError):
            reg.render("nothing")


def test_a_file_without_metadata_says_its_defaults_are_unknown(prompt_dir: Path) -> None:
    # A plain file (no sidecar metadata): the Prompt's declared defaults never arrive.
    (prompt_dir / "agent.txt").write_text("You support {product} for {customer}.")
    with PromptRegistry(prompt_dir, watch=False) as reg:
        with pytest.raises(MissingVariableError) as caught:
            reg.render("agent", customer="Ada")
        assert reg.render("agent", customer="Ada", product="Acme") == "You support Acme for Ada."
    message = str(caught.value)
    assert "missing value for variable(s) product" in message
    assert "no metadata" in message and "prompt-operator files" in message
    assert caught.value.missing == ("product",)
