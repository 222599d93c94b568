"""The Helm chart on a real API server with the real helm and kubectl.

There is no kubelet, so the chart's Deployment never runs: its RBAC is
exercised for real by running the operator and a sidecar as local processes
with tokens of the service accounts the chart created.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from prompt_cluster.build import ensure_binaries
from prompt_cluster.cluster import LocalCluster
from prompt_cluster.manifests import render as render_manifest
from prompt_cluster.testing import (
    OperatorProcess,
    SidecarProcess,
    kubectl,
    prompt_manifest,
    wait_for,
)
from prompt_contract import objects
from prompt_operator.admission import injection_config
from prompt_operator.config import parse_config
from prompt_operator.inject import injected
from tests.reliability.report import Observed

from .helpers import apply, wait_prompt

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "prompt-operator"
RELEASE, NS, APPS = "prompt-operator", "prompt-system", "team-a"
OPERATOR_SA = f"system:serviceaccount:{NS}:{RELEASE}"
SIDECAR_SA = f"system:serviceaccount:{APPS}:prompt-sidecar"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster of its own: the chart installs the CRD, which the session's cluster
    already has from plain kubectl (and Helm will not adopt it)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("chart-cluster"))
    cluster.up()
    yield cluster.kubeconfig
    cluster.down()


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(ensure_binaries().helm), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result


# The command values.yaml, NOTES.txt and the chart's refusal give for
# networkPolicy.apiServerCIDRs.
API_SERVER_ADDRESSES = (
    "get",
    "endpointslices",
    "-n",
    "default",
    "-l",
    "kubernetes.io/service-name=kubernetes",
    "-o",
    "jsonpath={.items[*].endpoints[*].addresses[*]}",
)


def api_server_cidrs(kubeconfig: Path) -> str:
    """networkPolicy.apiServerCIDRs as --set takes it, found as the docs say; this
    cluster without a node publishes no endpoints, so else the kubeconfig's server."""
    addresses = kubectl(kubeconfig, *API_SERVER_ADDRESSES).stdout.split()
    if not addresses:
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        addresses = [urlsplit(server).hostname or ""]
    return "networkPolicy.apiServerCIDRs={" + ",".join(f"{a}/32" for a in addresses) + "}"


@pytest.fixture(scope="module")
def installed(chart_cluster: Path) -> Path:
    kubectl(chart_cluster, "create", "namespace", APPS)
    helm(
        chart_cluster,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        f"sidecar.namespaces={{{APPS}}}",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        api_server_cidrs(chart_cluster),
        "--set",
        "networkPolicy.sidecars=true",
        "--wait=false",
    )
    return chart_cluster


