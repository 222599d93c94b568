"""Job analysis: a Kubernetes Job from the rollout's template judges the candidate.

The Job's name is a function of the Prompt, the candidate's hash and the step,
so an operator that restarts (or a new leader) finds the Job its predecessor
created instead of starting a second one: ``ensure_job`` creates it or, when
the name is taken, reads the one there. The Job runs once (``backoffLimit: 0``,
``restartPolicy: Never``): an eval suite is judged by one run, as Argo
Rollouts' job provider does. Every container gets the candidate in its
environment; the Prompt owns the Job, so deleting the Prompt deletes it.

Building the manifest and reading the outcome are pure; the two API calls are
the thin shell at the end.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from prompt_contract import objects

from ..runtime.client import KubeApi, object_path
from ..runtime.errors import Conflict

PROMPT_LABEL = objects.PROMPT_ANNOTATION  # "prompts.dev/prompt": the Prompt's name
REVISION_LABEL = objects.REVISION_ANNOTATION  # "prompts.dev/revision": the candidate's hash
MAX_JOB_NAME = 63  # the Job controller copies the name into a label value on its pods
MAX_TEXT_BYTES = 128 * 1024  # a larger candidate is left out of the environment
# Long enough to read the log the status links to; the Prompt's deletion removes it sooner.
TTL_SECONDS_AFTER_FINISHED = 24 * 3600
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def job_name(prompt: str, candidate_revision: str, step: int) -> str:
    """``prompt-<name>-<candidate hash[:8]>-<step>``, a DNS label of at most 63
    characters. A name too long (cut) or with dots (made dashes) gets a hash of
    itself added, so two Prompts never share a Job."""
    suffix = f"-{candidate_revision[:8]}-{step}"
    head = "prompt-" + prompt.replace(".", "-")
    if len(head) + len(suffix) <= MAX_JOB_NAME and "." not in prompt:
        return head + suffix
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    head = head[: MAX_JOB_NAME - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def job_labels(prompt_body: Mapping[str, Any], candidate_revision: str) -> dict[str, str]:
    """The labels of a rollout's Jobs (and their pods): select them by Prompt
    (uid, and name where it fits a label) and candidate."""
    meta = prompt_body["metadata"]
    labels = {
        objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
        objects.PROMPT_UID_LABEL: str(meta["uid"]),
        REVISION_LABEL: candidate_revision,
    }
    name = str(meta["name"])
    if len(name) <= 63 and _LABEL_VALUE.fullmatch(name):  # a Prompt name may reach 253
        labels[PROMPT_LABEL] = name
    return labels


def job_manifest(
    prompt_body: Mapping[str, Any],
    template: Mapping[str, Any],
    *,
    step: int,
    candidate_revision: str,
    candidate_text: str | None,
    timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """The Job that runs ``template`` (a Job's pod template; a bare pod spec with
    ``containers`` is taken as its ``spec``) against the candidate.

    Every container and init container gets ``PROMPT_NAME``, ``PROMPT_REVISION``
    and, when given and under 128 KiB, ``PROMPT_TEXT`` (the text or call
    document), replacing variables of those names in the template.
    ``timeout_seconds`` becomes ``activeDeadlineSeconds``: the Job controller
    fails the Job at the deadline, whoever leads the operator then.
    """
    meta = prompt_body["metadata"]
    name, namespace = str(meta["name"]), str(meta["namespace"])
    labels = job_labels(prompt_body, candidate_revision)
    env = _candidate_env(name, candidate_revision, candidate_text)
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
        "template": _pod_template(template, labels, env),
    }
    if timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = timeout_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, candidate_revision, step),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                objects.PROMPT_ANNOTATION: name,
                objects.REVISION_ANNOTATION: candidate_revision,
                objects.ROLLOUT_STEP_ANNOTATION: str(step),
            },
            "ownerReferences": [
                {
                    "apiVersion": objects.API_VERSION,
                    "kind": "Prompt",
                    "name": name,
                    "uid": str(meta["uid"]),
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }


def _pod_template(
    template: Mapping[str, Any], labels: Mapping[str, str], env: list[dict[str, str]]
) -> dict[str, Any]:
    """A copy of ``template`` that runs once, labelled as its Job, with ``env`` everywhere."""
    pod = copy.deepcopy(dict(template))
    if "containers" in pod:
        pod = {"spec": pod}
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec = pod.setdefault("spec", {})
    pod_spec["restartPolicy"] = "Never"
    for key in ("initContainers", "containers"):
        if key in pod_spec:
            pod_spec[key] = [_with_env(container, env) for container in pod_spec[key] or []]
    return pod


def _candidate_env(name: str, revision: str, text: str | None) -> list[dict[str, str]]:
    env = [{"name": "PROMPT_NAME", "value": name}, {"name": "PROMPT_REVISION", "value": revision}]
    if text is not None and len(text.encode("utf-8")) < MAX_TEXT_BYTES:
        env.append({"name": "PROMPT_TEXT", "value": text})
    return env


def _with_env(container: Mapping[str, Any], env: list[dict[str, str]]) -> dict[str, Any]:
    ours = {item["name"] for item in env}
    kept = [item for item in container.get("env") or [] if item.get("name") not in ours]
    return {**container, "env": kept + env}


def job_outcome(job: Mapping[str, Any] | None) -> str:
    """``Missing`` (no Job), ``Running``, ``Succeeded`` or ``Failed``, from the
    Job's conditions: ``FailureTarget`` and ``SuccessCriteriaMet`` decide as
    early as the Job controller does, before the final ``Failed``/``Complete``."""
    if job is None:
        return "Missing"
    conditions = (job.get("status") or {}).get("conditions") or []
    holding = {
        c.get("type") for c in conditions if isinstance(c, Mapping) and c.get("status") == "True"
    }
    if holding & {"Failed", "FailureTarget"}:
        return "Failed"
    if holding & {"Complete", "SuccessCriteriaMet"}:
        return "Succeeded"
    return "Running"


def job_log_command(namespace: str, name: str) -> str:
    """What a person runs to read the Job's log (the status links it)."""
    return f"kubectl logs -n {namespace} job/{name}"


async def ensure_job(api: KubeApi, manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """Create the Job, or return the one of that name already there (created by this
    replica earlier or by a previous leader)."""
    meta = manifest["metadata"]
    jobs = object_path("batch/v1", "jobs", meta["namespace"])
    try:
        created: Mapping[str, Any] = await api.request("POST", jobs, body=manifest)
        return created
    except Conflict:
        found = await api.get(object_path("batch/v1", "jobs", meta["namespace"], meta["name"]))
    if found is None:  # deleted between the two calls (its TTL, a person): once more
        again: Mapping[str, Any] = await api.request("POST", jobs, body=manifest)
        return again
    return found


async def delete_jobs(api: KubeApi, namespace: str, label_selector: str) -> None:
    """Delete the Jobs ``label_selector`` selects, their pods with them (a Job's
    default is to orphan them), e.g. before a retried rollout runs its steps again."""
    await api.request(
        "DELETE",
        object_path("batch/v1", "jobs", namespace),
        params={"labelSelector": label_selector},
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )


__all__ = [
    "MAX_TEXT_BYTES",
    "PROMPT_LABEL",
    "REVISION_LABEL",
    "TTL_SECONDS_AFTER_FINISHED",
    "delete_jobs",
    "ensure_job",
    "job_labels",
    "job_log_command",
    "job_manifest",
    "job_name",
    "job_outcome",
]
