"""A newcomer's first app, exactly as the NOTES and examples/ say: a default
`helm install`, the Prompt the NOTES print, examples/app/deployment.yaml, then
an edit with `kubectl apply -f examples/support-agent.yaml`.

The module installs the chart under the name and namespace the user-install
tests use, and uninstalls it afterwards so they start from a clean cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from prompt_cluster.testing import kubectl, kubectl_json, wait_for

from .helpers import OPERATOR_NAMESPACE, RELEASE, REPO, Node, apply, logs, pods

pytestmark = pytest.mark.timeout(1800)

EXAMPLE_APP = REPO / "examples" / "app" / "deployment.yaml"
EXAMPLE_PROMPT = REPO / "examples" / "support-agent.yaml"
NAMESPACE = "default"  # where a user without -n applies, and the chart's default sidecar namespace
ELSEWHERE = "first-app-elsewhere"


@pytest.fixture(scope="module")
def default_install(real_node: Node) -> Iterator[Node]:
    """`helm install` with nothing set but the namespace, as the README says."""
    real_node.helm_run(
        "install", RELEASE, str(real_node.chart), "--namespace", OPERATOR_NAMESPACE,
        "--create-namespace", "--wait", "--timeout=5m",
    )  # fmt: skip
    yield real_node
    kubeconfig = real_node.kubeconfig
    kubectl(kubeconfig, "-n", NAMESPACE, "delete", "deployment", "first-app", "--wait", check=False)
    kubectl(kubeconfig, "-n", NAMESPACE, "delete", "prompt", "support-agent", check=False)
    kubectl(kubeconfig, "delete", "namespace", ELSEWHERE, "--wait=false", check=False)
    real_node.helm_run("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")
    # The garbage collector removes the pods after their Deployments: the next
    # module counts the operator's pods, so wait until they are gone.
    for namespace, selector in (
        (OPERATOR_NAMESPACE, "app.kubernetes.io/name=prompt-operator"),
        (NAMESPACE, "app=first-app"),
    ):
        kubectl(
            kubeconfig, "-n", namespace, "wait", "--for=delete", "pod", "-l", selector,
            "--timeout=120s", timeout=150,
        )  # fmt: skip


def heredocs(notes: str) -> list[dict[str, Any]]:
    """The manifests the NOTES tell the user to paste (`kubectl apply -f - <<'EOF'`)."""
    bodies = re.findall(r"^kubectl apply -f - <<'EOF'\n(.*?)^EOF$", notes, flags=re.S | re.M)
    return [yaml.safe_load(body) for body in bodies]


def app_log(kubeconfig: Any) -> str:
    found = [
        p
        for p in pods(kubeconfig, NAMESPACE, "app=first-app")
        if not p["metadata"].get("deletionTimestamp")
    ]
    if len(found) != 1:
        return ""
    result = kubectl(
        kubeconfig, "-n", NAMESPACE, "logs", found[0]["metadata"]["name"], "-c", "app", check=False
    )
    return result.stdout if result.returncode == 0 else ""


def test_the_first_app_runs_as_the_notes_say_and_sees_an_edit(default_install: Node) -> None:
    kubeconfig = default_install.kubeconfig
    notes = default_install.helm_run("get", "notes", RELEASE, "-n", OPERATOR_NAMESPACE).stdout
    assert "prompts.dev/inject" in notes and "prompt-sidecar" in notes, notes
    prompt, app = heredocs(notes)
    # The NOTES print the example itself, with the image this release runs.
    assert app == yaml.safe_load(EXAMPLE_APP.read_text()), "NOTES and examples/app/ differ"
    # As the user pastes it (no -n: the kubeconfig's namespace, default).
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(prompt))
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "prompt/support-agent", "--timeout=60s")
    kubectl(kubeconfig, "apply", "-f", str(EXAMPLE_APP))
    kubectl(kubeconfig, "rollout", "status", "deploy/first-app", "--timeout=180s", timeout=210)
    first = "You are the support agent for Acme Cloud. You are talking to Ada."
    wait_for(
        lambda: first in app_log(kubeconfig),
        timeout=60,
        interval=0.5,
        message=lambda: f"the app to print its prompt; its log: {app_log(kubeconfig)!r}",
    )
    (pod,) = pods(kubeconfig, NAMESPACE, "app=first-app")
    init = {c["name"]: c for c in pod["spec"]["initContainers"]}
    assert init["prompt-sidecar"]["restartPolicy"] == "Always"
    # The edit: the repository's example of the same Prompt, with more text.
    kubectl(kubeconfig, "apply", "-f", str(EXAMPLE_PROMPT))
    wait_for(
        lambda: "Keep a friendly tone" in app_log(kubeconfig),
        timeout=60,
        interval=0.2,
        message=lambda: f"the app to print the edit; its log: {app_log(kubeconfig)!r}",
    )
    (pod,) = pods(kubeconfig, NAMESPACE, "app=first-app")
    # Seen without a restart: the same process printed both.
    assert all(s["restartCount"] == 0 for s in pod["status"]["containerStatuses"])
    log = logs(kubeconfig, NAMESPACE, pod["metadata"]["name"], "app")
    assert log.index(first) < log.index("Keep a friendly tone"), log


def test_a_pod_that_could_not_read_its_prompts_is_refused_saying_what_to_set(
    default_install: Node,
) -> None:
    kubeconfig = default_install.kubeconfig
    template = yaml.safe_load(EXAMPLE_APP.read_text())["spec"]["template"]
    kubectl(kubeconfig, "create", "namespace", ELSEWHERE, check=False)

    def refusal(namespace: str, pod_spec: dict[str, Any]) -> str:
        """kubectl's error for creating the pod (a server-side dry run: nothing is made)."""
        labels = template["metadata"]["labels"]
        metadata = {"name": "first-app-try", "labels": labels}
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
        result = kubectl(
            kubeconfig, "-n", namespace, "create", "--dry-run=server", "-f", "-",
            input=json.dumps(manifest), check=False,
        )  # fmt: skip
        return result.stderr

    def webhook_refusal(namespace: str, pod_spec: dict[str, Any]) -> str | None:
        # Until the webhook's Service answers (and the namespace's default account
        # exists), the API server answers instead.
        answer = refusal(namespace, pod_spec)
        return answer if "prompt sidecar not injected" in answer else None

    # The example in a namespace without the chart's account: the API server's own
    # ServiceAccount admission refuses it, naming the account (docs/first-app.md).
    missing = refusal(ELSEWHERE, template["spec"])
    assert missing and 'serviceaccount "prompt-sidecar" not found' in missing, missing
    # Without serviceAccountName the pod would run as 'default' and never start:
    # the webhook refuses it and says what to set.
    without_account = {k: v for k, v in template["spec"].items() if k != "serviceAccountName"}
    message = wait_for(
        lambda: webhook_refusal(NAMESPACE, without_account), timeout=60, interval=0.5,
        message="the webhook to refuse a pod on the default service account",
    )  # fmt: skip
    assert "serviceAccountName: prompt-sidecar" in message, message
    elsewhere = wait_for(
        lambda: webhook_refusal(ELSEWHERE, without_account), timeout=30, interval=0.5
    )
    assert f"--set 'sidecar.namespaces={{default,{ELSEWHERE}}}'" in elsewhere, elsewhere
    # Nothing was created.
    assert kubectl_json(kubeconfig, "-n", ELSEWHERE, "get", "pods")["items"] == []


