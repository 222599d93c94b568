"""The operator's runtime against a real API server: typed errors, a label-selected
metadata-only informer, and leader election on a real Lease."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from prompt_cluster.testing import (
    audit_events,
    audit_line_count,
    kubectl,
    service_account_kubeconfig,
)
from prompt_operator.runtime.client import Credentials, KubeApi, object_path
from prompt_operator.runtime.errors import Conflict, Invalid, NotFound, NotLeading, Unavailable
from prompt_operator.runtime.informer import Informer, Key, collection_paths
from prompt_operator.runtime.leader import LeaderElector, LeaseConfig

pytestmark = pytest.mark.cluster


def credentials(kubeconfig: Path) -> Credentials:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return Credentials(server=cluster["server"], ssl=context, headers={})


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(*work: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def configmap(name: str, labelled: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"runtime-test": "yes"} if labelled else {}},
        "data": {"text": "x" * 1000},
    }


def test_the_client_raises_its_own_error_types(kubeconfig: Path, namespace: str) -> None:
    async def scenario() -> None:
        async with KubeApi(credentials(kubeconfig)) as api:
            path = object_path("v1", "configmaps", namespace)
            assert await api.get(f"{path}/absent") is None
            with pytest.raises(NotFound):
                await api.request("DELETE", f"{path}/absent")
            await api.request("POST", path, body=configmap("one", True))
            with pytest.raises(Conflict):
                await api.request("POST", path, body=configmap("one", True))
            with pytest.raises(Invalid):
                await api.request("POST", path, body=configmap("Not_A_Name", True))
        closed = Credentials(server="https://127.0.0.1:9", ssl=False, headers={})
        async with KubeApi(closed, timeout=2) as api:
            with pytest.raises(Unavailable):  # connection refused: no aiohttp error escapes
                await api.get("/api/v1/namespaces")

    asyncio.run(scenario())


def test_a_fenced_client_refuses_writes_but_reads(kubeconfig: Path, namespace: str) -> None:
    async def scenario() -> None:
        async with KubeApi(credentials(kubeconfig), fence=lambda: False) as api:
            path = object_path("v1", "configmaps", namespace)
            with pytest.raises(NotLeading):
                await api.request("POST", path, body=configmap("fenced", True))
            assert await api.get(f"{path}/fenced") is None

    asyncio.run(scenario())


def test_the_fence_is_asked_again_once_a_write_has_its_connection(
    kubeconfig: Path, namespace: str
) -> None:
    """A write that passed the fence, then waited (for a connection, or paused by
    SIGSTOP) while the lease passed on, is refused before its bytes go out."""

    async def scenario() -> None:
        answers = iter([True])  # leading when asked first, no longer after that
        async with KubeApi(credentials(kubeconfig), fence=lambda: next(answers, False)) as api:
            path = object_path("v1", "configmaps", namespace)
            with pytest.raises(NotLeading):
                await api.request("POST", path, body=configmap("late", True))
            assert await api.get(f"{path}/late") is None

    asyncio.run(scenario())


def test_a_metadata_only_informer_holds_selected_objects_and_hears_deletes(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        changes: list[tuple[Key, Any, Any]] = []
        async with KubeApi(credentials(kubeconfig)) as api:
            path = object_path("v1", "configmaps", namespace)
            await api.request("POST", path, body=configmap("before", True))
            await api.request("POST", path, body=configmap("unlabelled", False))
            informer: Informer[dict[str, Any]] = Informer(
                api,
                collection_paths("v1", "configmaps", [namespace]),
                lambda obj: dict(obj),
                what="ConfigMap",
                label_selector="runtime-test=yes",
                metadata_only=True,
                on_change=lambda key, old, new: changes.append((key, old, new)),
            )
            async with running(informer.run()):
                await asyncio.wait_for(informer.synced.wait(), 30)
                assert [k for k, _ in informer.items()] == [(namespace, "before")]
                cached = informer.get((namespace, "before"))
                assert cached is not None and "data" not in cached  # metadata only
                assert cached["kind"] == "PartialObjectMetadata"
                await api.request("POST", path, body=configmap("after", True))
                await until(lambda: informer.get((namespace, "after")) is not None, 30, "add")
                await api.delete(f"{path}/before")
                await until(lambda: informer.get((namespace, "before")) is None, 30, "delete")
        deleted = [key for key, old, new in changes if old is not None and new is None]
        assert deleted == [(namespace, "before")]
        assert all(key[1] != "unlabelled" for key, _, _ in changes)

    asyncio.run(scenario())


def token_credentials(kubeconfig: Path) -> Credentials:
    """A service account's kubeconfig (``service_account_kubeconfig``) as credentials."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    return Credentials(cluster["server"], context, {"Authorization": f"Bearer {token}"})


