"""Sidecar injection as a pure function."""

from __future__ import annotations

from typing import Any

import pytest

from prompt_operator.admission import admission_problem
from prompt_operator.inject import SIDECAR_NAME, InjectionConfig, InjectionRefused, injected
from tests.reliability.report import Observed

CONFIG = InjectionConfig(image="registry.example/prompt-operator:1")


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "labels": {"prompts.dev/inject": "true"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app",
                    "volumeMounts": [
                        {
                            "name": "kube-api-access-x1",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access-x1",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                }
            ],
            **spec,
        },
    }


def test_sidecar_is_native_and_gets_the_only_token() -> None:
    out = injected(pod(), CONFIG)
    assert out is not None
    spec = out["spec"]
    sidecar = spec["initContainers"][-1]
    assert (sidecar["name"], sidecar["restartPolicy"], sidecar["image"]) == (
        SIDECAR_NAME,
        "Always",
        CONFIG.image,
    )
    assert spec["automountServiceAccountToken"] is False
    assert not any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])
    app = spec["containers"][0]
    assert [m["name"] for m in app["volumeMounts"]] == ["prompts"]
    assert app["volumeMounts"][0]["readOnly"] is True
    assert {"name": "PROMPT_DIR", "value": "/prompts"} in app["env"]
    assert out["metadata"]["labels"]["prompts.dev/subscribe"] == "true"
    assert out["metadata"]["annotations"]["prompts.dev/selector"] == ""


def test_injecting_twice_changes_nothing_and_keeps_the_apps_own_settings() -> None:
    once = injected(pod(), CONFIG)
    assert once is not None and injected(once, CONFIG) is None
    custom = pod()
    custom["metadata"]["annotations"] = {"prompts.dev/selector": "team=a"}
    custom["spec"]["containers"][0]["env"] = [{"name": "PROMPT_DIR", "value": "/mine"}]
    out = injected(custom, CONFIG)
    assert out is not None
    assert out["metadata"]["annotations"]["prompts.dev/selector"] == "team=a"
    assert out["spec"]["containers"][0]["env"] == [{"name": "PROMPT_DIR", "value": "/mine"}]


def test_admission_message_matches_the_status_reason() -> None:
    body = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"template": "Hi {user}"}}
    message = admission_problem(body)
    assert message is not None
    assert message.startswith("Prompt ns/p: UndeclaredVariable: variable {user}")
    body["spec"]["variables"] = [{"name": "user"}]  # type: ignore[index]
    assert admission_problem(body) is None


def test_admission_takes_includes_as_declared_without_reading_the_included_prompts() -> None:
    spec: dict[str, Any] = {
        "variables": [{"name": "user"}],
        "includes": [{"name": "safety", "prompt": "preamble"}],
        "messages": [{"role": "system", "content": "Help {user}. {safety}"}],
    }
    body = {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}
    assert admission_problem(body) is None  # preamble may be applied later
    spec["messages"][0]["content"] = "Help {user}. {safety} {other}"
    assert "UndeclaredVariable: variable {other}" in (admission_problem(body) or "")
    spec["includes"][0]["prompt"] = "p"
    assert "IncludeCycle" in (admission_problem(body) or "")


@pytest.mark.reliability(
    case="S-inject volume name",
    did="inject into a pod that already has a volume called prompts (a PVC)",
)
def test_a_pod_with_its_own_prompts_volume_is_refused_naming_what_to_rename(
    observed: Observed,
) -> None:
    mine = pod(volumes=[{"name": "prompts", "persistentVolumeClaim": {"claimName": "data"}}])
    mine["spec"]["containers"][0]["volumeMounts"] = [{"name": "prompts", "mountPath": "/data"}]
    with pytest.raises(InjectionRefused) as refused:
        injected(mine, CONFIG)
    message = str(refused.value)
    assert "volume named 'prompts'" in message and "rename that volume" in message
    observed(f"refused: {message}")


@pytest.mark.reliability(
    case="S-inject mount path",
    did="inject into a pod whose container already mounts its own volume at /prompts",
)
def test_a_pod_mounting_something_at_the_prompt_directory_is_refused(
    observed: Observed,
) -> None:
    mine = pod(volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}])
    mine["spec"]["containers"][0]["volumeMounts"] = [{"name": "cfg", "mountPath": "/prompts/"}]
    with pytest.raises(InjectionRefused) as refused:
        injected(mine, CONFIG)
    message = str(refused.value)
    assert "'app'" in message and "'cfg'" in message and "another mountPath" in message
    observed(f"refused: {message}")


def test_a_pod_using_the_sidecars_port_is_refused() -> None:
    mine = pod()
    mine["spec"]["containers"][0]["ports"] = [{"containerPort": CONFIG.probe_port}]
    with pytest.raises(InjectionRefused, match="change that port"):
        injected(mine, CONFIG)


