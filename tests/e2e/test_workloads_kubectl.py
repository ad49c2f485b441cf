"""Deployments and Jobs with kubectl against a real `corral up` (API server, scheduler, agent, controllers).

The pods are host processes run by corral's agent: ``python3 -m http.server`` bound to the pod's
loopback IP, and a Job printing 42. The typed ``kubectl create deployment|job`` post protobuf
bodies; the test runs with kubectl 1.32 and 1.35 (the latter installed as test_real_clients does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.corral_up import real_client_tools

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def corral() -> str:
    local = Path(sys.executable).parent / "corral"
    return str(local) if local.exists() else require_tool("corral")


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(kubeconfig.parent / "cache")}

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 30) -> str:
        result = subprocess.run([self.binary, *args], env=self.env, input=stdin, capture_output=True, text=True,
                                timeout=timeout, check=False)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self("get", *args, "-o", "json"))


INDEXED_JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: w
        image: python:3.12
        command: ["python3", "-c", "import os; print('index', os.environ['JOB_COMPLETION_INDEX'])"]
"""


@pytest.fixture(params=["1.32", "1.35"])
def kubectl(request: pytest.FixtureRequest) -> str:
    return require_tool("kubectl") if request.param == "1.32" else str(real_client_tools() / "kubectl")


def pods_of(k: Kubectl, selector: str) -> list[dict]:
    return [p for p in k.json("pods", "-l", selector)["items"] if not p["metadata"].get("deletionTimestamp")]


def serves(url: str, timeout: float = 20) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5) as answer:
                return bool(answer.status == 200)
        except OSError:
            time.sleep(0.2)
    return False


def test_deployment_rollout_scale_undo_restart_and_a_job(kubectl: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with subprocess.Popen([corral(), "up", "--data-dir", str(data), "--port", "0", "--node-name", "wl-node",
                           "--gateway-port", "-1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("corral is ready:"), line + (process.stderr.read() if process.poll() else "")
            k = Kubectl(kubectl, data / "kubeconfig")
            assert "deployments" in k("api-resources", "--api-group=apps")
            assert "jobs" in k("api-resources", "--api-group=batch")

            assert "deployment.apps/web created" in k(
                "create", "deployment", "web", "--image=python:3.12", "--replicas=2", "--",
                "python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)")
            assert "successfully rolled out" in k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            assert len(pods_of(k, "app=web")) == 2

            assert "scaled" in k("scale", "deployment/web", "--replicas=3")
            assert "successfully rolled out" in k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            assert len(pods_of(k, "app=web")) == 3
            first_rs = {rs["metadata"]["name"] for rs in k.json("rs", "-l", "app=web")["items"]}

            k("set", "env", "deployment/web", "A=1")
            assert "successfully rolled out" in k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            sets = {rs["metadata"]["name"]: rs for rs in k.json("rs", "-l", "app=web")["items"]}
            assert len(sets) == 2
            (second_rs,) = set(sets) - first_rs
            assert sets[second_rs]["spec"]["replicas"] == 3
            assert sets[second_rs]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            pods = pods_of(k, "app=web")
            assert len(pods) == 3
            assert all(p["metadata"]["labels"]["pod-template-hash"] == sets[second_rs]["metadata"]["labels"][
                "pod-template-hash"] for p in pods)
            assert all({"name": "A", "value": "1"} in p["spec"]["containers"][0]["env"] for p in pods)
            # the pods really serve: GET / on each pod's IP (no readiness probe: ready once started, so retry)
            for pod in pods:
                assert serves(f"http://{pod['status']['podIP']}:8080/"), pod["metadata"]["name"]

            assert "rolled back" in k("rollout", "undo", "deployment/web")
            assert "successfully rolled out" in k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            dep = k.json("deployment", "web")
            assert not dep["spec"]["template"]["spec"]["containers"][0].get("env")
            assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
            (old_name,) = first_rs
            assert k.json("rs", old_name)["spec"]["replicas"] == 3

            assert "restarted" in k("rollout", "restart", "deployment/web")
            assert "successfully rolled out" in k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
            dep = k.json("deployment", "web")
            assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
            assert len(k.json("rs", "-l", "app=web")["items"]) == 3
            status = dep["status"]
            assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"],
                    status["availableReplicas"]) == (3, 3, 3, 3)
            assert status["observedGeneration"] == dep["metadata"]["generation"]
            table = k("get", "deployment", "web")
            assert table.split("\n")[1].split()[:4] == ["web", "3/3", "3", "3"]

            assert "job.batch/pi created" in k("create", "job", "pi", "--image=python:3.12", "--",
                                                "python3", "-c", "print(42)")
            assert "condition met" in k("wait", "--for=condition=complete", "job/pi", "--timeout=60s", timeout=70)
            assert k("logs", "job/pi").strip() == "42"
            job = k.json("job", "pi")
            assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]

            # Indexed: each pod reads its index from JOB_COMPLETION_INDEX (a downward-API fieldRef the agent resolves)
            k("apply", "-f", "-", stdin=INDEXED_JOB)
            assert "condition met" in k("wait", "--for=condition=complete", "job/idx", "--timeout=60s", timeout=70)
            job = k.json("job", "idx")
            assert job["status"]["completedIndexes"] == "0-2" and job["status"]["succeeded"] == 3
            outputs = sorted(k("logs", p["metadata"]["name"]).strip() for p in pods_of(k, "job-name=idx"))
            assert outputs == ["index 0", "index 1", "index 2"]

            k("delete", "deployment", "web")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (pods_of(k, "app=web") or k.json("rs", "-l", "app=web")["items"]):
                time.sleep(0.3)
            assert not pods_of(k, "app=web"), "deleting a deployment deletes its sets and their pods"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