def token_kubeconfig(admin: Path, namespace: str, account: str, out: Path) -> Path:
    token = kubectl(admin, "-n", namespace, "create", "token", account).stdout.strip()
    config = yaml.safe_load(admin.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"].update(user=account, namespace=namespace)
    out.write_text(yaml.safe_dump(config))
    return out


def test_helm_lint_is_clean() -> None:
    result = subprocess.run(
        [str(ensure_binaries().helm), "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_values_schema_rejects_typos(chart_cluster: Path) -> None:
    result = helm(
        chart_cluster, "template", "x", str(CHART), "--set", "operator.replica=2", check=False
    )
    assert result.returncode != 0 and "additional properties 'replica' not allowed" in result.stderr


def test_rendered_chart_is_accepted_by_the_api_server(chart_cluster: Path) -> None:
    rendered = helm(
        chart_cluster,
        "template",
        RELEASE,
        str(CHART),
        "-n",
        NS,
        "--set",
        "sidecar.namespaces={default}",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        api_server_cidrs(chart_cluster),
        "--set",
        "networkPolicy.sidecars=true",
    ).stdout
    kubectl(chart_cluster, "create", "namespace", NS, check=False)
    result = kubectl(
        chart_cluster, "apply", "--dry-run=server", "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr


def test_static_manifest_is_current() -> None:
    assert (REPO / "deploy" / "install.yaml").read_text() == render_manifest(), (
        "run `make manifests`"
    )


def test_install_creates_what_the_chart_promises(installed: Path) -> None:
    kinds = {
        ("deployment", NS, RELEASE),
        ("serviceaccount", NS, RELEASE),
        ("clusterrole", None, RELEASE),
        ("clusterrolebinding", None, RELEASE),
        ("serviceaccount", APPS, "prompt-sidecar"),
        ("role", APPS, "prompt-sidecar"),
        ("rolebinding", APPS, "prompt-sidecar"),
        ("crd", None, "prompts.prompts.dev"),
        ("networkpolicy", APPS, "prompt-sidecar-signal"),
        ("validatingwebhookconfiguration", None, RELEASE),
        ("mutatingwebhookconfiguration", None, RELEASE),
        ("secret", NS, f"{RELEASE}-webhook-tls"),
        ("poddisruptionbudget", NS, RELEASE),
        ("role", NS, f"{RELEASE}-leader-election"),
        ("rolebinding", NS, f"{RELEASE}-leader-election"),
        ("role", NS, f"{RELEASE}-signing-keys"),
        ("rolebinding", NS, f"{RELEASE}-signing-keys"),
    }
    for kind, namespace, name in kinds:
        args = ["get", kind, name] + (["-n", namespace] if namespace else [])
        assert kubectl(installed, *args, check=False).returncode == 0, (kind, name)
    deploy = json.loads(kubectl(installed, "-n", NS, "get", "deploy", RELEASE, "-o", "json").stdout)
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # Two replicas, one leader: rolled one at a time, spread over nodes.
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--leader-elect" in container["args"]
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spread[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


RBAC_CASES = [
    (OPERATOR_SA, "patch", "prompts.prompts.dev/status", APPS, True),
    (OPERATOR_SA, "watch", "prompts.prompts.dev", APPS, True),
    (OPERATOR_SA, "update", "prompts.prompts.dev", APPS, False),
    (OPERATOR_SA, "patch", "prompts.prompts.dev", APPS, False),
    (OPERATOR_SA, "patch", "configmaps", APPS, True),
    (OPERATOR_SA, "list", "pods", APPS, True),
    (OPERATOR_SA, "create", "pods", APPS, False),
    (OPERATOR_SA, "get", "secrets", APPS, False),
    (OPERATOR_SA, "list", "secrets", NS, False),
    # Its one Secret: the signing keys, in its own namespace.
    (OPERATOR_SA, "get", f"secrets named {RELEASE}-signing-keys", NS, True),
    (OPERATOR_SA, "update", f"secrets named {RELEASE}-signing-keys", NS, True),
    (OPERATOR_SA, "get", f"secrets named {RELEASE}-webhook-tls", NS, False),
    (OPERATOR_SA, "get", f"secrets named {RELEASE}-signing-keys", APPS, False),
    (OPERATOR_SA, "create", "mutatingwebhookconfigurations", None, False),
    (OPERATOR_SA, "create", "events", APPS, True),
    (OPERATOR_SA, "create", "jobs.batch", APPS, True),  # rollouts' Job analysis
    (OPERATOR_SA, "deletecollection", "jobs.batch", APPS, True),
    (OPERATOR_SA, "update", "jobs.batch", APPS, False),
    (OPERATOR_SA, "create", "cronjobs.batch", APPS, False),
    (OPERATOR_SA, "update", f"leases.coordination.k8s.io named {RELEASE}", NS, True),
    (OPERATOR_SA, "update", "leases.coordination.k8s.io named someone-else", NS, False),
    (OPERATOR_SA, "update", f"leases.coordination.k8s.io named {RELEASE}", APPS, False),
    (SIDECAR_SA, "get", "configmaps", APPS, True),
    (SIDECAR_SA, "list", "configmaps", APPS, True),
    (SIDECAR_SA, "watch", "configmaps", APPS, False),
    (SIDECAR_SA, "patch", "configmaps", APPS, False),
    (SIDECAR_SA, "list", "configmaps", "default", False),
    (SIDECAR_SA, "get", "secrets", APPS, False),
    (SIDECAR_SA, "list", "prompts.prompts.dev", APPS, False),
]


def _rbac_id(case: tuple[str, str, str, str | None, bool]) -> str:
    user, verb, resource, namespace, allowed = case
    who = "operator" if user == OPERATOR_SA else "sidecar"
    return f"{who} {verb} {resource} in {namespace or 'the cluster'}: {'yes' if allowed else 'no'}"


@pytest.mark.reliability(
    case="S-RBAC",
    did="kubectl auth can-i as the chart's service account (the sidecar reads ConfigMaps "
    "of its namespace only; the operator reads no Secret but its own signing keys)",
)
@pytest.mark.parametrize(
    ("user", "verb", "resource", "namespace", "allowed"),
    RBAC_CASES,
    ids=[_rbac_id(case) for case in RBAC_CASES],
)
def test_rbac_grants_only_what_the_code_uses(
    installed: Path,
    user: str,
    verb: str,
    resource: str,
    namespace: str | None,
    allowed: bool,
    observed: Observed,
) -> None:
    resource, _, name = resource.partition(" named ")
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, f"{resource}/{name}" if name else resource, f"--as={user}"]
    args += [f"--subresource={subresource}"] if subresource else []
    args += ["-n", namespace] if namespace else []
    result = kubectl(installed, *args, check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), (user, verb, resource)
    observed(f"can-i answered {result.stdout.strip()}")


@pytest.mark.reliability(
    case="S-RBAC sidecar list",
    did="kubectl auth can-i --list as the sidecar's service account, in its namespace and "
    "in another",
)
def test_sidecar_can_do_nothing_but_read_configmaps_of_its_namespace(
    installed: Path, observed: Observed
) -> None:
    def granted(user: str, namespace: str) -> set[tuple[str, str]]:
        """(resource, verbs) rows of the listing (those that start with a resource)."""
        listing = kubectl(installed, "auth", "can-i", "--list", f"--as={user}", "-n", namespace)
        rows = [line for line in listing.stdout.splitlines()[1:] if line and not line[0].isspace()]
        return {(row.split()[0], row[row.rindex("[") + 1 : row.rindex("]")]) for row in rows}

    # What every service account may do by Kubernetes' defaults is not the chart's.
    nobody = f"system:serviceaccount:{APPS}:nobody-at-all"
    mine = granted(SIDECAR_SA, APPS) - granted(nobody, APPS)
    elsewhere = granted(SIDECAR_SA, "default") - granted(nobody, "default")
    assert mine == {("configmaps", "get list")}, mine
    assert elsewhere == set(), elsewhere
    observed("in its namespace: configmaps get, list; elsewhere: nothing")


@pytest.mark.reliability(
    case="S-RBAC wildcards", did="read every rule of the chart's ClusterRole and Roles"
)
def test_cluster_role_has_no_wildcards(installed: Path, observed: Observed) -> None:
    roles = [json.loads(kubectl(installed, "get", "clusterrole", RELEASE, "-o", "json").stdout)]
    mine = f"app.kubernetes.io/instance={RELEASE}"
    roles += json.loads(kubectl(installed, "get", "roles", "-A", "-l", mine, "-o", "json").stdout)[
        "items"
    ]
    rules = [rule for role in roles for rule in role.get("rules") or []]
    for rule in rules:
        for field in ("verbs", "resources", "apiGroups", "resourceNames"):
            assert "*" not in rule.get(field, []), rule
    observed(f"{len(rules)} rules in {len(roles)} roles, no wildcard")


def test_operator_and_sidecar_work_with_the_charts_service_accounts(
    installed: Path, tmp_path: Path
) -> None:
    operator = OperatorProcess(
        token_kubeconfig(installed, NS, RELEASE, tmp_path / "operator.kubeconfig"),
        tmp_path / "operator.log",
        "--delivery-refresh=0.5",
        # As the chart runs it: on the chart's Lease, with the chart's Role for it.
        "--leader-elect",
        f"--leader-election-namespace={NS}",
        f"--leader-election-id={RELEASE}",
        f"--signing-secret={RELEASE}-signing-keys",
    )
    operator.start()
    try:
        apply(installed, prompt_manifest("hello", "Hello from the chart"), APPS)
        wait_prompt(installed, APPS, "hello")
        # The leader made its signing keys with the chart's rights.
        wait_for(
            lambda: (
                kubectl(
                    installed, "-n", NS, "get", "secret", f"{RELEASE}-signing-keys", check=False
                ).returncode
                == 0
            ),
            timeout=15,
            message="the signing keys Secret",
        )
        sidecar = SidecarProcess(
            installed,
            token_kubeconfig(installed, APPS, "prompt-sidecar", tmp_path / "sc.kc"),
            APPS,
            "app",
            tmp_path,
        )
        sidecar.start()
        try:
            assert sidecar.file("hello") == b"Hello from the chart"
            apply(installed, prompt_manifest("hello", "edited"), APPS)
            wait_for(lambda: sidecar.file("hello") == b"edited", timeout=15)
        finally:
            sidecar.stop()
        forbidden = [r for r in operator.log_records() if "403" in str(r.get("message", ""))]
        assert forbidden == []
    finally:
        operator.stop()


def test_upgrade_updates_the_crd_and_uninstall_keeps_prompts(
    installed: Path, tmp_path: Path
) -> None:
    apply(installed, prompt_manifest("survivor", "still here"), APPS)
    changed = tmp_path / "chart"
    shutil.copytree(CHART, changed)
    crd = changed / "files" / "prompts.yaml"
    crd.write_text(
        crd.read_text().replace(
            "The prompt text, delivered to apps byte for byte",
            "UPGRADED: The prompt text, delivered to apps byte for byte",
        )
    )
    helm(installed, "upgrade", RELEASE, str(changed), "-n", NS, "--reuse-values")
    crd = json.loads(kubectl(installed, "get", "crd", "prompts.prompts.dev", "-o", "json").stdout)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["template"]["description"].startswith(
        "UPGRADED"
    )
    helm(installed, "uninstall", RELEASE, "-n", NS)
    assert kubectl(installed, "get", "crd", "prompts.prompts.dev", check=False).returncode == 0
    assert kubectl(installed, "-n", APPS, "get", "prompt", "survivor", check=False).returncode == 0
    assert kubectl(installed, "-n", NS, "get", "deploy", RELEASE, check=False).returncode != 0


def rendered(chart_cluster: Path, release: str, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "-n", namespace]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(helm(chart_cluster, *args).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


@pytest.mark.reliability(
    case="S-chart one port",
    did="helm template with sidecar.port=9100 (and with the defaults); the operator's "
    "arguments from the Deployment through its webhook's injection, against both "
    "NetworkPolicies",
)
@pytest.mark.parametrize("port", [None, 9100], ids=["default port", "port 9100"])
def test_the_injected_port_is_the_port_the_policies_open(
    chart_cluster: Path, port: int | None, observed: Observed
) -> None:
    sets = [
        f"sidecar.namespaces={{{APPS}}}",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServerCIDRs={10.0.0.1/32}",
    ]
    if port is not None:
        sets += [f"sidecar.port={port}", f"sidecar.probePort={port + 1}"]
    docs = rendered(chart_cluster, RELEASE, NS, *sets)
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "run"
    config = parse_config(args[1:])
    pod = injected(
        {
            "metadata": {"name": "app", "namespace": APPS},
            "spec": {"serviceAccountName": "prompt-sidecar", "containers": [{"name": "app"}]},
        },
        injection_config(config),
    )
    assert pod is not None
    injected_port = int(pod["metadata"]["annotations"][objects.PORT_ANNOTATION])
    sidecar = pod["spec"]["initContainers"][-1]
    assert sidecar["ports"][0]["containerPort"] == injected_port
    signal = one(docs, "NetworkPolicy", "prompt-sidecar-signal")
    assert signal["metadata"]["namespace"] == APPS  # on by default
    only_operator = signal["spec"]["ingress"][0]
    assert [p["port"] for p in only_operator["ports"]] == [injected_port]
    everyone = signal["spec"]["ingress"][1]["ports"]
    tcp = [(p["port"], p["endPort"]) for p in everyone if p["protocol"] == "TCP"]
    assert all(not lo <= injected_port <= hi for lo, hi in tcp), tcp
    egress = one(docs, "NetworkPolicy", RELEASE)["spec"]["egress"]
    to_pods = [rule for rule in egress if "podSelector" in rule["to"][0]]
    assert [p["port"] for rule in to_pods for p in rule["ports"]] == [injected_port]
    assert injected_port == (port or objects.DEFAULT_PORT)
    observed(
        f"injected port {injected_port}; the sidecar policy opens it to the operator only "
        f"and the operator's egress policy allows it and the API server's ports "
        f"{[p['port'] for rule in egress if 'ipBlock' in rule['to'][0] for p in rule['ports']]}"
    )


SCOPED, SCOPED_NS, WATCHED = "scoped", "scoped-system", ("team-b", "team-c")


@pytest.fixture(scope="module")
def scoped(chart_cluster: Path) -> str:
    """The chart's RBAC for an operator watching two namespaces only (release
    ``scoped``); returns its service account's user name."""
    docs = rendered(
        chart_cluster,
        SCOPED,
        SCOPED_NS,
        f"operator.watchNamespaces={{{','.join(WATCHED)}}}",
        "crds.install=false",
        "admissionPolicy.enabled=false",
    )
    rbac = [
        d
        for d in docs
        if d["kind"]
        in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]
    assert not any(
        set(rule["resources"]) & {"configmaps", "events"}
        for d in rbac
        if d["kind"] == "ClusterRole"
        for rule in d["rules"]
    )
    for namespace in (SCOPED_NS, *WATCHED):
        kubectl(chart_cluster, "create", "namespace", namespace, check=False)
    kubectl(
        chart_cluster,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}),
    )
    # The operator's account (the chart's default sidecar.namespaces adds prompt-sidecar's).
    account = one(rbac, "ServiceAccount", f"{SCOPED}-prompt-operator")["metadata"]["name"]
    return f"system:serviceaccount:{SCOPED_NS}:{account}"


SCOPED_CASES = [
    ("patch", "configmaps", "team-b", True),
    ("create", "configmaps", "team-c", True),
    ("deletecollection", "configmaps", "team-b", True),
    ("create", "events", "team-c", True),
    ("create", "jobs.batch", "team-b", True),
    ("create", "jobs.batch", "kube-system", False),
    ("patch", "configmaps", "kube-system", False),
    ("create", "configmaps", "default", False),
    ("delete", "configmaps", APPS, False),
    ("create", "events", "kube-system", False),
    ("list", "configmaps", "kube-system", False),
]


@pytest.mark.reliability(
    case="S-RBAC watched namespaces",
    did="kubectl auth can-i as an operator installed with operator.watchNamespaces="
    "[team-b, team-c]",
)
@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    SCOPED_CASES,
    ids=[f"{v} {r} in {n}: {'yes' if a else 'no'}" for v, r, n, a in SCOPED_CASES],
)
def test_watching_some_namespaces_grants_configmap_and_event_rights_there_only(
    chart_cluster: Path,
    scoped: str,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
    observed: Observed,
) -> None:
    result = kubectl(
        chart_cluster,
        "auth",
        "can-i",
        verb,
        resource,
        f"--as={scoped}",
        "-n",
        namespace,
        check=False,
    )
    assert result.stdout.strip() == ("yes" if allowed else "no")
    observed(f"can-i answered {result.stdout.strip()}")


UNWATCHED_CASES = [
    ("list", "pods", "team-b", True),
    ("watch", "pods", "team-c", True),
    ("patch", "prompts.prompts.dev/status", "team-b", True),
    ("watch", "prompts.prompts.dev", "team-c", True),
    ("list", "pods", "kube-system", False),
    ("watch", "pods", "default", False),
    ("list", "pods", APPS, False),
    ("patch", "prompts.prompts.dev/status", "default", False),
    ("patch", "prompts.prompts.dev/status", APPS, False),
    ("list", "prompts.prompts.dev", "kube-system", False),
]


@pytest.mark.reliability(
    case="S-rbac-unwatched-namespace",
    did="kubectl auth can-i as an operator installed with operator.watchNamespaces="
    "[team-b, team-c]: pods (every pod spec, env values included) and prompts/status, "
    "in watched and unwatched namespaces",
)
@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    UNWATCHED_CASES,
    ids=[f"{v} {r} in {n}: {'yes' if a else 'no'}" for v, r, n, a in UNWATCHED_CASES],
)
def test_watching_some_namespaces_reads_pods_and_writes_status_there_only(
    chart_cluster: Path,
    scoped: str,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
    observed: Observed,
) -> None:
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={scoped}", "-n", namespace]
    args += [f"--subresource={subresource}"] if subresource else []
    result = kubectl(chart_cluster, *args, check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no")
    observed(f"can-i answered {result.stdout.strip()}")


def test_a_namespaced_operators_cluster_role_reads_crds_and_namespaces_only(
    chart_cluster: Path,
) -> None:
    docs = rendered(
        chart_cluster, SCOPED, SCOPED_NS, f"operator.watchNamespaces={{{','.join(WATCHED)}}}"
    )
    rules = one(docs, "ClusterRole")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
    ]
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] in WATCHED]
    assert len(roles) == len(WATCHED)


