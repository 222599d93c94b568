"""Where the API server is and who we are to it: the one reader of credentials.

The operator, the console and the CLI (history, diff, rollback) all read their
credentials here and talk through ``client.KubeApi``; kopf is handed the same
credentials by the operator's login handler, so it reads no kubeconfig itself.
Two readers stay apart on purpose: the sidecar's (``prompt_sidecar.kubeapi``,
standard library only, for its memory budget) and the test harness's
(``prompt_cluster.api``, test tooling that reads the kubeconfig it wrote).

Read as kubectl reads them: ``--kubeconfig`` or ``$KUBECONFIG`` (a list of
files merged, the first to name a thing wins), else ``~/.kube/config``; a
current or named context; the cluster's CA (file or data) or
``insecure-skip-tls-verify``; a bearer token (inline or ``tokenFile``), client
certificates (files or data), or basic auth; paths relative to the file that
names them. An ``exec`` or ``auth-provider`` plugin is refused
(``PluginRequired``) with a message saying so, rather than silently connecting
without credentials. In a pod, the service account (``in_cluster``), found as
client-go finds it.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .client import Credentials

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message says why and what to do."""


class PluginRequired(KubeconfigError):
    """The user's credentials come from a plugin that only kubectl runs."""


@dataclass(frozen=True)
class Access:
    """An API server and the credentials for it, as read (PEM bytes, not yet a TLS
    context), so one reading serves our client and kopf alike."""

    server: str
    namespace: str  # the context's namespace, or "default"
    context: str  # the kubeconfig context's name ("" for the service account)
    user: str  # the kubeconfig's user entry name (shown in the console's header)
    ca_pem: bytes | None = None
    insecure: bool = False
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            context.load_verify_locations(cadata=self.ca_pem.decode())
        if self.cert_pem and self.key_pem:
            # ssl loads a chain from files only: a private temporary directory, removed at once.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                for path, pem in ((cert, self.cert_pem), (key, self.key_pem)):
                    path.touch(mode=0o600)
                    path.write_bytes(pem)
                context.load_cert_chain(str(cert), str(key))
        return context

    def credentials(self) -> Credentials:
        return Credentials(server=self.server, ssl=self.ssl_context(), headers=self.headers())


def kubeconfig_paths(path: Path | str | None = None) -> list[Path]:
    """The files to read: ``path``, else ``$KUBECONFIG``'s list, else ~/.kube/config."""
    if path:
        return [Path(path).expanduser()]
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in listed] or [Path.home() / ".kube" / "config"]


@dataclass(frozen=True)
class _Entry:
    value: dict[str, Any]
    base: Path  # the file that named it: its relative paths start there


@dataclass
class _Merged:
    current: str | None
    sections: dict[str, dict[str, _Entry]]


def _read(path: Path) -> Mapping[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(config, Mapping):
        raise KubeconfigError(f"kubeconfig {path} is not a kubeconfig (no mapping at the top)")
    return config


def _merge(paths: Sequence[Path]) -> _Merged:
    """kubectl's merge of a list of files: the first file to set a value wins."""
    merged = _Merged(None, {"contexts": {}, "clusters": {}, "users": {}})
    for path in paths:
        if len(paths) > 1 and not path.exists():
            continue  # kubectl skips missing files of a list
        config = _read(path)
        merged.current = merged.current or config.get("current-context") or None
        for section, entries in merged.sections.items():
            for item in config.get(section) or []:
                inner = item.get(section[:-1]) if isinstance(item, Mapping) else None
                name = item.get("name") if isinstance(item, Mapping) else None
                if name is not None and name not in entries:
                    entries[str(name)] = _Entry(
                        dict(inner) if isinstance(inner, Mapping) else {}, path
                    )
    return merged


def _named(merged: _Merged, section: str, name: str, where: str) -> _Entry:
    found = merged.sections[section].get(name)
    if found is None:
        raise KubeconfigError(f"kubeconfig {where} has no {section[:-1]} named {name!r}")
    return found


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base.parent / path


def _material(entry: _Entry, data_field: str, file_field: str) -> bytes | None:
    """PEM bytes from ``<field>-data`` (base64) or the file ``<field>`` names."""
    if entry.value.get(data_field):
        return base64.b64decode(entry.value[data_field])
    if entry.value.get(file_field):
        path = _resolve(entry.base, str(entry.value[file_field]))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"cannot read {file_field} {path}: {exc.strerror}") from None
    return None


def _token(user: _Entry) -> str | None:
    token = user.value.get("token")
    if not token and user.value.get("tokenFile"):
        token = _resolve(user.base, user.value["tokenFile"]).read_text().strip()
    return str(token) if token else None


def load(path: Path | str | None = None, context: str | None = None) -> Access:
    """The API server, credentials and namespace of ``context`` (default: current)."""
    paths = kubeconfig_paths(path)
    where = os.pathsep.join(str(p) for p in paths)
    merged = _merge(paths)
    name = context or merged.current
    if not name:
        raise KubeconfigError(f"kubeconfig {where} has no current-context; pass --context")
    ctx = _named(merged, "contexts", str(name), where).value
    cluster = _named(merged, "clusters", str(ctx.get("cluster")), where)
    user_name = str(ctx.get("user") or "")
    user = _named(merged, "users", user_name, where) if user_name else _Entry({}, paths[0])
    if "exec" in user.value or "auth-provider" in user.value:
        raise PluginRequired(
            f"kubeconfig user {user_name!r} uses an exec or auth-provider plugin, which "
            "prompt-operator does not run; use a context with a token or client certificate "
            "(for example one made with `kubectl create token`)"
        )
    server = str(cluster.value.get("server") or "")
    if not server:
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    return Access(
        server=server,
        namespace=str(ctx.get("namespace") or "default"),
        context=str(name),
        user=user_name,
        ca_pem=_material(cluster, "certificate-authority-data", "certificate-authority"),
        insecure=bool(cluster.value.get("insecure-skip-tls-verify")),
        cert_pem=_material(user, "client-certificate-data", "client-certificate"),
        key_pem=_material(user, "client-key-data", "client-key"),
        token=_token(user),
        username=user.value.get("username"),
        password=user.value.get("password"),
    )


def in_cluster(account: Path | None = None) -> Access | None:
    """The pod's service account, as client-go's InClusterConfig reads it; None outside
    a pod (no KUBERNETES_SERVICE_HOST or no token)."""
    account = account or SERVICE_ACCOUNT_DIR
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_path = account / "token"
    if not host or not token_path.exists():
        return None
    namespace_path = account / "namespace"
    ca_path = account / "ca.crt"
    return Access(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        namespace=namespace_path.read_text().strip() if namespace_path.exists() else "default",
        context="",
        user="",
        ca_pem=ca_path.read_bytes() if ca_path.exists() else None,
        token=token_path.read_text().strip() or None,
    )


def find(path: Path | str | None = None, context: str | None = None) -> Access | None:
    """A program's credentials as controller-runtime looks for them: the kubeconfig
    named by ``path`` or ``$KUBECONFIG``, else the pod's service account, else
    ~/.kube/config; None when there is none of them."""
    if path or os.environ.get("KUBECONFIG"):
        return load(path, context)
    found = in_cluster()
    if found is not None:
        return found
    if kubeconfig_paths()[0].exists():
        return load(None, context)
    return None
