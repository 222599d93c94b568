"""Fixtures shared by every test layer.

* unit tests (``tests/unit``) need nothing;
* integration tests (``tests/integration``: real API server, real kubectl and
  helm, operator and sidecars as processes) get the session's local control
  plane through ``cluster`` and a namespace of their own through
  ``namespace``, so tests never see each other's objects;
* end-to-end tests (``tests/e2e``: a real node, the image built from the
  Dockerfile, the chart installed with helm) start their own cluster with the
  node in a state directory of their own (see ``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The reliability report (docs/reliability.md): the `reliability` marker's rows,
# the `observed` fixture and the --reliability-report option.
pytest_plugins = ["tests.reliability.report"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The local control plane, started once per test session, CRDs installed."""
    from prompt_cluster.cluster import local_cluster
    from prompt_cluster.testing import kubectl, kubectl_json, wait_for

    def established(kubeconfig: Path) -> bool:
        # Not `kubectl wait --for=condition=Established`: right after the apply
        # the CRD may have no conditions yet, which kubectl treats as an error.
        crd = kubectl_json(kubeconfig, "get", "crd", "prompts.prompts.dev")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    with local_cluster(tmp_path_factory.mktemp("cluster")) as running:
        kubectl(running.kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))
        wait_for(
            lambda: established(running.kubeconfig),
            timeout=60,
            message="the Prompt CRD to be Established",
        )
        yield running
        pids = dict(running.state.pids) if running.state else {}
    # After the session no control-plane process may be left behind.
    from prompt_cluster.cluster import _alive

    leftovers = [name for name, pid in pids.items() if _alive(pid, name)]
    assert not leftovers, f"still running after teardown: {leftovers}"


@pytest.fixture(scope="session")
def kubeconfig(cluster: object) -> Path:
    return cluster.kubeconfig  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def namespace(kubeconfig: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, with its default service account ready."""
    from prompt_cluster.testing import kubectl, wait_for

    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", name)
    wait_for(
        lambda: (
            kubectl(
                kubeconfig, "-n", name, "get", "serviceaccount", "default", check=False
            ).returncode
            == 0
        ),
        timeout=30,
        message=f"default service account in {name}",
    )
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)
