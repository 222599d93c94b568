"""The one credentials reader: kubectl's rules for kubeconfig files, client-go's for a
pod's service account, and kopf handed the very same credentials."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from prompt_cluster import pki
from prompt_operator.runtime import kubeconfig
from prompt_operator.runtime.client import KubeApi
from prompt_operator.runtime.kubeconfig import KubeconfigError, PluginRequired


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.generate(path)
    return path


def _two_files(tmp_path: Path, pki_dir: Path) -> tuple[Path, Path]:
    """A first file with the current context and its cluster, a second (in another
    directory) with the user, whose certificate paths are relative to it."""
    first, second = tmp_path / "a" / "config", tmp_path / "b" / "config"
    first.parent.mkdir()
    second.parent.mkdir()
    (second.parent / "admin.crt").write_bytes((pki_dir / "admin.crt").read_bytes())
    (second.parent / "admin.key").write_bytes((pki_dir / "admin.key").read_bytes())
    ca = base64.b64encode((pki_dir / "ca.crt").read_bytes()).decode()
    first.write_text(
        "current-context: local\n"
        "contexts: [{name: local, context: {cluster: k, user: admin, namespace: team}}]\n"
        f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:1', "
        f"certificate-authority-data: {ca}}}}}]\n"
    )
    second.write_text(
        "current-context: other\n"
        "clusters: [{name: k, cluster: {server: 'https://not-this-one'}}]\n"
        "users: [{name: admin, user: {client-certificate: admin.crt, client-key: admin.key}}]\n"
    )
    return first, second


def test_a_kubeconfig_list_merges_as_kubectl_does(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _two_files(tmp_path, pki_dir)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    access = kubeconfig.load()
    assert access.server == "https://127.0.0.1:1"  # the first file's cluster wins
    assert (access.context, access.user, access.namespace) == ("local", "admin", "team")
    assert access.ca_pem == (pki_dir / "ca.crt").read_bytes()
    assert access.cert_pem == (pki_dir / "admin.crt").read_bytes()  # relative to its file
    assert access.headers() == {}
    access.ssl_context()  # the client certificate and key load


def test_a_token_file_is_read_and_a_plugin_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "config"
    (tmp_path / "token").write_text("s3cret\n")
    path.write_text(
        "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}},"
        " {name: p, context: {cluster: k, user: plugin}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://x', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {tokenFile: token}},"
        " {name: plugin, user: {exec: {command: aws}}}]\n"
    )
    access = kubeconfig.load(path)
    assert access.headers() == {"Authorization": "Bearer s3cret"}
    assert access.ssl_context().verify_mode == ssl.CERT_NONE
    with pytest.raises(PluginRequired, match="kubectl create token"):
        kubeconfig.load(path, "p")
    with pytest.raises(KubeconfigError, match="no context named 'nope'"):
        kubeconfig.load(path, "nope")


def test_in_a_pod_the_service_account_is_used_unless_a_kubeconfig_is_named(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "namespace").write_text("prompt-system")
    (account / "ca.crt").write_bytes((pki_dir / "ca.crt").read_bytes())
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    found = kubeconfig.find()
    assert found is not None
    assert (found.server, found.namespace, found.token) == (
        "https://[fd00::1]:6443",
        "prompt-system",
        "pod-token",
    )
    first, _ = _two_files(tmp_path, pki_dir)
    monkeypatch.setenv("KUBECONFIG", str(first))
    with pytest.raises(KubeconfigError, match="no user named 'admin'"):
        kubeconfig.find()  # the named kubeconfig, not the service account
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    monkeypatch.delenv("KUBECONFIG")
    assert kubeconfig.find() is None  # no pod, no ~/.kube/config


def test_kopf_logs_in_with_the_same_credentials(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prompt_operator.handlers import connection_info

    first, second = _two_files(tmp_path, pki_dir)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    access = kubeconfig.load()
    info = connection_info(access)
    assert (info.server, info.default_namespace) == (access.server, "team")
    assert info.as_http_headers() == access.headers()
    info.as_ssl_context()  # kopf takes our CA, certificate and key as they are
    token = connection_info(kubeconfig.Access("https://x", "default", "", "", token="t"))
    assert token.as_http_headers() == {"Authorization": "Bearer t"}


def test_the_client_speaks_tls_with_client_certificates_from_the_kubeconfig(
    tmp_path: Path, pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that requires a client certificate signed by the cluster's CA answers."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
    server_tls.load_verify_locations(pki_dir / "ca.crt")
    server_tls.verify_mode = ssl.CERT_REQUIRED

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": "v1.test"})

    async def scenario() -> dict[str, str]:
        app = web.Application()
        app.router.add_get("/version", version)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        port = runner.addresses[0][1]
        first, second = _two_files(tmp_path, pki_dir)
        first.write_text(first.read_text().replace("127.0.0.1:1", f"127.0.0.1:{port}"))
        monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
        try:
            async with KubeApi(kubeconfig.load().credentials()) as api:
                answer: dict[str, str] = await api.request("GET", "/version")
                return answer
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == {"gitVersion": "v1.test"}