def signing_secret(kubeconfig: Path, namespace: str) -> str:
    """The signing keys' Secret the chart's Role in ``namespace`` grants (it is
    named after the Secret)."""
    roles = kubectl(kubeconfig, "get", "roles", "-n", namespace, "-o", "name").stdout.split()
    (role,) = [r for r in roles if r.endswith("-signing-keys")]
    return role.rsplit("/", 1)[1]


def test_an_operator_watching_some_namespaces_works_with_those_rights(
    installed: Path, scoped: str, tmp_path: Path
) -> None:
    """The scoped rights are enough: the operator (kopf's namespaced watches, the
    pod and ConfigMap informers) serves a watched namespace without one 403."""
    account = scoped.rsplit(":", 1)[1]
    # Alone in the cluster, whatever ran before: the main release's admission
    # policy admits only its own operator's writes (the module's upgrade test
    # uninstalls it earlier, but `-k` may pick this test alone). The CRD stays.
    helm(installed, "uninstall", RELEASE, "-n", NS, "--wait", check=False)
    operator = OperatorProcess(
        token_kubeconfig(installed, SCOPED_NS, account, tmp_path / "scoped.kubeconfig"),
        tmp_path / "operator.log",
        *(f"--namespace={ns}" for ns in WATCHED),
        # As the chart runs it: the Lease and the signing keys' Secret are in the
        # release's namespace (POD_NAMESPACE in a pod), under the chart's name.
        f"--leader-election-namespace={SCOPED_NS}",
        f"--signing-secret={signing_secret(installed, SCOPED_NS)}",
    )
    operator.start()
    try:
        apply(installed, prompt_manifest("scoped", "Hello from team-b"), WATCHED[0])
        wait_prompt(installed, WATCHED[0], "scoped")
        forbidden = [r for r in operator.log_records() if "403" in str(r.get("message", ""))]
        assert forbidden == []
    finally:
        operator.stop()


