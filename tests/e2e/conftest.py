"""End to end, as a user runs it: a real node (containerd, kubelet, CNI,
kube-proxy, CoreDNS), what `make dist` builds for a release (the image
imported from its OCI archive, the packaged chart installed with helm,
install.yaml, the wheels in a clean virtualenv), and app pods that the
webhook injects the sidecar into.

The node needs root and is one per machine; the session owns it and
``prompt-cluster down`` semantics remove everything it made afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from prompt_cluster import images, node, release
from prompt_cluster.build import ensure_binaries
from prompt_cluster.cluster import local_cluster
from prompt_cluster.testing import kubectl

from .helpers import Node, cluster_story


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.node)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test on the node carries the pods' story (phases and the last
    log lines of every container outside kube-system): a flake seen once in CI
    is then read from its report, not guessed at."""
    report: pytest.TestReport = yield
    funcargs = getattr(item, "funcargs", {})
    node_under_test = next((v for v in funcargs.values() if isinstance(v, Node)), None)
    if report.when == "call" and report.failed and node_under_test is not None:
        listed = kubectl(
            node_under_test.kubeconfig, "get", "namespaces", "-o", "name", check=False
        ).stdout.split()
        namespaces = [n.removeprefix("namespace/") for n in listed if "/kube-" not in n]
        report.sections.append(
            ("pods on the node", cluster_story(node_under_test.kubeconfig, namespaces))
        )
    return report


@pytest.fixture(scope="session")
def dist() -> Path:
    """The release artifacts, built by the code `make dist` runs for the
    default image reference (cached by content: a second run builds nothing)."""
    return release.cached_dist()


@pytest.fixture(scope="session")
def built_images(dist: Path) -> None:
    """The demo image (cached by content), built before the node starts; the
    product image is in ``dist``."""
    images.demo_app_image()


@pytest.fixture(scope="session")
def real_node(
    tmp_path_factory: pytest.TempPathFactory, dist: Path, built_images: None
) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.fail("the end-to-end layer runs a real node and needs root (CI runs as root)")
    helm = ensure_binaries().helm
    version = release.read_version()
    with local_cluster(tmp_path_factory.mktemp("node-cluster"), node=True) as cluster:
        state = cluster.state
        assert state is not None
        ctr = Path(state.binaries["ctr"])
        archive = dist / f"prompt-operator-image-{version}.tar"
        images.load_into_node(ctr, cluster.state_dir, release_archive=archive)
        names = node.ctr(ctr, cluster.state_dir, "images", "ls", "-q").split()
        assert release.default_image() in names, f"{archive.name} named no image as {names}"
        yield Node(cluster, state.kubeconfig, helm, dist / f"prompt-operator-{version}.tgz")
        pids = dict(state.pids)
    from prompt_cluster.cluster import _alive

    running = [name for name, pid in pids.items() if _alive(pid, state.binaries[name])]
    assert not running, f"still running after down: {running}"
    shims = [
        p for p in Path("/proc").glob("[0-9]*") if _alive(int(p.name), "containerd-shim-runc-v2")
    ]
    assert not shims, "containerd shims left running"
    left = node.leftovers(cluster.state_dir, state.host_facts or {})
    assert not left, f"down left on the host: {left}"
