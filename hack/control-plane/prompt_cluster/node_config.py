"""The real node's configuration files, as pure functions of a few paths.

Every setting that this machine kind needs and a user's cluster would not is
named here with the reason (see the README's "real node" section):

* ``restrict_oom_score_adj``: the sandbox has no CAP_SYS_RESOURCE, so runc
  cannot lower a container's oom_score_adj; without it every sandbox fails
  with "can't get final child's PID from pipe".
* ``failCgroupV1``/``cgroupDriver: cgroupfs``: the machine is cgroup v1
  hybrid without systemd as init.
* ``failSwapOn: false``, relaxed eviction and image GC thresholds: a shared
  disk that is fuller than the kubelet's defaults allow.
* the node IP is an extra /32 on ``lo``: the kubelet refuses a loopback node
  IP, and dummy links cannot be created here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NODE_NAME = "prompt-node"
# One node per machine: these names and addresses are fixed, and ``up --node``
# refuses to start while another state directory owns them.
NODE_IP = "10.245.255.1"
POD_CIDR = "10.245.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
BRIDGE = "prompt-br0"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
PAUSE_IMAGE = "localhost/prompt-cluster/pause:1"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
RUNC = "/usr/sbin/runc"  # Debian's runc


def containerd_toml(root: Path) -> str:
    """containerd 2.x (config version 3) that keeps every path under ``root``."""
    return f"""\
version = 3
root = '{root / "root"}'
state = '{root / "state"}'
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '{root / "containerd.sock"}'

[ttrpc]
  address = '{root / "containerd.sock.ttrpc"}'

[plugins.'io.containerd.internal.v1.opt']
  path = '{root / "opt"}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{PAUSE_IMAGE}'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = '{RUNC}'
        Root = '{root / "runc"}'
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{CNI_BIN_DIR}']
    conf_dir = '{root / "cni"}'
    max_conf_num = 1
"""


def cni_conflist(ipam_dir: Path) -> str:
    """A bridge on a private /24: no masquerade and no default route, so pods
    reach this machine and each other, and nothing off the machine."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "prompt-cluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    # Lets a pod reach itself through a Service address.
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        # Routes to this machine's addresses only: the API server
                        # on the node IP and the Service range (kube-proxy).
                        "routes": [{"dst": f"{NODE_IP}/32"}, {"dst": SERVICE_CIDR}],
                        "dataDir": str(ipam_dir),
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(
    *, ca_file: Path, cert_file: Path, key_file: Path, runtime_socket: Path, pod_logs_dir: Path
) -> str:
    """KubeletConfiguration: webhook authentication and authorization, so only
    the API server's client certificate (or an allowed token) reaches logs/exec."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(cert_file),
        "tlsPrivateKeyFile": str(key_file),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDomain": "cluster.local",
        "clusterDNS": [NODE_IP],
        "podLogsDir": str(pod_logs_dir),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False,
        "registerNode": True,
        # kube-proxy keeps its own rules; the kubelet's hint and canary chains
        # would only be more for `down` to take out of the host's tables.
        "makeIPTablesUtilChains": False,
        "maxPods": 50,
    }
    return json.dumps(config, indent=2)


def corefile(kubeconfig: Path) -> str:
    """CoreDNS on the node IP: Services and pods under cluster.local, anything
    else forwarded to this machine's resolver."""
    return f"""\
.:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"""


# What CoreDNS reads, for its own user (the kubeadm ClusterRole's rules).
COREDNS_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:coredns"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:coredns"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:coredns",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}
        ],
    },
]


def kube_proxy_config(*, kubeconfig: Path, healthz_port: int, metrics_port: int) -> str:
    """kube-proxy in iptables mode for the Service range; it leaves the host's
    conntrack sysctls alone (``maxPerCore: 0``) and never opens NodePorts on
    loopback."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }
    return json.dumps(config, indent=2)
