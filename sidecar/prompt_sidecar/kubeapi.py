"""A minimal, synchronous Kubernetes API client on the standard library.

The sidecar runs in every app pod, so it stays small: ``http.client`` with one
kept-alive TLS connection, JSON, and pyyaml for kubeconfig files. The full
``kubernetes`` client costs more memory on import than this whole process.
It needs two calls: get one ConfigMap (from etcd, or from the API server's
watch cache), list ConfigMaps by label selector.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

TYPE_CHECKING = False  # typing costs every pod 0.4 MiB; annotations here are strings (PEP 563)
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# ConfigMaps per page of a list: a page (about 90 KB of JSON at 2 KiB prompts)
# and what parsing it makes are all a list holds at once. Measured at 1,000
# files, 25 keeps a sidecar 0.45 MiB below pages of 50, for twice the requests
# of the same total size; 10 saves only 0.1 MiB more.
PAGE_SIZE = 25


class ApiError(Exception):
    """The API server could not be reached or answered with an error."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    """404: the object does not exist (a fact, unlike a failed call)."""


class Expired(ApiError):
    """410: a list's continue token expired; the list must start over."""


def _error_for(status: int, path: str, body: bytes) -> ApiError:
    """A typed error whose message says what to do, without echoing much of the body."""
    if status == 404:
        return NotFound(f"not found: {path}", status)
    if status == 410:
        return Expired(f"list expired, start again: {path}", status)
    detail = body[:300].decode(errors="replace")
    if status in (401, 403):
        return ApiError(
            f"API server answered {status} for {path}: the sidecar needs get and list on "
            f"configmaps in its own namespace (a Role bound to the pod's service account): "
            f"{detail}",
            status,
        )
    return ApiError(f"API server answered {status} for {path}: {detail}", status)


@dataclass
class _Auth:
    server: str
    context: ssl.SSLContext
    token: str | None = None
    token_file: str | None = None


def _material(data: str | None, path: str | None, base_dir: str) -> bytes | None:
    if data:
        return base64.b64decode(data)
    if path:
        full = path if os.path.isabs(path) else os.path.join(base_dir, path)
        with open(full, "rb") as handle:
            return handle.read()
    return None


