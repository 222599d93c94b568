"""Only the operator writes ConfigMaps that sidecars serve: the chart's
ValidatingAdmissionPolicy on a real API server (bound to this test's namespace
only, so other tests may still stage such ConfigMaps as the admin)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prompt_cluster.build import ensure_binaries
from prompt_cluster.testing import (
    SidecarProcess,
    kubectl,
    kubectl_json,
    prompt_manifest,
    wait_for,
)
from prompt_contract import objects
from tests.reliability.report import Observed

from .helpers import (
    SidecarFactory,
    apply,
    configmap_text,
    current_configmap,
    events_for,
    wait_prompt,
)

pytestmark = pytest.mark.usefixtures("operator")

CHART = Path(__file__).resolve().parents[2] / "charts" / "prompt-operator"
USER = "mallory"  # a namespace user with every ConfigMap right
# The operator as the policy knows it: the chart renders it for prompt-system.
OPERATOR = "system:serviceaccount:prompt-system:prompt-operator"


def policy_objects(namespace: str) -> list[dict[str, Any]]:
    """The chart's policy and binding as installed in prompt-system, the binding
    narrowed to ``namespace`` and both renamed after it."""
    rendered = subprocess.run(
        [
            str(ensure_binaries().helm),
            "template",
            "prompt-operator",
            str(CHART),
            "-n",
            "prompt-system",
            "--show-only",
            "templates/admissionpolicy.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert [d["kind"] for d in docs] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    policy, binding = docs
    policy["metadata"]["name"] += f"-{namespace}"
    binding["metadata"]["name"] += f"-{namespace}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    return docs


@pytest.fixture
def guarded(kubeconfig: Path, namespace: str) -> Iterator[str]:
    """The policy in force for ``namespace``, and USER holding every ConfigMap right there."""
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "role",
        "configmap-admin",
        "--verb=*",
        "--resource=configmaps",
    )
    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "rolebinding",
        "configmap-admin",
        "--role=configmap-admin",
        f"--user={USER}",
    )
    docs = policy_objects(namespace)
    kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": docs}),
    )
    try:
        yield namespace
    finally:
        for doc in reversed(docs):
            kubectl(kubeconfig, "delete", doc["kind"], doc["metadata"]["name"], check=False)


def as_user(
    kubeconfig: Path, namespace: str, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, f"--as={USER}", "-n", namespace, *args, input=input, check=False)


def patch_configmap(
    kubeconfig: Path, who: list[str], namespace: str, name: str, kind: str, patch: object
) -> subprocess.CompletedProcess[str]:
    """`kubectl patch configmap` as ``who`` (``--as=...`` flags), a ``kind`` patch."""
    return kubectl(
        kubeconfig,
        *who,
        "-n",
        namespace,
        "patch",
        "configmap",
        name,
        f"--type={kind}",
        "-p",
        json.dumps(patch),
        check=False,
    )


@pytest.mark.reliability(
    case="S-configmap forged",
    did="as a namespace user with every ConfigMap right: create a ConfigMap with the "
    "managed-by label, the real Prompt's uid label and a higher revision number; label "
    "one of its own; renumber and unlabel the operator's; then edit the Prompt",
)
def test_only_the_operator_writes_managed_configmaps(
    kubeconfig: Path,
    namespace: str,
    guarded: str,
    sidecars: SidecarFactory,
    observed: Observed,
) -> None:
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    app: SidecarProcess = sidecars("app")
    real = current_configmap(kubeconfig, namespace, "p")
    assert real is not None
    labels = real["metadata"]["labels"]
    forged = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": objects.configmap_name("p", "f0rged"),
            "labels": {**labels, objects.REVISION_NUMBER_LABEL: "99"},
            "annotations": {
                **real["metadata"]["annotations"],
                objects.REVISION_ANNOTATION: "f0rged",
            },
        },
        "data": {**real["data"], objects.TEXT_DATA_KEY: "forged text"},
    }

    def refused(result: subprocess.CompletedProcess[str]) -> bool:
        return result.returncode != 0 and "written by prompt-operator" in result.stderr

    # The policy takes a moment to be in force: try until the forged create is refused.
    def attempt() -> subprocess.CompletedProcess[str] | None:
        result = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(forged))
        if refused(result):
            return result
        if result.returncode == 0:  # not in force yet: take it away and try again
            kubectl(kubeconfig, "-n", namespace, "delete", "configmap", forged["metadata"]["name"])
        return None

    create = wait_for(attempt, timeout=30, message="the policy refuses the forged ConfigMap")
    assert refused(create), create.stderr
    # Its own ConfigMap is fine until it carries the label.
    assert (
        as_user(
            kubeconfig, namespace, "create", "configmap", "mine", "--from-literal=a=b"
        ).returncode
        == 0
    )
    label = as_user(
        kubeconfig,
        namespace,
        "label",
        "configmap",
        "mine",
        f"{objects.MANAGED_BY_LABEL}={objects.MANAGED_BY_VALUE}",
    )
    change = as_user(
        kubeconfig,
        namespace,
        "patch",
        "configmap",
        real["metadata"]["name"],
        "--type=merge",
        "-p",
        # Its data is immutable, but a revision number picks what pods serve.
        json.dumps({"metadata": {"labels": {objects.REVISION_NUMBER_LABEL: "99"}}}),
    )
    unlabel = as_user(
        kubeconfig,
        namespace,
        "label",
        "configmap",
        real["metadata"]["name"],
        f"{objects.MANAGED_BY_LABEL}-",
    )
    assert refused(label), label.stderr
    assert refused(change), change.stderr
    assert refused(unlabel), unlabel.stderr
    # The operator still writes, and pods serve only its text.
    apply(kubeconfig, prompt_manifest("p", "edited"), namespace)
    wait_prompt(kubeconfig, namespace, "p")
    assert configmap_text(kubeconfig, namespace, "p") == "edited"
    wait_for(lambda: app.file("p") == b"edited", timeout=15)
    said = create.stderr.strip().split("denied request: ")[-1][:200]
    observed(
        f"create refused ({said}); labelling its own ConfigMap, renumbering the operator's "
        "and removing its label: refused; the operator's edit served 'edited'"
    )


def policy_in_force(kubeconfig: Path, namespace: str) -> None:
    """Wait until the policy refuses USER a ConfigMap with the managed-by label."""
    probe = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "policy-probe",
            "labels": {objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE},
        },
    }

    def refused() -> bool:
        result = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(probe))
        if result.returncode == 0:  # not in force yet: take it away and try again
            kubectl(kubeconfig, "-n", namespace, "delete", "configmap", "policy-probe")
        return result.returncode != 0 and "written by prompt-operator" in result.stderr

    wait_for(refused, timeout=30, message="the policy refuses a labelled ConfigMap")


def ownership_refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "finalizers and ownerReferences" in result.stderr


def served_revision(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    apply(kubeconfig, prompt_manifest(name, "genuine"), namespace)
    wait_prompt(kubeconfig, namespace, name)
    real = current_configmap(kubeconfig, namespace, name)
    assert real is not None
    return real


@pytest.mark.reliability(
    case="S-cm-finalizers",
    did="as a namespace user with every ConfigMap right: add a finalizer to the "
    "operator's revision ConfigMap (it would keep a pruned revision alive), then "
    "remove one that the operator put there",
)
def test_finalizers_of_managed_configmaps_are_the_operators(
    kubeconfig: Path, namespace: str, guarded: str, observed: Observed
) -> None:
    real = served_revision(kubeconfig, namespace, "p")
    name = real["metadata"]["name"]
    policy_in_force(kubeconfig, namespace)

    def finalizers(who: list[str], patch: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        return patch_configmap(kubeconfig, who, namespace, name, "json", patch)

    mallory = [f"--as={USER}"]
    # The operator's identity (with the rights of system:masters for RBAC).
    operator = [f"--as={OPERATOR}", "--as-group=system:masters"]
    add = [{"op": "add", "path": "/metadata/finalizers", "value": ["example.com/keep"]}]
    remove = [{"op": "remove", "path": "/metadata/finalizers"}]
    try:
        added = finalizers(mallory, add)
        assert ownership_refused(added), added.stderr
        cm = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", name)
        assert "finalizers" not in cm["metadata"]
        # Nor may it take away one that the operator put there.
        assert finalizers(operator, add).returncode == 0
        removed = finalizers(mallory, remove)
        assert ownership_refused(removed), removed.stderr
    finally:  # never leave a finalizer behind: the namespace could not go
        cm = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", name)
        if cm["metadata"].get("finalizers"):
            finalizers(operator, remove)
    said = added.stderr.strip().split("denied request: ")[-1][:160]
    observed(f"adding and removing a finalizer: refused ({said})")


@pytest.mark.reliability(
    case="S-cm-ownerrefs",
    did="as a namespace user with every ConfigMap right: remove the owner reference of "
    "the operator's revision ConfigMap (it would outlive its Prompt and stay served), "
    "and point it at another object",
)
def test_owner_references_of_managed_configmaps_are_the_operators(
    kubeconfig: Path, namespace: str, guarded: str, observed: Observed
) -> None:
    real = served_revision(kubeconfig, namespace, "p")
    name = real["metadata"]["name"]
    policy_in_force(kubeconfig, namespace)
    mallory = [f"--as={USER}"]
    unowned = [{"op": "remove", "path": "/metadata/ownerReferences"}]
    remove = patch_configmap(kubeconfig, mallory, namespace, name, "json", unowned)
    other = {**real["metadata"]["ownerReferences"][0], "uid": "00000000-0000-0000-0000-0000000000"}
    owned_elsewhere = {"metadata": {"ownerReferences": [other]}}
    replace = patch_configmap(kubeconfig, mallory, namespace, name, "merge", owned_elsewhere)
    assert ownership_refused(remove), remove.stderr
    assert ownership_refused(replace), replace.stderr
    cm = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", name)
    assert cm["metadata"]["ownerReferences"] == real["metadata"]["ownerReferences"]
    # Deleting the Prompt still deletes its revisions.
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "p")
    wait_for(
        lambda: (
            kubectl(kubeconfig, "-n", namespace, "get", "cm", name, check=False).returncode != 0
        ),
        timeout=30,
        message="the revision goes with its Prompt",
    )
    observed(
        "removing and replacing the owner reference: refused; the revision went with its Prompt"
    )


@pytest.mark.reliability(
    case="S-cm-squat",
    did="as a namespace user: create, before the Prompt exists, an unlabelled ConfigMap "
    "with the name of the revision the Prompt will have (its own key beside the text "
    "key); apply the Prompt; then delete the squatter",
)
def test_the_operator_never_adopts_a_configmap_it_did_not_create(
    kubeconfig: Path, namespace: str, guarded: str, observed: Observed
) -> None:
    # The revision's name, learned as an attacker would: from an earlier Prompt of
    # the same spec (the name is the content hash).
    name = served_revision(kubeconfig, namespace, "p")["metadata"]["name"]
    kubectl(kubeconfig, "-n", namespace, "delete", "prompt", "p")
    wait_for(
        lambda: (
            kubectl(kubeconfig, "-n", namespace, "get", "cm", name, check=False).returncode != 0
        ),
        timeout=30,
        message="the old revision is gone",
    )
    squatter = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": {"planted-by": USER}},
        "data": {objects.TEXT_DATA_KEY: "attacker text", "extra": "planted"},
    }
    made = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(squatter))
    assert made.returncode == 0, made.stderr  # no label: the policy does not match it
    apply(kubeconfig, prompt_manifest("p", "genuine"), namespace)
    prompt = wait_prompt(kubeconfig, namespace, "p", ready=False, reason="ConfigMapTaken")
    ready = next(c for c in prompt["status"]["conditions"] if c["type"] == "Ready")
    assert f"{namespace}/{name}" in ready["message"]
    assert f"delete configmap {name}" in ready["message"]
    events = wait_for(
        lambda: [
            e for e in events_for(kubeconfig, namespace, "p") if e["reason"] == "ConfigMapTaken"
        ],
        timeout=15,
        message="a ConfigMapTaken event",
    )
    assert events[0]["type"] == "Warning"
    cm = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", name)
    assert objects.MANAGED_BY_LABEL not in (cm["metadata"].get("labels") or {})
    assert "ownerReferences" not in cm["metadata"]
    assert cm["data"] == squatter["data"]
    # Its owner deletes it: the operator writes its own on its next look.
    started = time.monotonic()
    kubectl(kubeconfig, "-n", namespace, "delete", "configmap", name)
    wait_prompt(kubeconfig, namespace, "p", timeout=30)
    healed = time.monotonic() - started
    cm = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", name)
    assert cm["data"][objects.TEXT_DATA_KEY] == "genuine" and "extra" not in cm["data"]
    assert cm["metadata"]["labels"][objects.MANAGED_BY_LABEL] == objects.MANAGED_BY_VALUE
    observed(
        f"Ready=False ConfigMapTaken with a Warning event; the squatter untouched; "
        f"Ready {healed:.1f} s after it was deleted"
    )


@pytest.mark.reliability(
    case="S-keys-configmap forged",
    did="as a namespace user with every ConfigMap right: create the signing keys "
    "ConfigMap with the managed-by label and a key of its own, then (once the operator "
    "published its keys) replace its key, remove its label, and delete it and create "
    "an unlabelled one",
)
def test_a_namespace_user_cannot_write_the_signing_keys_configmap(
    kubeconfig: Path, operator_kubeconfig: Path, namespace: str, guarded: str, observed: Observed
) -> None:
    import asyncio

    from prompt_contract import signing
    from prompt_operator.runtime.client import KubeApi
    from prompt_operator.runtime.kubeconfig import load
    from prompt_operator.runtime.leader import AlwaysLeader
    from prompt_operator.signing import KeysPublisher, KeyStore, keyset

    policy_in_force(kubeconfig, namespace)
    own_key = keyset.new_key(0, b"m" * 32)
    forged = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": signing.KEYS_CONFIGMAP,
            "labels": {
                objects.MANAGED_BY_LABEL: objects.MANAGED_BY_VALUE,
                signing.KEYS_LABEL: "true",
            },
        },
        "data": signing.keys_data(keyset.published([own_key], 0)),
    }
    create = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(forged))
    assert create.returncode != 0 and "written by prompt-operator" in create.stderr, create.stderr

    async def publish() -> KeysPublisher:
        leader = AlwaysLeader()
        async with KubeApi(load(operator_kubeconfig).credentials()) as api:
            store = KeyStore(api, namespace, "signing-keys", leader, rotate_after=0)
            await store.refresh()
            publisher = KeysPublisher(api, store, leader)
            assert await publisher.ensure(namespace)
            return publisher

    asyncio.run(publish())
    genuine = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", signing.KEYS_CONFIGMAP)
    replace = patch_configmap(
        kubeconfig,
        [f"--as={USER}"],
        namespace,
        signing.KEYS_CONFIGMAP,
        "merge",
        {"data": forged["data"]},
    )
    unlabel = as_user(
        kubeconfig, namespace, "label", "cm", signing.KEYS_CONFIGMAP, f"{objects.MANAGED_BY_LABEL}-"
    )
    for result in (replace, unlabel):
        assert result.returncode != 0 and "written by prompt-operator" in result.stderr, (
            result.stderr
        )
    now = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", signing.KEYS_CONFIGMAP)
    assert (
        now["data"] == genuine["data"]
        and now["metadata"]["labels"] == genuine["metadata"]["labels"]
    )
    # Deleting is RBAC's; an unlabelled one in its place is trusted by no sidecar.
    assert as_user(kubeconfig, namespace, "delete", "cm", signing.KEYS_CONFIGMAP).returncode == 0
    unlabelled = {**forged, "metadata": {"name": signing.KEYS_CONFIGMAP}}
    squat = as_user(kubeconfig, namespace, "create", "-f", "-", input=json.dumps(unlabelled))
    assert squat.returncode == 0, squat.stderr
    squatted = kubectl_json(kubeconfig, "-n", namespace, "get", "cm", signing.KEYS_CONFIGMAP)
    assert isinstance(signing.parse_keys(squatted), str)  # refused: not labelled
    said = create.stderr.strip().split("denied request: ")[-1][:160]
    observed(
        f"create with the label refused ({said}); replacing the published key and removing "
        "the label: refused; an unlabelled one is not trusted (parse_keys refuses it)"
    )