# --- #26: a chat Prompt with a model configuration and an included snippet -------

SNIPPET = {
    "apiVersion": "prompts.dev/v1alpha1",
    "kind": "Prompt",
    "metadata": {"name": "safety-preamble"},
    "spec": {"template": "Never share account passwords."},
}


def chat_prompt(temperature: float) -> dict[str, Any]:
    return {
        "apiVersion": "prompts.dev/v1alpha1",
        "kind": "Prompt",
        "metadata": {"name": "support-chat"},
        "spec": {
            "key": "support_chat",
            "variables": [{"name": "customer_name"}],
            "includes": [{"name": "safety", "prompt": "safety-preamble"}],
            "messages": [
                {"role": "system", "content": "You help {customer_name}. {safety}"},
                {"role": "placeholder", "name": "history"},
            ],
            "model": {
                "name": "gpt-4o-mini",
                "parameters": {"temperature": temperature, "max_tokens": 256},
                "tools": [
                    {
                        "name": "lookup_order",
                        "description": "Find an order by its id",
                        "parameters": {
                            "type": "object",
                            "properties": {"order_id": {"type": "string"}},
                            "required": ["order_id"],
                        },
                    }
                ],
            },
        },
    }


# The app prints, on start and after every change, the arguments it would pass
# to an OpenAI-style chat.completions.create, as one JSON line.
CHAT_APP_SCRIPT = """
import json, queue
from prompt_client import create_prompt_registry

prompts = create_prompt_registry()
changed = queue.Queue()
prompts.on_change(lambda name, revision: changed.put(name))
while True:
    session = prompts.snapshot()
    if "support_chat" in session:
        call = session.call(
            "support_chat",
            placeholders={"history": [{"role": "user", "content": "Where is my order?"}]},
            customer_name="Ada",
        )
        line = {"revision": session.info("support_chat").revision, "args": call.openai()}
        print("CALL " + json.dumps(line, sort_keys=True), flush=True)
    while changed.get() != "support_chat":
        pass
"""


def chat_app(image: str) -> dict[str, Any]:
    app = yaml.safe_load(EXAMPLE_APP.read_text())
    app["metadata"] = {"name": "chat-app", "labels": {"app": "chat-app"}}
    app["spec"]["selector"] = {"matchLabels": {"app": "chat-app"}}
    template = app["spec"]["template"]
    template["metadata"]["labels"]["app"] = "chat-app"
    (container,) = template["spec"]["containers"]
    container["args"] = [CHAT_APP_SCRIPT]
    container["image"] = image
    return app


