"""``kubectl exec``/``attach`` and port-forward against `corral up`, with kubectl 1.32 and 1.35 and the
official Python client (``kubernetes.stream``), as users run them.

kubectl 1.30+ speaks ``v5.channel.k8s.io`` over WebSocket, the Python client v5/v4; the pod
is a host process of the node agent, which runs the command in the container's environment.
kubectl 1.35 comes from ``tests/tools/install_kubectl35.sh`` (skips without it, fails under CI=true).
"""

from __future__ import annotations

import base64
import gc
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e import test_real_clients as real_clients
from tests.e2e.test_real_clients import Cluster, name_for, ok, run

# the same `corral up` and kubectl fixtures as the other real-client tests
cluster, kubectl, tools = real_clients.cluster, real_clients.kubectl, real_clients.tools

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def collect_client_sockets() -> Iterator[None]:
    """The official client keeps some TLS sockets reachable until its module-level state goes:
    collect them when this module ends, so none is finalised (an unraisable ResourceWarning,
    an error under ``filterwarnings = error``) while another module's test runs."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "cat /proc/self/cgroup; exec sleep 600"]
    workingDir: {workdir}
    env: [{{name: GREETING, value: hello-from-env}}]
  - name: web
    image: python
    command: ["sh", "-c", "exec python3 -m http.server 8000 --bind $POD_IP --directory {workdir}"]
"""