def template(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with no cluster (or `helm install --dry-run=client`
    when args start with "install")."""
    command = list(args) if args and args[0] == "install" else ["template", *args]
    result = subprocess.run(
        [str(ensure_binaries().helm), *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(command)}:\n{result.stderr}")
    return result


def docs_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def sets(*values: str) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


CIDRS = "networkPolicy.apiServerCIDRs={192.0.2.10/32,192.0.2.11/32}"


def operator_policy(*values: str) -> dict[str, Any]:
    docs = docs_of(
        template(RELEASE, str(CHART), "-n", NS, *sets("networkPolicy.enabled=true", *values))
    )
    return one(docs, "NetworkPolicy", RELEASE)


def notes(*values: str) -> str:
    out = template("install", RELEASE, str(CHART), "-n", NS, "--dry-run=client", *sets(*values))
    return out.stdout.split("NOTES:", 1)[1]


@pytest.mark.reliability(
    case="S-netpol-egress",
    did="helm template: the defaults, networkPolicy.enabled=true without apiServerCIDRs, "
    "and with them; every egress rule of the operator's policy against its peers",
)
def test_the_operator_reaches_nothing_but_the_api_server_and_sidecars(
    observed: Observed,
) -> None:
    # Defaults: no policy for the operator, and NOTES says what that allows.
    defaults = docs_of(template(RELEASE, str(CHART), "-n", NS))
    # (The sidecars' own policy in `default`, sidecar.namespaces' default, is not the operator's.)
    assert not [
        d for d in defaults if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == RELEASE
    ]
    said = notes()
    assert "may\nconnect to any address its node can reach" in said
    assert "kubernetes.io/service-name=kubernetes" in said
    # Enabled without the API server's addresses: refused, saying what to set and how.
    refused = template(
        RELEASE, str(CHART), "-n", NS, *sets("networkPolicy.enabled=true"), check=False
    )
    assert refused.returncode != 0
    assert "networkPolicy.apiServerCIDRs" in refused.stderr
    assert " ".join(API_SERVER_ADDRESSES[:6]) in refused.stderr
    # Enabled: every egress rule names its peers; the only addresses are the API server's.
    policy = operator_policy(CIDRS)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress = policy["spec"]["egress"]
    assert all(rule.get("to") for rule in egress), egress
    blocks = [peer["ipBlock"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    assert blocks == [{"cidr": "192.0.2.10/32"}, {"cidr": "192.0.2.11/32"}]
    pods = [peer for rule in egress for peer in rule["to"] if "ipBlock" not in peer]
    assert pods == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {objects.SUBSCRIBE_LABEL: "true"}}}
    ]
    observed(
        "defaults: no operator policy, NOTES say it may connect anywhere; enabled without "
        "apiServerCIDRs: refused; enabled: egress only to the given /32s on 443/6443 and "
        "to subscribed pods on the signal port"
    )


@pytest.mark.reliability(
    case="S-netpol-ingress",
    did="helm template with networkPolicy.enabled=true: every ingress rule of the "
    "operator's policy, per port; webhookFromCIDRs, metricsFrom=null and probeFromCIDRs",
)
def test_only_the_api_server_monitoring_and_the_test_pod_reach_the_operator(
    observed: Observed,
) -> None:
    def by_port(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
        rules = policy["spec"]["ingress"]
        assert all(rule.get("from") for rule in rules), rules  # no rule open to all
        return {p["port"]: rule["from"] for rule in rules for p in rule["ports"]}

    webhook, health, metrics = 9443, 8080, 9090
    ports = by_port(operator_policy(CIDRS))
    assert set(ports) == {webhook, health, metrics}
    assert ports[webhook] == [
        {"ipBlock": {"cidr": "192.0.2.10/32"}},
        {"ipBlock": {"cidr": "192.0.2.11/32"}},
    ]
    assert ports[metrics] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    [test_pod] = ports[health]
    # The chart's `helm test` pod carries what the rule selects.
    hook = one(docs_of(template(RELEASE, str(CHART), "-n", NS)), "Pod")
    selected = test_pod["podSelector"]["matchLabels"]
    assert selected.items() <= hook["metadata"]["labels"].items()
    assert "namespaceSelector" not in test_pod  # the release's namespace only

    other = by_port(
        operator_policy(
            CIDRS,
            "networkPolicy.webhookFromCIDRs={198.51.100.0/28}",
            "networkPolicy.metricsFrom=null",
            "networkPolicy.probeFromCIDRs={203.0.113.0/24}",
        )
    )
    assert set(other) == {webhook, health}  # metrics closed
    assert other[webhook] == [{"ipBlock": {"cidr": "198.51.100.0/28"}}]
    assert {"ipBlock": {"cidr": "203.0.113.0/24"}} in other[health]
    no_webhooks = by_port(operator_policy(CIDRS, "webhooks.enabled=false"))
    assert webhook not in no_webhooks
    observed(
        "webhook port only from apiServerCIDRs (or webhookFromCIDRs), metrics only from "
        "the monitoring namespace (closed with metricsFrom=null), health only from the "
        "chart's test pod and probeFromCIDRs; no rule without a peer"
    )


VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


@pytest.mark.reliability(
    case="S-vap-old-kube",
    did="helm template --kube-version 1.29.0 / 1.30.0, and with --api-versions as a "
    "cluster without ValidatingAdmissionPolicy reports them, with the policy on and off",
)
def test_the_admission_policy_is_rendered_only_where_the_api_serves_it(
    observed: Observed,
) -> None:
    def kinds(result: subprocess.CompletedProcess[str]) -> set[str]:
        return {d["kind"] for d in docs_of(result)}

    old = template(RELEASE, str(CHART), "-n", NS, "--kube-version", "1.29.0", check=False)
    assert old.returncode != 0 and "kubeVersion: >=1.30.0-0" in old.stderr, old.stderr
    assert "ValidatingAdmissionPolicy" in kinds(
        template(RELEASE, str(CHART), "-n", NS, "--kube-version", "1.30.0")
    )
    # A cluster's capabilities list every kind it serves; this one lacks the policy.
    without = ("--api-versions", "v1/ConfigMap", "--api-versions", "apps/v1/Deployment")
    refused = template(RELEASE, str(CHART), "-n", NS, *without, check=False)
    assert refused.returncode != 0
    assert "admissionPolicy.enabled=false" in refused.stderr
    assert "docs/security.md" in refused.stderr
    off = template(RELEASE, str(CHART), "-n", NS, *without, *sets("admissionPolicy.enabled=false"))
    assert not kinds(off) & {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    served = template(RELEASE, str(CHART), "-n", NS, *without, "--api-versions", VAP)
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds(served)
    warning = notes("admissionPolicy.enabled=false")
    assert "WARNING: admissionPolicy.enabled=false" in warning
    assert "serve text of\nits choosing" in warning
    assert "WARNING" not in notes()
    observed(
        "1.29: refused by kubeVersion; 1.30: policy rendered; API without the policy: "
        "refused unless admissionPolicy.enabled=false, then none rendered and NOTES warn"
    )


def test_the_prometheus_url_reaches_the_operator_and_its_egress_policy() -> None:
    url = "http://prometheus-operated.monitoring:9090"

    def operator_args(*values: str) -> list[str]:
        docs = docs_of(template(RELEASE, str(CHART), "-n", NS, *sets(*values)))
        args: list[str] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
        return args

    assert parse_config(operator_args()[1:]).prometheus_url is None
    assert parse_config(operator_args(f"rollouts.prometheus.url={url}")[1:]).prometheus_url == url
    # Not a URL: refused by the values schema, before the operator could refuse it.
    bad = template(
        RELEASE, str(CHART), *sets("rollouts.prometheus.url=prometheus:9090"), check=False
    )
    assert bad.returncode != 0 and "rollouts/prometheus/url" in bad.stderr
    # A closed egress without a way to Prometheus: refused, saying what to set.
    closed = template(
        RELEASE,
        str(CHART),
        *sets("networkPolicy.enabled=true", CIDRS, f"rollouts.prometheus.url={url}"),
        check=False,
    )
    assert closed.returncode != 0
    assert "rollouts.prometheus.networkPolicyEgress" in closed.stderr
    to_prometheus = {
        "to": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "ports": [{"port": 9090}],
    }
    policy = operator_policy(
        CIDRS,
        f"rollouts.prometheus.url={url}",
        "rollouts.prometheus.networkPolicyEgress[0].to[0].namespaceSelector.matchLabels"
        ".kubernetes\\.io/metadata\\.name=monitoring",
        "rollouts.prometheus.networkPolicyEgress[0].ports[0].port=9090",
    )
    assert to_prometheus in policy["spec"]["egress"]


def test_signing_values_reach_the_operator_and_its_role() -> None:
    def rendered_with(*values: str) -> tuple[list[str], list[dict[str, Any]]]:
        docs = docs_of(template("keys", str(CHART), "-n", NS, *sets(*values)))
        deployment = one(docs, "Deployment")
        args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == NS]
        return args, roles

    args, roles = rendered_with()
    on = parse_config(args[1:])
    assert on.signing_secret == "keys-prompt-operator-signing-keys"
    assert on.signing_rotate_after == 30 * 86400
    (role,) = [r for r in roles if r["metadata"]["name"].endswith("-signing-keys")]
    named = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [on.signing_secret],
            "verbs": ["get", "update", "patch"],
        }
    ]
    args, roles = rendered_with("signing.enabled=false", "signing.rotateAfter=0")
    assert parse_config(args[1:]).signing_secret == ""
    assert not [r for r in roles if r["metadata"]["name"].endswith("-signing-keys")]
    bad = template(RELEASE, str(CHART), *sets("signing.rotateAfter=-1"), check=False)
    assert bad.returncode != 0 and "signing/rotateAfter" in bad.stderr


def injected_by_chart(*values: str) -> dict[str, Any]:
    """A pod as the webhook of the chart rendered with ``values`` injects it."""
    docs = docs_of(template(RELEASE, str(CHART), "-n", NS, *sets(*values)))
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    pod = injected(
        {
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"serviceAccountName": "prompt-sidecar", "containers": [{"name": "app"}]},
        },
        injection_config(parse_config(args[1:])),
    )
    assert pod is not None
    return pod


def prompts_volume_and_limit(pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "prompts")
    return volume["emptyDir"], pod["spec"]["initContainers"][-1]["resources"]["limits"]["memory"]


def test_a_memory_backed_prompt_volume_adds_its_size_to_the_sidecars_limit() -> None:
    # The default: the node's disk, and the sidecar's own limit.
    assert prompts_volume_and_limit(injected_by_chart()) == ({}, "64Mi")
    # Memory: a tmpfs of sizeLimit, whose pages are charged to the sidecar that writes them.
    in_memory = injected_by_chart("sidecar.promptVolume.medium=Memory")
    assert prompts_volume_and_limit(in_memory) == (
        {"medium": "Memory", "sizeLimit": "32Mi"},
        "96Mi",
    )
    sized = injected_by_chart(
        "sidecar.promptVolume.medium=Memory", "sidecar.promptVolume.sizeLimit=1536Ki"
    )
    assert prompts_volume_and_limit(sized) == (
        {"medium": "Memory", "sizeLimit": "1536Ki"},
        "67072Ki",
    )
    # The size alone changes nothing: it is the tmpfs's size only.
    assert prompts_volume_and_limit(injected_by_chart("sidecar.promptVolume.sizeLimit=8Mi")) == (
        {},
        "64Mi",
    )
    for bad in ("sidecar.promptVolume.medium=tmpfs", "sidecar.promptVolume.sizeLimit=32MB"):
        refused = template(RELEASE, str(CHART), "-n", NS, *sets(bad), check=False)
        assert refused.returncode != 0 and "promptVolume" in refused.stderr, refused.stderr