def requests_of(audit_log: Path, since_line: int, agent: str) -> list[tuple[str, int]]:
    """(verb, HTTP status) of each request ``agent`` made after a line of the audit log."""
    return [
        (event["verb"], event.get("responseStatus", {}).get("code", 0))
        for event in audit_events(audit_log, since_line)
        if event.get("userAgent") == agent and event.get("stage") == "ResponseComplete"
    ]


@pytest.mark.fault
@pytest.mark.slow
def test_an_informer_lists_once_after_a_restart_however_long_the_server_refuses_it(
    cluster: Any, kubeconfig: Path, namespace: str, audit_log: Path, tmp_path: Path
) -> None:
    """The R3 flake made deterministic. A restarted API server answers before its
    RBAC cache is filled and refuses (403) a service account for as long as that
    takes; here the account's RoleBinding is gone across the restart, so the
    refusals last until the test gives it back. The informer retries meanwhile,
    and must retry its watch (a refused watch reads nothing), not list once per
    retry; it lists again only when the server accepts the watch and says 410."""
    sa = f"--serviceaccount={namespace}:reader"

    def bind(verb: str) -> None:
        args = ["rolebinding", "reader"] + (["--role=reader", sa] if verb == "create" else [])
        kubectl(kubeconfig, "-n", namespace, verb, *args)

    kubectl(
        kubeconfig,
        "-n",
        namespace,
        "create",
        "role",
        "reader",
        "--verb=list,watch",
        "--resource=configmaps",
    )
    bind("create")
    account = service_account_kubeconfig(kubeconfig, namespace, "reader", tmp_path / "kubeconfig")
    agent = f"informer-restart-test/{namespace}"

    async def scenario() -> None:
        recovered: list[None] = []
        async with (
            KubeApi(credentials(kubeconfig)) as admin,
            KubeApi(token_credentials(account), user_agent=agent) as api,
        ):
            path = object_path("v1", "configmaps", namespace)
            await admin.request("POST", path, body=configmap("before", True))
            informer: Informer[dict[str, Any]] = Informer(
                api,
                collection_paths("v1", "configmaps", [namespace]),
                dict,
                what="ConfigMap",
                on_recovered=lambda: recovered.append(None),
            )
            async with running(informer.run()):
                await asyncio.wait_for(informer.synced.wait(), 30)
                assert informer.get((namespace, "before")) is not None
                # An open watch is not authorised again: it runs on until the restart.
                await asyncio.to_thread(bind, "delete")
                await asyncio.to_thread(cluster.stop_component, "kube-apiserver")
                since = audit_line_count(audit_log)
                await asyncio.to_thread(cluster.start_component, "kube-apiserver")
                await admin.delete(f"{path}/before")  # missed by the informer's watch

                def refused() -> int:
                    return sum(code == 403 for _, code in requests_of(audit_log, since, agent))

                await until(lambda: refused() >= 3, 30, "three refused retries")
                await asyncio.to_thread(bind, "create")
                await admin.request("POST", path, body=configmap("after", True))
                await until(lambda: informer.get((namespace, "after")) is not None, 30, "after")
                assert informer.get((namespace, "before")) is None
        seen = requests_of(audit_log, since, agent)
        lists = [code for verb, code in seen if verb == "list"]
        # At most one list (0 if the old version happened to still be in the new
        # watch cache), and not while refused: each refused retry was a watch.
        assert lists in ([], [200]), seen
        assert recovered, "the recovered handlers were not told the server answers again"

    asyncio.run(scenario())


