"""The user's credentials from a kubeconfig, as kubectl reads them.

Supported: a current or named context; the cluster's CA (file or data) or
``insecure-skip-tls-verify``; a bearer token (inline or ``tokenFile``), client
certificates (files or data), or basic auth. An ``exec`` or ``auth-provider``
plugin is refused with a message saying so, rather than silently connecting
without credentials.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..runtime.client import Credentials


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    credentials: Credentials
    namespace: str  # the context's namespace, or "default"
    context: str
    user: str  # the kubeconfig's user entry name (shown in the page header)


def default_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _named(config: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    for item in config.get(section) or []:
        if isinstance(item, Mapping) and item.get("name") == name:
            inner = item.get(section[:-1])  # clusters -> cluster
            return dict(inner) if isinstance(inner, Mapping) else {}
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base.parent / path


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        context.load_verify_locations(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=str(_resolve(base, cluster["certificate-authority"])))
    if user.get("client-certificate-data") and user.get("client-key-data"):
        # ssl loads a chain from files only: a private temporary directory, removed at once.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
            for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                path.touch(mode=0o600)
                path.write_bytes(base64.b64decode(user[field]))
            context.load_cert_chain(str(cert), str(key))
    elif user.get("client-certificate") and user.get("client-key"):
        context.load_cert_chain(
            str(_resolve(base, user["client-certificate"])), str(_resolve(base, user["client-key"]))
        )
    return context


def load(path: Path | None = None, context: str | None = None) -> Target:
    """The API server, credentials and namespace of ``context`` (default: current)."""
    path = path or default_path()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(config, Mapping):
        raise KubeconfigError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {path} has no current-context; pass --context")
    ctx = _named(config, "contexts", str(name))
    cluster = _named(config, "clusters", str(ctx.get("cluster")))
    user_name = str(ctx.get("user") or "")
    user = _named(config, "users", user_name) if user_name else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(
            f"kubeconfig user {user_name!r} uses an exec or auth-provider plugin, which the "
            "console does not run; use a context with a token or client certificate "
            "(for example one made with `kubectl create token`)"
        )
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    headers: dict[str, str] = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _resolve(path, user["tokenFile"]).read_text().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user.get("username") and user.get("password"):
        pair = f"{user['username']}:{user['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return Target(
        credentials=Credentials(
            server=server, ssl=_ssl_context(cluster, user, path), headers=headers
        ),
        namespace=str(ctx.get("namespace") or "default"),
        context=str(name),
        user=user_name,
    )
