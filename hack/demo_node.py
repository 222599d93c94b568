"""`make demo-node`: the product as a user installs it, on a real node.

1. build the images from the Dockerfiles (a Debian base with mmdebstrap,
   then buildah; cached, so only the first run takes minutes);
2. start the local cluster with its node (containerd, kubelet, kube-proxy,
   CoreDNS) and load the images into it;
3. `helm install` the chart with its default values;
4. deploy the demo app labelled for injection and show its pod with the
   sidecar, and the prompt it printed at start;
5. apply an edited Prompt with kubectl and show the app printing the new text.

Needs root (the node makes a bridge and network namespaces). `make demo-down`
stops it all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from prompt_cluster import images
from prompt_cluster.build import ensure_binaries
from prompt_cluster.cluster import ClusterError, LocalCluster
from prompt_cluster.testing import kubectl, prompt_manifest, wait_for

REPO = Path(__file__).resolve().parent.parent
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
NAMESPACE = "default"


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def show(cmd: str, output: str) -> None:
    print(f"{DIM}$ {cmd}{RESET}\n{output.rstrip()}", flush=True)


def app_deployment() -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-app", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "demo-app"}},
            "template": {
                "metadata": {"labels": {"app": "demo-app", "prompts.dev/inject": "true"}},
                "spec": {
                    "serviceAccountName": "prompt-sidecar",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": images.DEMO_APP_REF,
                            "imagePullPolicy": "Never",
                            "args": ["/prompts", "support_agent"],
                        }
                    ],
                },
            },
        },
    }


def app_log(kubeconfig: Path) -> str:
    return kubectl(kubeconfig, "logs", "deploy/demo-app", "-c", "app").stdout


def main() -> int:
    step("Building the images (Dockerfile on a Debian base; cached after the first run)")
    for archive, tag in (images.operator_image(), images.demo_app_image()):
        print(f"{archive.name}  ({archive.stat().st_size / 1e6:.0f} MB, tag {tag})")

    step("Starting the local cluster with a real node")
    cluster = LocalCluster()
    try:
        state = cluster.up(node=True)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kubeconfig = state.kubeconfig
    images.load_into_node(Path(state.binaries["ctr"]), cluster.state_dir)
    print(f"API server {state.server}; export KUBECONFIG={kubeconfig}")
    show("kubectl get nodes", kubectl(kubeconfig, "get", "nodes", "-o", "wide").stdout)

    step("helm install prompt-operator (the chart's defaults, image built here)")
    helm = ensure_binaries().helm
    subprocess.run(
        [str(helm), f"--kubeconfig={kubeconfig}", "upgrade", "--install", "prompt-operator",
         str(REPO / "charts" / "prompt-operator"), "--namespace", "prompt-system",
         "--create-namespace", "--set", f"sidecar.namespaces={{{NAMESPACE}}}",
         "--wait", "--timeout=5m"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    show(
        "kubectl -n prompt-system get pods",
        kubectl(kubeconfig, "-n", "prompt-system", "get", "pods").stdout,
    )

    step("An app labelled prompts.dev/inject=true: the webhook adds the sidecar")
    kubectl(kubeconfig, "delete", "deployment", "demo-app", "--wait=true", check=False)
    kubectl(kubeconfig, "apply", "-f", str(REPO / "examples" / "support-agent.yaml"))
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(app_deployment()))
    kubectl(kubeconfig, "rollout", "status", "deploy/demo-app", "--timeout=120s", timeout=150)
    show("kubectl get pods", kubectl(kubeconfig, "get", "pods", "-o", "wide").stdout)
    show(
        "kubectl get pod -l app=demo-app -o jsonpath=...  # init (native sidecar) and app",
        kubectl(
            kubeconfig, "get", "pod", "-l", "app=demo-app", "-o",
            "jsonpath={range .items[*].spec.initContainers[*]}sidecar: {.name} "
            "(restartPolicy {.restartPolicy}){\"\\n\"}{end}"
            "{range .items[*].spec.containers[*]}app:     {.name}{\"\\n\"}{end}",
        ).stdout,
    )  # fmt: skip
    wait_for(lambda: app_log(kubeconfig).strip(), timeout=30, message="the app's first line")
    show("kubectl logs deploy/demo-app -c app  # printed at start", app_log(kubeconfig))

    step("Editing the Prompt with kubectl apply; the app prints the new text")
    edited = prompt_manifest(
        "support-agent",
        "You are the support agent for ACME. Edited live at the demo.",
        key="support_agent",
    )
    before = app_log(kubeconfig)
    started = time.monotonic()
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(edited))
    wait_for(
        lambda: "Edited live" in app_log(kubeconfig), timeout=30, interval=0.05,
        message="the app to print the edited prompt",
    )  # fmt: skip
    seen = time.monotonic() - started
    show("kubectl logs deploy/demo-app -c app", app_log(kubeconfig)[len(before) :])
    print(f"seen by the app {seen:.2f}s after `kubectl apply` was started (includes kubectl)")
    wait_for(
        lambda: " 1/1 " in kubectl(kubeconfig, "get", "prompt", "support-agent").stdout,
        timeout=60, message="delivery 1/1",
    )  # fmt: skip
    show("kubectl get prompts", kubectl(kubeconfig, "get", "prompts").stdout)

    step("Done")
    print(f"The cluster is still up: export KUBECONFIG={kubeconfig}\nStop it with: make demo-down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