def calls_printed(kubeconfig: Any) -> list[dict[str, Any]]:
    found = [
        p
        for p in pods(kubeconfig, NAMESPACE, "app=chat-app")
        if not p["metadata"].get("deletionTimestamp")
    ]
    if len(found) != 1:
        return []
    result = kubectl(
        kubeconfig, "-n", NAMESPACE, "logs", found[0]["metadata"]["name"], "-c", "app", check=False
    )
    lines = result.stdout.splitlines() if result.returncode == 0 else []
    return [json.loads(line[5:]) for line in lines if line.startswith("CALL ")]


def printed_call(
    kubeconfig: Any, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The first call the chat app printed whose arguments match."""
    return next((c for c in calls_printed(kubeconfig) if matches(c["args"])), None)


def delivered(kubeconfig: Any, name: str, revision: str) -> bool:
    status = kubectl_json(kubeconfig, "-n", NAMESPACE, "get", "prompt", name).get("status", {})
    delivery = status.get("delivery") or {}
    return (
        status.get("revision") == revision
        and delivery.get("subscribed", 0) > 0
        and delivery.get("updated") == delivery.get("subscribed")
    )


def test_an_app_reads_a_chat_prompt_with_its_model_and_sees_each_edit(
    default_install: Node,
) -> None:
    kubeconfig = default_install.kubeconfig
    (container,) = yaml.safe_load(EXAMPLE_APP.read_text())["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    apply(kubeconfig, NAMESPACE, SNIPPET)
    apply(kubeconfig, NAMESPACE, chat_prompt(0.2))
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "prompt/support-chat", "--timeout=60s")
    apply(kubeconfig, NAMESPACE, chat_app(image))
    try:
        kubectl(kubeconfig, "rollout", "status", "deploy/chat-app", "--timeout=180s", timeout=210)
        first = wait_for(
            lambda: calls_printed(kubeconfig)[-1:] or None,
            timeout=60, interval=0.5,
            message=lambda: f"the chat app to print its call: {calls_printed(kubeconfig)}",
        )[0]  # fmt: skip
        args = first["args"]
        assert args["model"] == "gpt-4o-mini" and args["temperature"] == 0.2, args
        assert args["max_tokens"] == 256, args
        assert args["messages"] == [
            {"role": "system", "content": "You help Ada. Never share account passwords."},
            {"role": "user", "content": "Where is my order?"},
        ], args
        (tool,) = args["tools"]
        assert tool["type"] == "function" and tool["function"]["name"] == "lookup_order", tool

        # An edit of the temperature alone: a new revision, delivered to every pod.
        apply(kubeconfig, NAMESPACE, chat_prompt(0.7))
        second = wait_for(
            lambda: printed_call(kubeconfig, lambda args: args["temperature"] == 0.7),
            timeout=60, interval=0.2,
            message=lambda: f"the chat app to see temperature 0.7: {calls_printed(kubeconfig)}",
        )  # fmt: skip
        assert second["revision"] != first["revision"]
        assert second["args"]["messages"] == args["messages"]
        wait_for(
            lambda: delivered(kubeconfig, "support-chat", second["revision"]),
            timeout=60, interval=0.5, message="delivery N/N of the temperature edit",
        )  # fmt: skip

        # An edit of the included snippet: the includer gets a new revision, and the app sees it.
        apply(
            kubeconfig,
            NAMESPACE,
            {**SNIPPET, "spec": {"template": "Never share passwords or card numbers."}},
        )
        third = wait_for(
            lambda: printed_call(
                kubeconfig, lambda args: "card numbers" in args["messages"][0]["content"]
            ),
            timeout=60, interval=0.2,
            message=lambda: f"the chat app to see the new snippet: {calls_printed(kubeconfig)}",
        )  # fmt: skip
        assert third["revision"] not in (first["revision"], second["revision"])
        assert third["args"]["temperature"] == 0.7
        wait_for(
            lambda: delivered(kubeconfig, "support-chat", third["revision"]),
            timeout=60, interval=0.5, message="delivery N/N of the snippet edit",
        )  # fmt: skip
        (pod,) = pods(kubeconfig, NAMESPACE, "app=chat-app")
        assert all(s["restartCount"] == 0 for s in pod["status"]["containerStatuses"])
    finally:
        kubectl(
            kubeconfig, "-n", NAMESPACE, "delete", "deployment", "chat-app", "--wait", check=False
        )
        kubectl(
            kubeconfig, "-n", NAMESPACE, "delete", "prompt", "support-chat", "safety-preamble",
            check=False,
        )  # fmt: skip
        kubectl(
            kubeconfig, "-n", NAMESPACE, "wait", "--for=delete", "pod", "-l", "app=chat-app",
            "--timeout=120s", timeout=150, check=False,
        )  # fmt: skip
