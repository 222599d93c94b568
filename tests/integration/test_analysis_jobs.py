"""Job analysis against the real API server: the Job the operator builds for a
step is valid as it stands, a second ``ensure_job`` (a restarted operator, a
new leader) finds the first instead of creating another, and the garbage
collector removes it with its Prompt. No kubelet runs here, so no Job finishes
(``job_outcome`` of finished Jobs is unit-tested on the Job controller's shapes)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import yaml

from prompt_cluster.testing import kubectl, kubectl_json, prompt_manifest, wait_for
from prompt_operator.rollouts.jobs import delete_jobs, ensure_job, job_manifest, job_outcome
from prompt_operator.runtime.client import Credentials, KubeApi

from .helpers import apply

pytestmark = pytest.mark.cluster

CANDIDATE = "0123456789abcdef"
TEMPLATE = {
    "spec": {"containers": [{"name": "eval", "image": "example.invalid/evals:1", "args": ["run"]}]}
}


def credentials(kubeconfig: Path) -> Credentials:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return Credentials(server=cluster["server"], ssl=context, headers={})


def test_a_steps_job_is_created_once_and_goes_with_its_prompt(
    kubeconfig: Path, namespace: str
) -> None:
    apply(kubeconfig, prompt_manifest("greeter", "Hello {user}", variables=["user"]), namespace)
    prompt = kubectl_json(kubeconfig, "-n", namespace, "get", "prompt", "greeter")
    manifest = job_manifest(
        prompt, TEMPLATE, step=2, candidate_revision=CANDIDATE, candidate_text="Hello {user}"
    )

    async def twice() -> tuple[dict[str, str], dict[str, str]]:
        async with KubeApi(credentials(kubeconfig)) as api:
            first = await ensure_job(api, manifest)
            again = await ensure_job(api, manifest)  # 409, then the Job that is there
            return dict(first["metadata"]), dict(again["metadata"])

    first, again = asyncio.run(twice())
    assert first["name"] == "prompt-greeter-01234567-2"
    assert again["uid"] == first["uid"]
    jobs = kubectl_json(kubeconfig, "-n", namespace, "get", "jobs")["items"]
    assert [job["metadata"]["uid"] for job in jobs] == [first["uid"]]
    assert job_outcome(jobs[0]) == "Running"
    env = jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PROMPT_TEXT", "value": "Hello {user}"} in env

    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "greeter", "--wait=false")
    wait_for(
        lambda: not kubectl_json(kubeconfig, "-n", namespace, "get", "jobs")["items"],
        timeout=30,
        message="the garbage collector deleting the Prompt's Job",
    )


def test_a_candidates_jobs_are_deleted_by_their_labels(kubeconfig: Path, namespace: str) -> None:
    apply(kubeconfig, prompt_manifest("greeter", "Hello"), namespace)
    prompt = kubectl_json(kubeconfig, "-n", namespace, "get", "prompt", "greeter")

    async def create_then_delete() -> None:
        async with KubeApi(credentials(kubeconfig)) as api:
            for step, revision in ((0, CANDIDATE), (1, CANDIDATE), (1, "fedcba9876543210")):
                await ensure_job(
                    api,
                    job_manifest(
                        prompt,
                        TEMPLATE,
                        step=step,
                        candidate_revision=revision,
                        candidate_text=None,
                    ),
                )
            await delete_jobs(api, namespace, f"prompts.dev/revision={CANDIDATE}")

    asyncio.run(create_then_delete())

    def left() -> list[str] | None:
        items = kubectl_json(kubeconfig, "-n", namespace, "get", "jobs")["items"]
        names = [job["metadata"]["name"] for job in items]
        return names if len(names) == 1 else None

    assert wait_for(left, timeout=30, message="one Job left") == ["prompt-greeter-fedcba98-1"]
