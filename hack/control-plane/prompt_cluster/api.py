"""A small API client for load and fault tests: keep-alive HTTPS, standard library.

Edits go through one connection, not one kubectl process each (whose start-up
would dominate a benchmark, and which is not how a program edits). A connection
the server closed (idle, or the API server restarted) is opened again once.
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
    """The admin's client (the local cluster's kubeconfig: client certificates)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self._context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self._context.load_cert_chain(user["client-certificate"], user["client-key"])
        parts = urlsplit(cluster["server"])
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 443
        self._conn = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=60
        )

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> None:
        try:
            self._conn.request(method, path, body=data, headers=headers)
        except (OSError, http.client.HTTPException):
            self._conn.close()  # closed by the server while idle, or it restarted
            self._conn = self._connect()
            self._conn.request(method, path, body=data, headers=headers)

    def close(self) -> None:
        self._conn.close()

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        self._send(method, path, data, headers)
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
        self._send("GET", "/metrics", None, {})
        resp = self._conn.getresponse()
        return resp.read().decode()
