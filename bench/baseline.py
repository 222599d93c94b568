"""The strongest common alternative that runs here: a watch-based sidecar, the
pattern of kiwigrid's k8s-sidecar. It watches labelled ConfigMaps and writes
each one's data to a file (write-then-rename, so readers see whole files).

With one ConfigMap per revision, it writes ``prompt-<Prompt>.txt`` from every
revision whose number is the highest it has seen for that Prompt (so it keeps
up with edits, the figure compared), and ignores deletions (pruned history).

Usage: python -m bench.baseline KUBECONFIG NAMESPACE DIR [NAME]; with
PROMPT_TRACE_FILE set it stamps when each watch event arrived and when its file
was renamed into place, as NAME, like our sidecar does.
"""

from __future__ import annotations

import json
import os
import sys

from prompt_contract import hops, objects
from prompt_sidecar.kubeapi import KubeClient

SELECTOR = "prompts.dev/managed-by=prompt-operator"


def main(kubeconfig: str, namespace: str, directory: str, pod: str = "") -> None:
    hops.enable(os.environ.get("PROMPT_TRACE_FILE"))
    client = KubeClient.from_environment(kubeconfig)
    auth, path = client._auth, f"/api/v1/namespaces/{namespace}/configmaps"
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(auth.server)
    highest: dict[str, int] = {}
    while True:
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, context=auth.context, timeout=None
        )
        headers = {"Authorization": f"Bearer {auth.token}"} if auth.token else {}
        conn.request("GET", f"{path}?watch=true&labelSelector={SELECTOR}", headers=headers)
        resp = conn.getresponse()
        for line in resp:
            event = json.loads(line)
            cm = event["object"]
            prompt = cm["metadata"].get("annotations", {}).get(objects.PROMPT_ANNOTATION, "")
            number = objects.revision_number_of(cm)
            if event["type"] == "DELETED" or not prompt or number < highest.get(prompt, 0):
                continue
            highest[prompt] = number
            hops.mark(hops.RECEIVED, f"{namespace}/{prompt}", "", pod)
            name = f"prompt-{prompt}"
            target = os.path.join(directory, name + ".txt")
            tmp = os.path.join(directory, "." + name + ".tmp")
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                handle.write((cm.get("data") or {}).get("prompt", ""))
            os.rename(tmp, target)
            hops.mark(hops.RENAMED, f"{namespace}/{prompt}", "", pod)
        conn.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