def test_a_list_comes_page_by_page_and_every_object_once(kubeconfig: Path, namespace: str) -> None:
    """An informer converts each page and drops it, so it never holds a whole list."""

    async def scenario() -> None:
        async with KubeApi(credentials(kubeconfig)) as api:
            path = object_path("v1", "configmaps", namespace)
            names = [f"page-{i}" for i in range(5)]
            for name in names:
                await api.request("POST", path, body=configmap(name, True))
            pages = [
                page
                async for page in api.list_pages(
                    path, {"labelSelector": "runtime-test=yes"}, limit=2
                )
            ]
        assert [len(items) for items, _ in pages] == [2, 2, 1]
        listed = [item["metadata"]["name"] for items, _ in pages for item in items]
        assert sorted(listed) == names
        versions = {version for _, version in pages}
        assert len(versions) == 1 and versions != {""}  # one snapshot of the collection

    asyncio.run(scenario())


def test_one_leader_at_a_time_and_a_standby_takes_over_a_silent_lease(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        creds = credentials(kubeconfig)
        lost: list[str] = []

        def elector(api: KubeApi, name: str) -> LeaderElector:
            config = LeaseConfig(namespace, "test-lease", name, 3.0, 2.0, 0.5)
            return LeaderElector(api, config, on_lost=lambda: lost.append(name))

        async with KubeApi(creds) as api_a, KubeApi(creds) as api_b:
            a, b = elector(api_a, "a"), elector(api_b, "b")
            async with running(a.run()) as (task_a,):
                await asyncio.wait_for(a.leading.wait(), 30)
                async with running(b.run()):
                    await asyncio.sleep(4)  # longer than the lease: a keeps renewing it
                    assert a.valid() and not b.leading.is_set()
                    task_a.cancel()  # a goes silent without releasing, as if killed
                    started = time.monotonic()
                    await asyncio.wait_for(b.leading.wait(), 30)
                    took = time.monotonic() - started
                    assert not a.valid()  # its renew deadline passed before b could take over
                    assert 2.0 <= took <= 3.0 + 2 * 0.5 + 2.0, took
                    lease = await api_b.get(
                        object_path("coordination.k8s.io/v1", "leases", namespace, "test-lease")
                    )
                    assert lease is not None
                    assert lease["spec"]["holderIdentity"] == "b"
                    assert lease["spec"]["leaseTransitions"] == 1
                    await b.release()
                    lease = await api_b.get(
                        object_path("coordination.k8s.io/v1", "leases", namespace, "test-lease")
                    )
                    assert lease is not None and lease["spec"]["holderIdentity"] == ""
        assert lost == []

    asyncio.run(scenario())


def test_a_leader_whose_lease_was_taken_stops(kubeconfig: Path, namespace: str) -> None:
    async def scenario() -> None:
        creds = credentials(kubeconfig)
        lost: list[str] = []
        async with KubeApi(creds) as api:
            config = LeaseConfig(namespace, "taken", "a", 3.0, 2.0, 0.5)
            a = LeaderElector(api, config, on_lost=lambda: lost.append("a"))
            async with running(a.run()) as (task_a,):
                await asyncio.wait_for(a.leading.wait(), 30)
                path = object_path("coordination.k8s.io/v1", "leases", namespace, "taken")
                lease = await api.get(path)
                assert lease is not None
                lease["spec"]["holderIdentity"] = "someone-else"
                await api.request("PUT", path, body=lease)
                await asyncio.wait_for(task_a, 10)  # run() returns once it lost
        assert lost == ["a"] and a.lost and not a.valid()

    asyncio.run(scenario())
