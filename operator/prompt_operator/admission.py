"""Admission webhooks, registered only when the operator serves them (--webhook-port).

kopf refuses to start with admission handlers but no server, so this module is
imported by the runner only when webhooks are on.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import kopf

from prompt_contract import objects

from .config import OperatorConfig
from .includes import expand
from .inject import InjectionConfig, InjectionRefused, injected
from .model import Prompt, SpecError, parse_prompt
from .notices import admission_warnings
from .policies import Problem, evaluate
from .render import render


def admission_problem(body: Any) -> str | None:
    """The message a bad Prompt gets at admission (None when it may pass)."""
    meta = body.get("metadata") or {}
    where = f"Prompt {meta.get('namespace', '')}/{meta.get('name', '')}"
    try:
        prompt = parse_prompt(body)
    except SpecError as exc:
        return f"{where}: InvalidSpec: {exc}"
    expanded = _with_stand_ins(prompt)
    if isinstance(expanded, Problem):
        return f"{where}: {expanded.reason}: {expanded.message}"
    problem = evaluate(expanded, render(expanded)).problem
    return None if problem is None else f"{where}: {problem.reason}: {problem.message}"


def _with_stand_ins(prompt: Prompt) -> Prompt | Problem:
    """``prompt`` with each include expanded to an empty text. Admission reads no
    other Prompt (an included one may be applied later, as GitOps tools do in any
    order), so it checks what the Prompt says on its own: its placeholders, the
    include rules and a Prompt including itself; the operator checks the rest."""
    if not prompt.includes:
        return prompt
    empty = {
        include.prompt: parse_prompt(
            {
                "metadata": {"name": include.prompt, "namespace": prompt.ref.namespace},
                "spec": {"template": ""},
            }
        )
        for include in prompt.includes
        if include.prompt and "/" not in include.prompt
    }
    expansion = expand(prompt, empty)
    return expansion if isinstance(expansion, Problem) else expansion.prompt


@kopf.on.validate(
    objects.GROUP,
    objects.VERSION,
    objects.PLURAL,
    id="validate-prompt",
    operations=["CREATE", "UPDATE"],
)
def validate_prompt(body: kopf.Body, warnings: list[str], **_: Any) -> None:
    """Refuse at `kubectl apply` what would make the Prompt not Ready, with the same
    message its status would show."""
    problem = admission_problem(body)
    if problem is not None:
        raise kopf.AdmissionError(problem, code=422)
    warnings.extend(admission_warnings(body, datetime.now(timezone.utc)))


def injection_config(config: OperatorConfig) -> InjectionConfig:
    """What the webhook injects: the chart passes the ports its NetworkPolicies open."""
    return InjectionConfig(
        image=config.sidecar_image,
        port=config.sidecar_port,
        probe_port=config.sidecar_probe_port,
        sidecar_namespaces=config.sidecar_namespaces,
        memory_volume_kib=config.prompt_volume_memory_kib,
    )


@kopf.on.mutate(
    "",
    "v1",
    "pods",
    id="inject-sidecar",
    operations=["CREATE"],
    labels={objects.INJECT_LABEL: "true"},
)
def inject_pod(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo["config"]
    meta = body.get("metadata") or {}
    try:
        pod = injected(body, injection_config(config))
    except InjectionRefused as exc:
        where = (
            f"Pod {meta.get('namespace', '')}/{meta.get('name') or meta.get('generateName', '')}"
        )
        raise kopf.AdmissionError(
            f"{where}: prompt sidecar not injected: {exc}", code=422
        ) from None
    if pod is None:
        return  # already injected: a re-admitted pod is not injected twice
    patch.metadata["labels"] = pod["metadata"]["labels"]
    patch.metadata["annotations"] = pod["metadata"]["annotations"]
    for name in ("automountServiceAccountToken", "volumes", "initContainers", "containers"):
        patch.spec[name] = pod["spec"][name]
