"""Sidecar injection as a pure function."""

from __future__ import annotations

from typing import Any

from prompt_operator.admission import admission_problem
from prompt_operator.inject import SIDECAR_NAME, InjectionConfig, injected

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