def test_the_configured_ports_are_injected_and_probes_use_the_probe_port() -> None:
    config = InjectionConfig(image="i", port=9000, probe_port=9001)
    out = injected(pod(), config)
    assert out is not None
    sidecar = out["spec"]["initContainers"][-1]
    assert "--port=9000" in sidecar["args"] and "--probe-port=9001" in sidecar["args"]
    assert out["metadata"]["annotations"]["prompts.dev/port"] == "9000"
    assert sidecar["readinessProbe"]["httpGet"]["port"] == 9001
    assert sidecar["startupProbe"]["httpGet"]["port"] == 9001


CHART_CONFIG = InjectionConfig(image="x", sidecar_namespaces=("default", "team-a"))


def in_namespace(namespace: str, account: str | None = None) -> dict[str, Any]:
    p = pod(**({"serviceAccountName": account} if account else {}))
    p["metadata"]["namespace"] = namespace
    return p


def test_a_pod_whose_sidecar_can_read_its_configmaps_is_injected() -> None:
    for namespace in ("default", "team-a"):
        assert injected(in_namespace(namespace, "prompt-sidecar"), CHART_CONFIG) is not None
    # The app's own account (the owner bound a Role to it) is the owner's business.
    assert injected(in_namespace("team-b", "helpdesk"), CHART_CONFIG) is not None
    # Outside the chart (no --sidecar-namespaces) nothing is checked.
    assert injected(in_namespace("team-b"), CONFIG) is not None


@pytest.mark.reliability(
    case="First app: default service account",
    did="inject a pod that runs as its namespace's default service account",
)
def test_a_pod_on_the_default_service_account_is_refused_with_what_to_set(
    observed: Observed,
) -> None:
    # Before, it started a sidecar that got a 403 every second and an app that never started.
    with pytest.raises(InjectionRefused) as caught:
        injected(in_namespace("default"), CHART_CONFIG)
    message = str(caught.value)
    assert "serviceAccountName: prompt-sidecar" in message
    assert "sidecar.namespaces" not in message  # default has the chart's account
    with pytest.raises(InjectionRefused) as caught:
        injected(in_namespace("team-b"), CHART_CONFIG)
    assert "serviceAccountName: prompt-sidecar" in str(caught.value)
    assert "--set 'sidecar.namespaces={default,team-a,team-b}'" in str(caught.value)
    observed(f"refused: {message}")


def test_a_namespace_the_chart_does_not_list_is_left_to_the_api_server() -> None:
    # Without a prompt-sidecar account there, the API server's ServiceAccount
    # admission refuses the pod before any webhook; one made by hand is fine.
    assert injected(in_namespace("team-b", "prompt-sidecar"), CHART_CONFIG) is not None
    empty = InjectionConfig(image="x", sidecar_namespaces=())
    with pytest.raises(InjectionRefused, match=r"sidecar.namespaces=\{default\}"):
        injected(in_namespace("default"), empty)


def test_the_sidecar_namespaces_flag_reaches_the_injection() -> None:
    from prompt_operator.admission import injection_config
    from prompt_operator.config import parse_config

    assert injection_config(parse_config([])).sidecar_namespaces is None
    assert injection_config(parse_config(["--sidecar-namespaces="])).sidecar_namespaces == ()
    flag = ["--sidecar-namespaces=default, team-a"]
    assert injection_config(parse_config(flag)).sidecar_namespaces == ("default", "team-a")


def test_a_memory_backed_volume_is_sized_and_added_to_the_sidecars_limit() -> None:
    from prompt_operator.admission import injection_config
    from prompt_operator.config import parse_config

    def volume_and_limit(argv: list[str]) -> tuple[dict[str, Any], str]:
        out = injected(pod(), injection_config(parse_config(["--sidecar-image=x", *argv])))
        assert out is not None
        volume = next(v for v in out["spec"]["volumes"] if v["name"] == "prompts")
        sidecar = out["spec"]["initContainers"][-1]
        return volume["emptyDir"], sidecar["resources"]["limits"]["memory"]

    assert volume_and_limit([]) == ({}, "64Mi")
    assert volume_and_limit(["--prompt-volume-memory=32Mi"]) == (
        {"medium": "Memory", "sizeLimit": "32Mi"},
        "96Mi",
    )
    assert volume_and_limit(["--prompt-volume-memory=1Gi"])[1] == "1088Mi"
    assert volume_and_limit(["--prompt-volume-memory=100Ki"]) == (
        {"medium": "Memory", "sizeLimit": "100Ki"},
        "65636Ki",
    )


@pytest.mark.parametrize("bad", ["32MB", "0Mi", "Mi", "-1Mi", "1.5Gi"])
def test_a_volume_size_that_is_not_a_binary_quantity_is_refused(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from prompt_operator.config import parse_config

    with pytest.raises(SystemExit):
        parse_config([f"--prompt-volume-memory={bad}"])
    assert "--prompt-volume-memory" in capsys.readouterr().err
