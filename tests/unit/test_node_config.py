"""The real node's configuration: what keeps it inside its state directory and
off the network, and what keeps the kubelet closed to strangers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prompt_cluster import node_config

if sys.version_info < (3, 11):
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)

import tomllib


def test_containerd_keeps_every_path_under_its_root(tmp_path: Path) -> None:
    config = tomllib.loads(node_config.containerd_toml(tmp_path))
    paths = [
        config["root"],
        config["state"],
        config["grpc"]["address"],
        config["ttrpc"]["address"],
        config["plugins"]["io.containerd.internal.v1.opt"]["path"],
    ]
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    paths.append(runtime["containerd"]["runtimes"]["runc"]["options"]["Root"])
    paths.append(runtime["cni"]["conf_dir"])
    assert all(p.startswith(str(tmp_path) + "/") for p in paths), paths
    assert runtime["netns_mounts_under_state_dir"] is True
    assert runtime["restrict_oom_score_adj"] is True
    assert "io.containerd.nri.v1.nri" in config["disabled_plugins"]


def test_pods_get_no_default_route_and_no_masquerade(tmp_path: Path) -> None:
    bridge, _ = json.loads(node_config.cni_conflist(tmp_path / "ipam"))["plugins"]
    assert bridge["ipMasq"] is False and not bridge.get("isDefaultGateway")
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert "0.0.0.0/0" not in routes
    assert routes == [f"{node_config.NODE_IP}/32", node_config.SERVICE_CIDR]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_kubelet_authenticates_and_authorizes_every_request(tmp_path: Path) -> None:
    config = json.loads(
        node_config.kubelet_config(
            ca_file=tmp_path / "ca.crt",
            cert_file=tmp_path / "k.crt",
            key_file=tmp_path / "k.key",
            runtime_socket=tmp_path / "containerd.sock",
            pod_logs_dir=tmp_path / "pod-logs",
        )
    )
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0 and config["healthzBindAddress"] == "127.0.0.1"
    assert config["address"] == node_config.NODE_IP
    assert config["makeIPTablesUtilChains"] is False


def test_coredns_answers_on_the_node_ip_only(tmp_path: Path) -> None:
    assert f"bind {node_config.NODE_IP}" in node_config.corefile(tmp_path / "kubeconfig")