def _context(
    ca: bytes | None, cert: bytes | None, key: bytes | None, insecure: bool
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert and key:
        # ssl can only load a client certificate from files: write them privately,
        # load them, and remove them at once.
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = os.path.join(tmp, "c"), os.path.join(tmp, "k")
            for path, content in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
            context.load_cert_chain(cert_path, key_path)
    return context


def parse_kubeconfig(text: str) -> Any:
    """A kubeconfig file's content. JSON (which is YAML too) is read without loading
    the YAML parser, which a sidecar in a pod (service account, no kubeconfig) never
    needs; anything else is YAML."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML's flow style, not JSON
    try:
        import yaml
    except ImportError:  # the sidecar distribution does not require PyYAML
        raise ApiError(
            "this kubeconfig is YAML, which needs PyYAML: install "
            "prompt-operator-sidecar[kubeconfig], or pass a kubeconfig written as JSON"
        ) from None
    return yaml.safe_load(text) or {}


def load_kubeconfig(path: str) -> _Auth:
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        config = parse_kubeconfig(handle.read())
    if not isinstance(config, dict):
        raise ApiError(f"kubeconfig {path}: not a mapping of clusters, users and contexts")
    base_dir = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    context = contexts.get(config.get("current-context", ""), {})
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters.get(context.get("cluster", ""), {})
    user = users.get(context.get("user", ""), {})
    if not cluster.get("server"):
        raise ApiError(f"kubeconfig {path}: no server in the current context")
    ctx = _context(
        _material(
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority"),
            base_dir,
        ),
        _material(user.get("client-certificate-data"), user.get("client-certificate"), base_dir),
        _material(user.get("client-key-data"), user.get("client-key"), base_dir),
        bool(cluster.get("insecure-skip-tls-verify")),
    )
    return _Auth(cluster["server"], ctx, token=user.get("token"), token_file=user.get("tokenFile"))


def in_cluster() -> _Auth:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not os.path.exists(os.path.join(SERVICE_ACCOUNT_DIR, "token")):
        raise ApiError(
            "no credentials: not running in a pod with a service account token "
            "(mount one into the sidecar) and no --kubeconfig / KUBECONFIG given"
        )
    with open(os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"), "rb") as handle:
        ca = handle.read()
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return _Auth(
        server,
        _context(ca, None, None, False),
        token_file=os.path.join(SERVICE_ACCOUNT_DIR, "token"),
    )


class KubeClient:
    """GET and paginated LIST over one kept-alive connection (thread-safe)."""

    def __init__(self, auth: _Auth, timeout: float = 10.0) -> None:
        self._auth = auth
        self._timeout = timeout
        parts = urlsplit(auth.server)
        self._host = parts.hostname or "localhost"
        self._plain = parts.scheme == "http"  # only ever seen behind `kubectl proxy`
        self._port = parts.port or (80 if self._plain else 443)
        self._prefix = parts.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._token: str | None = auth.token
        self._token_read = 0.0

    @classmethod
    def from_environment(cls, kubeconfig: str | None) -> KubeClient:
        path = kubeconfig or os.environ.get("KUBECONFIG")
        auth = load_kubeconfig(path.split(os.pathsep)[0]) if path else in_cluster()
        return cls(auth)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "prompt-operator-sidecar"}
        if self._auth.token_file and (
            self._token_read == 0.0 or time.monotonic() - self._token_read > 60
        ):
            # Projected tokens rotate; the kubelet rewrites the file.
            try:
                with open(self._auth.token_file, encoding="utf-8") as handle:
                    self._token = handle.read().strip()
            except OSError as exc:
                raise ApiError(f"cannot read the token {self._auth.token_file}: {exc}") from exc
            self._token_read = time.monotonic()
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _request(self, path: str) -> Any:
        with self._lock:
            for attempt in (0, 1):
                if self._conn is None:
                    self._conn = (
                        http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                        if self._plain
                        else http.client.HTTPSConnection(
                            self._host,
                            self._port,
                            context=self._auth.context,
                            timeout=self._timeout,
                        )
                    )
                try:
                    self._conn.request("GET", self._prefix + path, headers=self._headers())
                    resp = self._conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._conn.close()
                    self._conn = None
                    if attempt == 0 and isinstance(
                        exc,
                        (
                            http.client.RemoteDisconnected,
                            BrokenPipeError,
                            ConnectionResetError,
                            http.client.CannotSendRequest,
                        ),
                    ):
                        continue  # a kept-alive connection the server closed; retry once
                    raise ApiError(f"API server unreachable: {exc}") from exc
                if resp.status == 401:
                    self._token_read = 0.0  # a rotated token: read the file again next time
                if resp.status >= 400:
                    raise _error_for(resp.status, path, body)
                try:
                    return json.loads(body)
                except (ValueError, RecursionError) as exc:
                    # Not the API server (a proxy's page?): a failed call like any other.
                    raise ApiError(f"API server sent no JSON for {path}: {exc}") from None
        raise ApiError("unreachable")  # pragma: no cover

    def get_configmap(self, namespace: str, name: str, *, cached: bool = False) -> dict[str, Any]:
        """One ConfigMap; ``cached`` reads the API server's watch cache instead of etcd.

        A cached answer (``resourceVersion=0``: any version the server holds) costs
        no etcd read but may lag: a ConfigMap just created may be missing (404) and
        its labels may be older than the last change. Only a caller that can tell
        which answers are safe to act on should ask for one.
        """
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"
        result: dict[str, Any] = self._request(path + "?resourceVersion=0" if cached else path)
        return result

    def list_configmaps(
        self, namespace: str, label_selector: str, page_size: int = PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of ConfigMaps; small pages keep the sidecar's memory flat.

        All pages come from one snapshot (the continue token pins it); when the
        token expires midway this raises ``Expired`` and the caller lists again.
        """
        query = {"labelSelector": label_selector, "limit": str(page_size)}
        while True:
            page = self._request(
                f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps?{urlencode(query)}"
            )
            yield list(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return
            query["continue"] = cont

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
