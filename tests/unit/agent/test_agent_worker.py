"""The pod worker with real processes: runs, restarts, probes, termination, adoption."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from corral.agent.gpus import parse_simulated
from corral.agent.process import proc_start_ticks
from corral.agent.status import pod_status
from corral.agent.worker import PodWorker, RuntimeConfig
from corral.util.clock import SystemClock

from .helpers import make_pod, py, wait_for


@pytest.fixture
def config(tmp_path: Path) -> RuntimeConfig:
    return RuntimeConfig(data_dir=tmp_path, node_name="node-a", devices=parse_simulated("4xH100-80GB"),
                         allocatable={"cpu": "2", "memory": "8Gi"}, backoff_initial=0.2, backoff_max=1.0,
                         log_index_period=0.05, host_env=dict(os.environ))


@pytest.fixture
async def workers() -> AsyncIterator[list[PodWorker]]:
    started: list[PodWorker] = []
    yield started
    for worker in started:
        await worker.terminate(grace=0)


def run(workers: list[PodWorker], pod: dict[str, Any], config: RuntimeConfig, ip: str = "127.9.0.2",
        adopt: bool = False) -> PodWorker:
    worker = PodWorker(pod, ip, config, clock=SystemClock(), on_change=lambda: None)
    worker.start(adopt_existing=adopt)
    workers.append(worker)
    return worker


def phase(worker: PodWorker) -> str:
    return str(pod_status(worker.pod, worker.runtime, SystemClock().now())["phase"])


def log_text(worker: PodWorker, container: str, previous: bool = False) -> str:
    path = worker.log_file(container, previous)
    assert path is not None
    return path.read_text()


async def test_pod_runs_init_in_order_and_succeeds_with_env(config: RuntimeConfig, workers: list[PodWorker],
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "order"
    pod = make_pod("hello", [py("main", "import os; print('hello', os.environ['MY_NAME'], os.environ['MY_IP'],"
                                " os.environ['MY_NODE'], os.environ['MEM'], os.getcwd(), os.environ['POD_IP'])",
                                env=[{"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                     {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                     {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                     {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                                         "resource": "limits.memory", "divisor": "1Mi"}}}],
                                workingDir=str(tmp_path / "work"),
                                resources={"limits": {"memory": "64Mi"}})],
                   init=[py("first", f"open({str(marker)!r}, 'a').write('1')"),
                         py("second", f"open({str(marker)!r}, 'a').write('2')")])
    worker = run(workers, pod, config)
    await asyncio.wait_for(worker.finished.wait(), 10)
    assert marker.read_text() == "12"
    assert phase(worker) == "Succeeded"
    assert log_text(worker, "main").strip() == f"hello hello 127.9.0.2 node-a 64 {tmp_path / 'work'} 127.9.0.2"
    status = pod_status(worker.pod, worker.runtime, SystemClock().now())
    main = status["containerStatuses"][0]
    assert main["state"]["terminated"]["exitCode"] == 0
    assert main["state"]["terminated"]["reason"] == "Completed"
    assert [c["state"]["terminated"]["reason"] for c in status["initContainerStatuses"]] == ["Completed"] * 2
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "False",
                          "Ready": "False"}


async def test_crash_with_on_failure_restarts_with_doubling_backoff(config: RuntimeConfig,
                                                                    workers: list[PodWorker],
                                                                    tmp_path: Path) -> None:
    stamps = tmp_path / "starts"
    code = f"import time; open({str(stamps)!r}, 'a').write(f'{{time.time()}}\\n'); print('crash'); raise SystemExit(3)"
    worker = run(workers, make_pod("crash", [py("c", code)], restart_policy="OnFailure"), config)
    await wait_for(lambda: stamps.exists() and len(stamps.read_text().split()) >= 4, timeout=15,
                   what="four starts")
    starts = [float(x) for x in stamps.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # back-off 0.2 s, 0.4 s, 0.8 s (plus process start time): each gap at least its delay and growing
    assert len(gaps) >= 3
    # lower bounds only: process start-up time on a loaded machine adds noise on top
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
    status = pod_status(worker.pod, worker.runtime, SystemClock().now())
    cstatus = status["containerStatuses"][0]
    assert cstatus["restartCount"] >= 3
    assert cstatus["lastState"]["terminated"]["exitCode"] == 3
    assert status["phase"] == "Running"
    assert log_text(worker, "c", previous=True) == "crash\n"


async def test_crash_then_success_under_on_failure_ends_succeeded(config: RuntimeConfig,
                                                                  workers: list[PodWorker],
                                                                  tmp_path: Path) -> None:
    counter = tmp_path / "n"
    code = (f"import os; p={str(counter)!r}; n=int(open(p).read()) if os.path.exists(p) else 0;"
            " open(p,'w').write(str(n+1)); raise SystemExit(0 if n >= 1 else 1)")
    worker = run(workers, make_pod("flaky", [py("c", code)], restart_policy="OnFailure"), config)
    await asyncio.wait_for(worker.finished.wait(), 10)
    assert phase(worker) == "Succeeded"
    assert worker.runtime.containers[0].restart_count == 1


async def test_never_policy_failure_fails_the_pod(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    worker = run(workers, make_pod("fail", [py("c", "raise SystemExit(2)")]), config)
    await asyncio.wait_for(worker.finished.wait(), 10)
    assert phase(worker) == "Failed"
    assert worker.runtime.containers[0].last is not None
    assert worker.runtime.containers[0].last.reason == "Error"


async def test_liveness_failure_restarts_the_container(config: RuntimeConfig, workers: list[PodWorker],
                                                       tmp_path: Path) -> None:
    alive = tmp_path / "alive"
    alive.write_text("ok")
    probe = {"exec": {"command": ["test", "-f", str(alive)]}, "periodSeconds": 0.1, "failureThreshold": 2}
    pod = make_pod("live", [py("c", "import time; time.sleep(60)", livenessProbe=probe)],
                   restart_policy="Always", grace=1)
    worker = run(workers, pod, config)
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.state == "running", what="running")
    await asyncio.sleep(0.5)
    assert rt.restart_count == 0
    alive.unlink()
    await wait_for(lambda: rt.restart_count >= 1, timeout=10, what="a restart after liveness failure")
    assert rt.previous is not None
    assert rt.previous.message is not None and "Liveness probe failed" in rt.previous.message
    alive.write_text("ok")
    await wait_for(lambda: rt.state == "running", what="running again")


async def test_readiness_toggles_with_a_real_http_server(config: RuntimeConfig, workers: list[PodWorker],
                                                         tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    server = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        ok = os.path.exists({str(flag)!r})\n"
        "        self.send_response(200 if ok else 503); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
    )
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 0.1, "failureThreshold": 1}
    pod = make_pod("web", [py("web", server, readinessProbe=probe, ports=[{"name": "http", "containerPort": 8080}])],
                   restart_policy="Always")
    worker = run(workers, pod, config, ip="127.9.0.7")
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.state == "running", what="running")
    await asyncio.sleep(0.5)
    assert not rt.ready
    flag.write_text("1")
    await wait_for(lambda: rt.ready, what="ready")
    status = pod_status(worker.pod, worker.runtime, SystemClock().now())
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    flag.unlink()
    await wait_for(lambda: not rt.ready, what="not ready again")
    worker.pod["status"] = status
    later = pod_status(worker.pod, worker.runtime, SystemClock().now())
    ready = next(c for c in later["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"


async def test_terminate_sends_sigterm_then_sigkill_after_grace(config: RuntimeConfig,
                                                                workers: list[PodWorker]) -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: print('got SIGTERM', flush=True))\n"
            "print('started', flush=True)\n"
            "while True: time.sleep(0.05)\n")
    pre_stop = {"exec": {"command": ["sh", "-c", "echo prestop > $PRESTOP_FILE"]}}
    worker = run(workers, make_pod("stubborn", [py("c", code, lifecycle={"preStop": pre_stop},
                                                   env=[{"name": "PRESTOP_FILE",
                                                         "value": str(config.data_dir / "prestop")}])],
                                   grace=1), config)
    rt = worker.runtime.containers[0]
    await wait_for(lambda: "started" in (log_text(worker, "c") if rt.state == "running" else ""), what="started")
    began = time.monotonic()
    await worker.terminate()
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 4, elapsed
    assert "got SIGTERM" in log_text(worker, "c")
    assert (config.data_dir / "prestop").read_text().strip() == "prestop"
    assert rt.last is not None and rt.last.exit_code == 128 + signal.SIGKILL


async def test_two_pods_listen_on_the_same_port_at_different_ips(config: RuntimeConfig,
                                                                 workers: list[PodWorker]) -> None:
    server = ("import os, socket\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind((os.environ['POD_IP'], 9090)); s.listen()\n"
              "while True:\n"
              "    c, _ = s.accept(); c.sendall(os.environ['POD_NAME'].encode()); c.close()\n")
    first = run(workers, make_pod("a", [py("s", server)]), config, ip="127.9.1.1")
    second = run(workers, make_pod("b", [py("s", server)]), config, ip="127.9.1.2")

    async def ask(ip: str) -> bytes:
        reader, writer = await asyncio.open_connection(ip, 9090)
        data = await reader.read()
        writer.close()
        return data

    async def answer(ip: str) -> bytes | None:
        try:
            return await ask(ip)
        except OSError:
            return None

    for worker, ip, name in ((first, "127.9.1.1", b"a"), (second, "127.9.1.2", b"b")):
        await wait_for(lambda w=worker: w.runtime.containers[0].state == "running", what="running")
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            got = await answer(ip)
            await asyncio.sleep(0.05)
        assert got == name


async def test_gpu_variables_are_exactly_the_assignment(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    code = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']), repr(os.environ['NVIDIA_VISIBLE_DEVICES']))"
    assigned = run(workers, make_pod("gpu", [py("c", code, env=[{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}])],
                                     annotations={"corral.dev/gpu-devices": "1,3"}), config)
    plain = run(workers, make_pod("cpu", [py("c", code)]), config, ip="127.9.0.3")
    await asyncio.wait_for(assigned.finished.wait(), 10)
    await asyncio.wait_for(plain.finished.wait(), 10)
    assert log_text(assigned, "c").strip() == "'1,3' '1,3'"
    assert log_text(plain, "c").strip() == "'' ''"


async def test_bad_gpu_assignment_is_a_config_error(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    worker = run(workers, make_pod("gpu", [py("c", "pass")], annotations={"corral.dev/gpu-devices": "7"}), config)
    await wait_for(lambda: worker.runtime.containers[0].reason == "CreateContainerConfigError", what="error")
    assert "device 7 does not exist" in (worker.runtime.containers[0].message or "")


async def test_a_new_worker_adopts_the_running_process(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    pod = make_pod("long", [py("c", "import time\nprint('up', flush=True)\ntime.sleep(60)")],
                   restart_policy="Always")
    worker = PodWorker(pod, "127.9.0.4", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.state == "running", what="running")
    pid = rt.pid
    assert pid is not None
    await worker.detach()
    assert proc_start_ticks(pid) is not None, "detaching must not stop the process"
    again = run(workers, pod, config, ip="127.9.0.4", adopt=True)
    rt2 = again.runtime.containers[0]
    await wait_for(lambda: rt2.state == "running", what="adopted")
    assert rt2.pid == pid and rt2.restart_count == 0
    await again.terminate(grace=1)
    await wait_for(lambda: proc_start_ticks(pid) is None, what="the adopted process to stop")


async def test_adoption_of_a_vanished_process_reports_it_and_restarts(config: RuntimeConfig,
                                                                      workers: list[PodWorker]) -> None:
    pod = make_pod("gone", [py("c", "import time\ntime.sleep(60)")], restart_policy="Always")
    worker = PodWorker(pod, "127.9.0.5", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.state == "running", what="running")
    pid = rt.pid
    assert pid is not None
    await worker.detach()
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: proc_start_ticks(pid) is None, what="process gone")
    again = run(workers, pod, config, ip="127.9.0.5", adopt=True)
    rt2 = again.runtime.containers[0]
    await wait_for(lambda: rt2.restart_count == 1 and rt2.state == "running", what="restarted")
    assert rt2.previous is not None and rt2.previous.reason == "ContainerStatusUnknown"


async def test_startup_probe_over_tcp_gates_readiness(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    server = ("import os, socket, time\n"
              "time.sleep(0.8)\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind((os.environ['POD_IP'], 7070)); s.listen()\n"
              "while True:\n"
              "    c, _ = s.accept(); c.close()\n")
    probe = {"tcpSocket": {"port": 7070}, "periodSeconds": 0.1, "failureThreshold": 50}
    worker = run(workers, make_pod("slowstart", [py("s", server, startupProbe=probe)], restart_policy="Always"),
                 config, ip="127.9.2.1")
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.state == "running", what="running")
    assert not rt.started and not rt.ready
    await wait_for(lambda: rt.started, what="the startup probe to pass")
    assert rt.ready, "without a readiness probe a started container is ready"
    assert rt.restart_count == 0


async def test_failing_startup_probe_kills_and_restarts(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    probe = {"exec": {"command": ["false"]}, "periodSeconds": 0.1, "failureThreshold": 2}
    worker = run(workers, make_pod("neverstarts", [py("c", "import time; time.sleep(60)", startupProbe=probe)],
                                   restart_policy="Always", grace=0), config)
    rt = worker.runtime.containers[0]
    await wait_for(lambda: rt.restart_count >= 1, what="a restart after the startup probe failed")
    assert rt.previous is not None and "Startup probe failed" in (rt.previous.message or "")


async def test_failed_init_container_under_never_fails_the_pod(config: RuntimeConfig,
                                                               workers: list[PodWorker]) -> None:
    worker = run(workers, make_pod("badinit", [py("main", "print('never')")], init=[py("init", "raise SystemExit(1)")]),
                 config)
    await asyncio.wait_for(worker.finished.wait(), 10)
    status = pod_status(worker.pod, worker.runtime, SystemClock().now())
    assert status["phase"] == "Failed" and status["reason"] == "InitContainerFailed"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert not (config.pods_dir / worker.uid / "main").exists(), "the main container never ran"
