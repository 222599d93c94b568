"""One API client for the load: keep-alive HTTPS from the standard library.

Edits go through one connection, not one kubectl process each (whose start-up
would dominate); the client's own time per request is reported.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        parts = urlsplit(cluster["server"])
        self._conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, context=ctx, timeout=60
        )

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        self._conn.request(method, path, body=data, headers=headers)
        resp = self._conn.getresponse()
        raw = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def create_prompt(self, namespace: str, name: str, template: str) -> None:
        self.request(
            "POST",
            f"/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts",
            {
                "apiVersion": "prompts.dev/v1alpha1",
                "kind": "Prompt",
                "metadata": {"name": name},
                "spec": {"template": template, "format": "raw"},
            },
        )

    def edit_prompt(self, namespace: str, name: str, template: str) -> None:
        self.request(
            "PATCH",
            f"/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts/{name}",
            {"spec": {"template": template}},
            "application/merge-patch+json",
        )

    def prompts(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            page = self.request(
                "GET",
                f"/apis/prompts.dev/v1alpha1/namespaces/{namespace}/prompts"
                f"?limit=500{'&continue=' + cont if cont else ''}",
            )
            items += page["items"]
            cont = page["metadata"].get("continue", "")
            if not cont:
                return items

    def metrics(self) -> str:
        self._conn.request("GET", "/metrics")
        resp = self._conn.getresponse()
        return resp.read().decode()
