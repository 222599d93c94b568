"""The Job analysis provider's pure parts: the Job's name, its manifest and the
outcome read from every shape of Job status the Job controller writes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from prompt_contract import objects
from prompt_operator.rollouts.jobs import (
    MAX_TEXT_BYTES,
    job_log_command,
    job_manifest,
    job_name,
    job_outcome,
)

CANDIDATE = "0123456789abcdef"
PROMPT: dict[str, Any] = {
    "apiVersion": objects.API_VERSION,
    "kind": "Prompt",
    "metadata": {"name": "greeter", "namespace": "shop", "uid": "uid-1"},
    "spec": {},
}
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "evals"}},
    "spec": {
        "restartPolicy": "OnFailure",
        "initContainers": [{"name": "fetch", "image": "busybox"}],
        "containers": [
            {
                "name": "eval",
                "image": "evals:1",
                "env": [{"name": "PROMPT_TEXT", "value": "stale"}, {"name": "KEEP", "value": "1"}],
            },
            {"name": "judge", "image": "judge:1"},
        ],
    },
}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_a_short_name_reads_as_prompt_name_hash_and_step() -> None:
    assert job_name("greeter", CANDIDATE, 2) == "prompt-greeter-01234567-2"


@pytest.mark.parametrize(
    "name",
    ["a" * 253, "a." * 60 + "b", "x" * 40, "x" * 41 + "-" + "y" * 30, "shop.greeter"],
)
def test_every_name_is_a_dns_label_of_at_most_63_characters(name: str) -> None:
    made = job_name(name, CANDIDATE, 19)
    assert len(made) <= 63
    assert DNS_LABEL.fullmatch(made), made
    assert made.endswith("-01234567-19")


def test_names_that_would_collide_when_cut_or_undotted_stay_apart() -> None:
    assert job_name("a" * 100, CANDIDATE, 0) != job_name("a" * 99 + "b", CANDIDATE, 0)
    assert job_name("a.b", CANDIDATE, 0) != job_name("a-b", CANDIDATE, 0)
    assert job_name("greeter", CANDIDATE, 0) != job_name("greeter", CANDIDATE, 1)
    assert job_name("greeter", CANDIDATE, 0) != job_name("greeter", "fedcba9876543210", 0)


def _manifest(text: str | None = "Hello {user}", **extra: Any) -> dict[str, Any]:
    return job_manifest(
        PROMPT, TEMPLATE, step=3, candidate_revision=CANDIDATE, candidate_text=text, **extra
    )


def test_the_job_runs_once_is_owned_by_the_prompt_and_is_labelled() -> None:
    job = _manifest()
    meta, spec = job["metadata"], job["spec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert (meta["name"], meta["namespace"]) == ("prompt-greeter-01234567-3", "shop")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": objects.API_VERSION,
            "kind": "Prompt",
            "name": "greeter",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert meta["labels"] == {
        "prompts.dev/prompt": "greeter",
        objects.PROMPT_UID_LABEL: "uid-1",
        "prompts.dev/revision": CANDIDATE,
        objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
    }
    assert meta["annotations"]["prompts.dev/rollout-step"] == "3"
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert "activeDeadlineSeconds" not in spec
    pod = spec["template"]
    assert pod["spec"]["restartPolicy"] == "Never"  # OnFailure would retry in place
    assert pod["metadata"]["labels"] == {"team": "evals", **meta["labels"]}


def test_every_container_gets_the_candidate_and_ours_replace_the_templates() -> None:
    pod_spec = _manifest()["spec"]["template"]["spec"]
    wanted = [
        {"name": "PROMPT_NAME", "value": "greeter"},
        {"name": "PROMPT_REVISION", "value": CANDIDATE},
        {"name": "PROMPT_TEXT", "value": "Hello {user}"},
    ]
    containers = pod_spec["initContainers"] + pod_spec["containers"]
    assert [c["name"] for c in containers] == ["fetch", "eval", "judge"]
    assert containers[0]["env"] == wanted
    assert containers[1]["env"] == [{"name": "KEEP", "value": "1"}, *wanted]
    assert containers[2]["env"] == wanted
    assert TEMPLATE["spec"]["containers"][0]["env"][0]["value"] == "stale"  # not mutated


@pytest.mark.parametrize(
    ("text", "has_text"),
    [(None, False), ("x" * (MAX_TEXT_BYTES - 1), True), ("\u00e9" * (MAX_TEXT_BYTES // 2), False)],
)
def test_a_text_of_128_kib_or_more_is_left_out(text: str | None, has_text: bool) -> None:
    env = _manifest(text)["spec"]["template"]["spec"]["containers"][1]["env"]
    assert ("PROMPT_TEXT" in {item["name"] for item in env}) is has_text


def test_a_bare_pod_spec_is_taken_as_the_template_and_a_timeout_as_the_deadline() -> None:
    job = job_manifest(
        PROMPT,
        {"containers": [{"name": "eval", "image": "evals:1"}]},
        step=0,
        candidate_revision=CANDIDATE,
        candidate_text="t",
        timeout_seconds=600,
    )
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "PROMPT_NAME"


def test_a_long_prompt_name_is_kept_out_of_the_labels_but_in_the_annotations() -> None:
    long = {**PROMPT, "metadata": {**PROMPT["metadata"], "name": "p" * 100}}
    job = job_manifest(long, TEMPLATE, step=0, candidate_revision=CANDIDATE, candidate_text=None)
    assert "prompts.dev/prompt" not in job["metadata"]["labels"]
    assert job["metadata"]["annotations"]["prompts.dev/prompt"] == "p" * 100


def _job(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}


@pytest.mark.parametrize(
    ("job", "outcome"),
    [
        (None, "Missing"),
        ({}, "Running"),
        ({"status": {}}, "Running"),
        ({"status": {"active": 1, "conditions": None}}, "Running"),
        (_job(("Suspended", "True")), "Running"),
        (_job(("Complete", "False")), "Running"),
        (_job(("SuccessCriteriaMet", "True")), "Succeeded"),
        (_job(("SuccessCriteriaMet", "True"), ("Complete", "True")), "Succeeded"),
        (_job(("FailureTarget", "True")), "Failed"),  # pods still terminating
        (_job(("FailureTarget", "True"), ("Failed", "True")), "Failed"),
        (_job(("Failed", "True")), "Failed"),  # e.g. DeadlineExceeded
        (_job(("Suspended", "False"), ("Failed", "True")), "Failed"),
    ],
)
def test_the_outcome_follows_the_job_controllers_conditions(
    job: dict[str, Any] | None, outcome: str
) -> None:
    assert job_outcome(job) == outcome


def test_the_log_command_names_the_job() -> None:
    assert job_log_command("shop", "prompt-greeter-01234567-3") == (
        "kubectl logs -n shop job/prompt-greeter-01234567-3"
    )


def test_a_template_without_init_containers_gets_none() -> None:
    job = job_manifest(
        PROMPT,
        {"spec": {"containers": [{"name": "eval", "image": "evals:1"}]}},
        step=0,
        candidate_revision=CANDIDATE,
        candidate_text=None,
    )
    assert "initContainers" not in job["spec"]["template"]["spec"]
