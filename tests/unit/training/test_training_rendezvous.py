"""The rendezvous wrapper for real: rank 0 publishes its pod IP, the others wait and get MASTER_ADDR."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from corral.controllers.trainingjob import policy


def start(pod: dict, index: int, pod_ip: str, out: Path) -> subprocess.Popen[bytes]:
    container = pod["spec"]["containers"][0]
    env = {"PATH": os.environ["PATH"], "POD_IP": pod_ip, "CORRAL_RENDEZVOUS_TIMEOUT_TICKS": "100"}
    env.update({item["name"]: item["value"] for item in container["env"] if "value" in item})
    with out.open("wb") as handle:
        return subprocess.Popen(container["command"], env=env, stdout=handle, stderr=subprocess.STDOUT)


def test_workers_learn_rank_zeros_address(tmp_path: Path) -> None:
    job = {"apiVersion": "corral.dev/v1alpha1", "kind": "TrainingJob",
           "metadata": {"name": "ddp", "namespace": "default", "uid": "abcdef0123"},
           "spec": {"replicas": 2, "checkpoint": {"dir": str(tmp_path / "ckpt")},
                    "template": {"spec": {"containers": [{
                        "name": "w", "command": ["sh", "-c"],
                        "args": ['echo "rank=$RANK master=$MASTER_ADDR:$MASTER_PORT pet=$PET_MASTER_ADDR" "$@"',
                                 "argv0", "extra arg"]}]}}}}
    config = policy.Config(data_dir=str(tmp_path))
    pods = [policy.worker_pod(job, index, 2, 3, config) for index in range(2)]
    # Rank 1 starts first and waits; rank 0 publishes 127.0.9.9.
    waiting = start(pods[1], 1, "127.0.9.10", tmp_path / "r1.out")
    time.sleep(0.3)
    assert waiting.poll() is None, "rank 1 waits for rank 0"
    first = start(pods[0], 0, "127.0.9.9", tmp_path / "r0.out")
    assert first.wait(10) == 0 and waiting.wait(10) == 0
    port = policy.master_port(job)
    assert (tmp_path / "r0.out").read_text().strip() == f"rank=0 master=127.0.9.9:{port} pet=127.0.9.9 extra arg"
    assert (tmp_path / "r1.out").read_text().strip() == f"rank=1 master=127.0.9.9:{port} pet=127.0.9.9 extra arg"
    published = list((tmp_path / "ckpt" / ".corral").iterdir())
    assert [path.name for path in published] == ["rendezvous-abcdef01-3"]


def test_a_worker_gives_up_when_rank_zero_never_comes(tmp_path: Path) -> None:
    job = {"apiVersion": "corral.dev/v1alpha1", "kind": "TrainingJob",
           "metadata": {"name": "ddp", "namespace": "default", "uid": "u1"},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "w", "command": ["true"]}]}}}}
    pod = policy.worker_pod(job, 1, 2, 0, policy.Config(data_dir=str(tmp_path)))
    pod["spec"]["containers"][0]["env"].append({"name": "CORRAL_RENDEZVOUS_TIMEOUT_TICKS", "value": "3"})
    proc = start(pod, 1, "127.0.9.10", tmp_path / "r1.out")
    proc.wait(10)
    assert proc.returncode == 1
    assert "rank 0 never published its address" in (tmp_path / "r1.out").read_text()
