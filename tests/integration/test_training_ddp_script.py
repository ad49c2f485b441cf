"""The DDP example for real: two worker processes over gloo, SIGKILL, SIGTERM and resume.

These run ``examples/training/ddp/train.py`` exactly as torchrun or corral would, with the
torch.distributed environment variables and a checkpoint directory, and check the script's
contract: it trains to its accuracy target, checkpoints every epoch, resumes from the latest
checkpoint after a worker is killed (recomputing at most the epoch in flight), and saves a
mid-epoch checkpoint on SIGTERM so a graceful stop loses nothing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="PyTorch is optional: `make venv` installs the CPU wheel from this machine")
pytest.importorskip("sklearn", reason="scikit-learn provides the bundled digits data")

pytestmark = pytest.mark.timeout(420)  # generous: the machine's 2 cores are shared

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "training" / "ddp" / "train.py"
EPOCH_LINE = re.compile(r"^epoch=(\d+) loss=([\d.]+) train_s=([\d.]+) world=(\d+)$", re.M)
RESUMED = re.compile(r"resumed from checkpoint epoch=(\d+) step=(\d+) train_s=([\d.]+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gang:
    """N worker processes of one run, each logging to its own file."""

    def __init__(self, tmp: Path, tag: str, world: int, args: list[str]) -> None:
        port = free_port()
        self.logs = [tmp / f"{tag}-rank{rank}.log" for rank in range(world)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for rank in range(world):
            env = dict(os.environ)
            env.update(
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                RANK=str(rank), LOCAL_RANK="0", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
            )
            with self.logs[rank].open("wb") as out:
                self.procs.append(
                    subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
                )

    def log(self, rank: int) -> str:
        return self.logs[rank].read_text()

    def wait_for(self, rank: int, pattern: str, timeout: float = 150.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log(rank), re.M):
                return
            if self.procs[rank].poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"rank {rank} never printed {pattern!r}:\n{self.log(rank)}")

    def wait(self, timeout: float = 150.0) -> list[int]:
        return [proc.wait(timeout=timeout) for proc in self.procs]

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def gangs():
    started: list[Gang] = []
    yield started
    for gang in started:
        gang.kill()


def test_two_workers_survive_sigkill_and_sigterm_and_reach_target(tmp_path: Path, gangs: list[Gang]) -> None:
    checkpoints = tmp_path / "ckpt"
    args = ["--epochs", "8", "--step-delay", "0.015", "--checkpoint-dir", str(checkpoints)]

    # 1. Train until two epochs are checkpointed, then SIGKILL rank 1: the gang dies.
    first = Gang(tmp_path, "first", 2, args)
    gangs.append(first)
    first.wait_for(0, r"^epoch=2 ")
    first.procs[1].send_signal(signal.SIGKILL)
    codes = first.wait()
    assert codes[1] == -signal.SIGKILL
    assert codes[0] != 0, "rank 0 must notice its peer is gone and fail"
    done_before_kill = [int(m.group(1)) for m in EPOCH_LINE.finditer(first.log(0))]
    assert done_before_kill and max(done_before_kill) >= 2

    # 2. Restart the whole gang: it resumes from the latest checkpoint, losing at most the epoch in flight.
    second = Gang(tmp_path, "second", 2, args)
    gangs.append(second)
    second.wait_for(0, r"^epoch=\d+ ")
    resumed = RESUMED.search(second.log(0))
    assert resumed, second.log(0)
    resumed_epoch = int(resumed.group(1))
    assert max(done_before_kill) <= resumed_epoch <= max(done_before_kill) + 1
    assert int(resumed.group(2)) == 0, "a SIGKILL leaves only end-of-epoch checkpoints"
    epoch_times = [float(m.group(3)) for m in EPOCH_LINE.finditer(first.log(0))]
    one_epoch = max(b - a for a, b in zip([0.0, *epoch_times], epoch_times, strict=False))
    lost = max(epoch_times) - float(resumed.group(3))
    assert lost <= one_epoch + 1e-6, f"recomputed {lost:.3f}s of training, more than one epoch ({one_epoch:.3f}s)"
    assert RESUMED.search(second.log(1)), "every rank resumes, not only rank 0"

    # 3. SIGTERM both (what preemption and `kubectl delete` send): rank 0 saves mid-epoch and all exit 143.
    second.wait_for(0, rf"^epoch={resumed_epoch + 1} ")
    time.sleep(0.15)
    for proc in second.procs:
        proc.send_signal(signal.SIGTERM)
    codes = second.wait()
    assert 143 in codes, (codes, second.log(0), second.log(1))
    assert "SIGTERM: saved checkpoint" in second.log(0) or "after epoch" in second.log(0)
    saved = sorted(p.name for p in checkpoints.glob("epoch-*.pt"))
    assert len(saved) <= 2, saved

    # 4. Resume again and finish: the final accuracy reaches the target, exit 0 everywhere.
    third = Gang(tmp_path, "third", 2, args)
    gangs.append(third)
    assert third.wait() == [0, 0], third.log(0) + third.log(1)
    final = re.search(r"final accuracy=([\d.]+) target=([\d.]+)", third.log(0))
    assert final and float(final.group(1)) >= float(final.group(2))
    again = RESUMED.search(third.log(0))
    assert again and int(again.group(1)) >= resumed_epoch + 1
    assert not list(checkpoints.glob(".*.tmp")), "no temporary files are left behind"


def test_below_target_exits_non_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "1", "--target-accuracy", "0.999"],
        capture_output=True, text=True, timeout=150, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "final accuracy=" in result.stdout
    assert not any(tmp_path.iterdir()), "without a checkpoint dir nothing is written"
