"""`make demo`: the whole chain on a local control plane, in about a minute.

1. start the local cluster (etcd, kube-apiserver, kube-controller-manager);
2. install the Prompt CRD and apply the examples;
3. run the operator, and one app "pod": the Pod object, its sidecar, and an
   app process that prints its prompt whenever it changes;
4. apply an edited Prompt with kubectl and show the app printing the new
   text, with the time from `kubectl apply` returning to the app seeing it;
5. show `kubectl get prompts` with delivery 1/1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from prompt_cluster.cluster import LocalCluster
from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    kubectl,
    sidecar_role,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def show(cmd: str, output: str) -> None:
    print(f"{DIM}$ {cmd}{RESET}\n{output.rstrip()}", flush=True)


def main() -> int:
    step("Starting the local control plane (built from Go modules on first use)")
    cluster = LocalCluster()
    state = cluster.up()
    kubeconfig = state.kubeconfig
    print(f"API server {state.server}; export KUBECONFIG={kubeconfig}")

    step("Installing the Prompt CRD and the example Prompts")
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/prompts.prompts.dev")
    kubectl(kubeconfig, "delete", "prompts", "--all", "--wait=true", check=False)
    kubectl(kubeconfig, "delete", "pod", "demo-app", "--wait=false", check=False)
    wait_for(
        lambda: kubectl(kubeconfig, "get", "pod", "demo-app", check=False).returncode != 0,
        timeout=30,
        message="old demo pod gone",
    )
    show(
        "kubectl apply -f examples/",
        kubectl(kubeconfig, "apply", "-f", str(REPO / "examples")).stdout,
    )

    work = Path(tempfile.mkdtemp(prefix="prompt-operator-demo-"))
    operator: OperatorProcess | None = None
    sidecar: SidecarProcess | None = None
    app: subprocess.Popen[str] | None = None
    try:
        step("Starting the operator")
        operator = OperatorProcess(kubeconfig, work / "operator.log", "--delivery-refresh=2")
        operator.start()
        for name in ("support-agent", "invoice-extractor", "tool-schema"):
            kubectl(kubeconfig, "wait", "--for=condition=Ready", f"prompt/{name}", "--timeout=60s")
        show("kubectl get prompts", kubectl(kubeconfig, "get", "prompts").stdout)

        step("Starting an app pod: Pod object + sidecar (own service account, read-only) + app")
        sidecar = SidecarProcess(
            kubeconfig,
            sidecar_role(kubeconfig, "default", work / "sidecar.kubeconfig"),
            "default",
            "demo-app",
            work,
        )
        sidecar.start()
        show(
            f"ls {sidecar.dir}",
            "\n".join(sorted(p.name for p in sidecar.dir.iterdir() if not p.name.startswith("."))),
        )
        app = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "hack" / "demo" / "app.py"),
                str(sidecar.dir),
                "support_agent",
            ],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        lines: list[str] = []

        def pump() -> None:
            assert app.stdout is not None
            for line in app.stdout:
                lines.append(line)
                print(f"    {line.rstrip()}", flush=True)

        threading.Thread(target=pump, daemon=True).start()
        wait_for(lambda: lines, timeout=10, message="the app's first output")

        for tone in ("formal", "playful"):
            step(f"Editing the support agent's prompt (tone: {tone}) with kubectl apply")
            manifest = json.loads(
                kubectl(kubeconfig, "get", "prompt", "support-agent", "-o", "json").stdout
            )
            spec = manifest["spec"]
            spec["template"] = f"[{tone} edition] " + spec["template"].split("] ", 1)[-1]
            edited = {
                "apiVersion": "prompts.dev/v1alpha1",
                "kind": "Prompt",
                "metadata": {
                    "name": "support-agent",
                    "labels": manifest["metadata"].get("labels", {}),
                },
                "spec": spec,
            }
            seen = len(lines)
            kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(edited))
            applied = time.time()
            marker = f"[{tone} edition]"
            line = wait_for(
                lambda seen=seen, marker=marker: next(  # type: ignore[misc]
                    (x for x in lines[seen:] if marker in x), None
                ),
                timeout=10,
                interval=0.002,
                message="the app to print the new prompt",
            )
            latency = (float(line.split()[0]) - applied) * 1000
            print(
                f"{BOLD}    the app had the new text {latency:.0f} ms "
                f"after kubectl apply returned{RESET}"
            )
        step("Every edit is a numbered revision; roll back to the first one")
        cli = [str(Path(sys.executable).parent / "prompt-operator")]
        connection = ["--kubeconfig", str(kubeconfig), "-n", "default"]

        def run_cli(*args: str) -> str:
            done = subprocess.run(
                [*cli, *args, *connection], capture_output=True, text=True, check=True
            )
            return done.stdout

        wait_for(
            lambda: "3 (current)" in run_cli("history", "support-agent"),
            timeout=10,
            message="three revisions in the history",
        )
        show("prompt-operator history support-agent", run_cli("history", "support-agent"))
        show("prompt-operator diff support-agent 2 3", run_cli("diff", "support-agent", "2", "3"))
        seen = len(lines)
        started = time.time()
        rolled_back = run_cli("rollback", "support-agent", "--to", "1")
        finished = time.time()
        show("prompt-operator rollback support-agent --to 1", rolled_back)
        line = wait_for(
            lambda: next((x for x in lines[seen:] if "edition]" not in x), None),
            timeout=10,
            interval=0.002,
            message="the app to print the original prompt",
        )
        latency = (float(line.split()[0]) - finished) * 1000
        when = f"{latency:.0f} ms after" if latency >= 0 else f"{-latency:.0f} ms before"
        print(
            f"{BOLD}    the app had the original text back {when} the rollback command "
            f"exited (the command itself, Python and kubectl, took "
            f"{(finished - started) * 1000:.0f} ms){RESET}"
        )

        def all_delivered() -> bool:
            rows = kubectl(kubeconfig, "get", "prompts", "--no-headers").stdout.splitlines()
            return bool(rows) and all(" 1/1 " in row for row in rows)

        wait_for(all_delivered, timeout=30, message="every Prompt delivered to the app pod")
        show("kubectl get prompts", kubectl(kubeconfig, "get", "prompts").stdout)
        show(
            "kubectl get prompt greeting -o jsonpath='{.status.variants}'  # the A/B split",
            kubectl(
                kubeconfig, "get", "prompt", "greeting", "-o", "jsonpath={.status.variants}"
            ).stdout,
        )
        show(
            "kubectl get prompt support-agent -o jsonpath='{.status.conditions}'",
            json.dumps(
                json.loads(
                    kubectl(
                        kubeconfig,
                        "get",
                        "prompt",
                        "support-agent",
                        "-o",
                        "jsonpath={.status.conditions}",
                    ).stdout
                ),
                indent=2,
            ),
        )
    finally:
        if app is not None:
            app.terminate()
            app.wait()
        if sidecar is not None:
            sidecar.stop()
        if operator is not None:
            operator.stop()
    step("Done")
    print(
        f"The cluster is still up: export KUBECONFIG={kubeconfig}\n"
        f"Logs: {work}\nStop it with: make demo-down"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