def start_pod(cluster: Cluster, kubectl: str, name: str) -> Path:
    workdir = cluster.home / f"work-{name}"
    workdir.mkdir(exist_ok=True)
    (workdir / "index.html").write_text(f"served from {name}\n")
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=POD.format(name=name, workdir=workdir)))
    ok(run(cluster, kubectl, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s"))
    return workdir


@pytest.fixture
def pod(cluster: Cluster, kubectl: str) -> tuple[str, Path]:
    name = name_for(kubectl, "shell")
    return name, start_pod(cluster, kubectl, name)


def test_exec_runs_in_the_containers_environment_and_reports_the_exit_code(
        cluster: Cluster, kubectl: str, pod: tuple[str, Path]) -> None:
    name, workdir = pod
    result = run(cluster, kubectl, "exec", name, "-c", "main", "--",
                 "sh", "-c", 'echo $POD_NAME $GREETING; pwd; echo to-stderr >&2; exit 3')
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == [f"{name} hello-from-env", str(workdir)]
    assert "to-stderr" in result.stderr and "exit code 3" in result.stderr
    assert ok(run(cluster, kubectl, "exec", name, "-c", "main", "--", "true")) == ""
    # in the container's cgroup (where corral makes one), so its limits and its cleanup apply
    container_cgroup = ok(run(cluster, kubectl, "logs", name, "-c", "main"))
    assert ok(run(cluster, kubectl, "exec", name, "-c", "main", "--", "cat", "/proc/self/cgroup")) == container_cgroup


def test_exec_pipes_stdin_and_selects_the_container(cluster: Cluster, kubectl: str,
                                                    pod: tuple[str, Path]) -> None:
    name, _ = pod
    text = "line one\nline two\n" * 1000
    assert ok(run(cluster, kubectl, "exec", "-i", name, "-c", "main", "--", "cat", stdin=text)) == text
    web = ok(run(cluster, kubectl, "exec", name, "-c", "web", "--", "sh", "-c", "echo $HOSTNAME; pwd"))
    assert web.splitlines()[0] == name


def test_a_client_that_goes_away_takes_its_command_along(cluster: Cluster, kubectl: str,
                                                          pod: tuple[str, Path]) -> None:
    name, workdir = pod
    pid_file = workdir / "exec.pid"
    with subprocess.Popen([kubectl, "exec", name, "-c", "main", "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 301"],
                          env=cluster.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as client:
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.1)
        pid = int(pid_file.read_text())
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")
        client.kill()
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the exec'd command outlived its client"


def test_exec_refusals(cluster: Cluster, kubectl: str, pod: tuple[str, Path]) -> None:
    name, _ = pod
    missing = run(cluster, kubectl, "exec", "no-such-pod", "--", "true")
    assert missing.returncode == 1 and "NotFound" in missing.stderr and "no-such-pod" in missing.stderr
    wrong = run(cluster, kubectl, "exec", name, "-c", "nope", "--", "true")
    assert wrong.returncode == 1 and "container nope is not valid" in wrong.stderr
    done = name_for(kubectl, "done")
    ok(run(cluster, kubectl, "run", done, "--image=busybox", "--restart=Never", "--", "true"))
    for _ in range(100):
        if ok(run(cluster, kubectl, "get", "pod", done, "-o", "jsonpath={.status.phase}")) == "Succeeded":
            break
        time.sleep(0.2)
    finished = run(cluster, kubectl, "exec", done, "--", "true")
    assert finished.returncode == 1 and "completed pod" in finished.stderr, finished.stderr


def test_attach_streams_new_output_and_refuses_stdin(cluster: Cluster, kubectl: str) -> None:
    name = name_for(kubectl, "ticker")
    ok(run(cluster, kubectl, "run", name, "--image=busybox", "--restart=Never", "--",
           "sh", "-c", "sleep 2; for i in 1 2 3; do echo tick-$i; sleep 0.3; done"))
    ok(run(cluster, kubectl, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s"))
    attached = run(cluster, kubectl, "attach", name, timeout=60)
    assert "tick-3" in attached.stdout, attached.stdout + attached.stderr
    long_running = name_for(kubectl, "sleeper")
    ok(run(cluster, kubectl, "run", long_running, "--image=busybox", "--restart=Never", "--", "sleep", "600"))
    ok(run(cluster, kubectl, "wait", "--for=condition=Ready", f"pod/{long_running}", "--timeout=60s"))
    refused = run(cluster, kubectl, "attach", "-i", long_running)
    assert refused.returncode == 1 and "stdin is not enabled for this container" in refused.stderr


def test_kubectl_port_forward_reaches_the_pods_server(cluster: Cluster, kubectl: str,
                                                      pod: tuple[str, Path]) -> None:
    """kubectl 1.31+ tunnels SPDY in a WebSocket (``SPDY/3.1+portforward.k8s.io``); 300 kB exceed SPDY's
    64 KiB window, so a flow-control stall would show."""
    name, workdir = pod
    payload = os.urandom(300_000)
    (workdir / "big.bin").write_bytes(payload)
    with subprocess.Popen([kubectl, "port-forward", f"pod/{name}", ":8000", ":8009"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=cluster.env()) as forwarding:
        try:
            assert forwarding.stdout is not None
            ports = []
            while len(ports) < 2:
                line = forwarding.stdout.readline()
                assert line, forwarding.stderr.read() if forwarding.stderr else ""
                if line.startswith("Forwarding from 127.0.0.1:"):
                    ports.append(int(line.split(":")[1].split()[0]))
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/big.bin", timeout=30) as answer:
                assert answer.read() == payload
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/index.html", timeout=30) as answer:
                assert answer.read() == f"served from {name}\n".encode()
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/", timeout=30)  # nothing listens on 8009
            _, errors = forwarding.communicate(timeout=30)  # kubectl gives up on an error stream's message
            assert "error forwarding port 8009" in errors, errors
        finally:
            forwarding.kill()


def test_spdy_upgrade_and_plain_requests_are_refused_with_a_reason(cluster: Cluster, pod: tuple[str, Path]) -> None:
    name, _ = pod
    head = raw_request(cluster, f"/api/v1/namespaces/default/pods/{name}/portforward?ports=8000",
                       "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"not a SPDY upgrade" in head
    head = raw_request(cluster, f"/api/v1/namespaces/default/pods/{name}/exec?command=true&container=main", "")
    assert head.startswith(b"HTTP/1.1 400") and b"Upgrade request required" in head


def raw_request(cluster: Cluster, path: str, headers: str, *, token: bool = True) -> bytes:
    """One request on a fresh TLS connection; the answer's head and first bytes of body."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    auth = f"Authorization: Bearer {config['users'][0]['user']['token']}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}{headers}\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(request.encode())
        return tls.recv(65536)


def official_client(cluster: Cluster) -> Any:
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_official_python_client_exec_and_port_forward(cluster: Cluster) -> None:
    from kubernetes.stream import portforward, stream
    threads_before = set(threading.enumerate())
    name = "python-client"
    start_pod(cluster, require_tool("kubectl"), name)
    api = official_client(cluster)
    session = stream(api.connect_get_namespaced_pod_exec, name, "default", container="main",
                     command=["sh", "-c", "echo $POD_NAME; echo oops >&2; exit 4"], stdin=False, stdout=True,
                     stderr=True, tty=False, _preload_content=False)
    session.run_forever(timeout=20)
    assert (session.read_stdout(), session.read_stderr(), session.returncode) == (f"{name}\n", "oops\n", 4)
    session.close()
    assert stream(api.connect_get_namespaced_pod_exec, name, "default", container="main", command=["echo", "hi"],
                  stdin=False, stdout=True, stderr=True, tty=False) == "hi\n"
    terminal = stream(api.connect_get_namespaced_pod_exec, name, "default", container="main",
                      command=["sh", "-c", "read line; stty size; tty; echo got $line"], stdin=True, stdout=True,
                      stderr=False, tty=True, _preload_content=False)
    terminal.write_channel(4, json.dumps({"Width": 123, "Height": 45}))  # a resize, as a terminal sends
    time.sleep(0.3)
    terminal.write_stdin("hello\n")
    terminal.run_forever(timeout=20)
    lines = terminal.read_stdout().splitlines()
    terminal.close()
    assert lines[1:2] == ["45 123"] and lines[2].startswith("/dev/pts/") and lines[3] == "got hello", lines
    forward = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="8000")
    connection = forward.socket(8000)
    connection.setblocking(True)
    connection.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    forward.close()
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(f"served from {name}\n".encode())
    closed = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="8009")
    nothing = closed.socket(8009)
    nothing.setblocking(True)
    assert nothing.recv(10) == b""
    nothing.close()
    closed.close()
    error = closed.error(8009) or ""
    api.api_client.close()
    # The client leaves sockets open (preloaded exec calls, port-forward's reader threads): drop
    # every reference, wait for its threads, then collect here, so that no socket is finalised
    # (an unraisable ResourceWarning) while another test runs.
    del session, terminal, forward, connection, closed, nothing, api
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert "error forwarding port 8009" in error


def test_unauthenticated_websocket_gets_401(cluster: Cluster) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    answer = raw_request(cluster, "/api/v1/namespaces/default/pods/python-client/exec?command=true",
                         f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n", token=False)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert json.loads(body)["reason"] == "Unauthorized"
