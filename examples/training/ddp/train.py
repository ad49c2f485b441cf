"""Distributed data-parallel training of a small MLP on scikit-learn's bundled digits data.

Runs unchanged under ``torchrun``, under corral's TrainingJob, or as one plain process:

    torchrun --nproc-per-node 2 examples/training/ddp/train.py --epochs 20
    python examples/training/ddp/train.py            # a world of one

It reads the usual ``torch.distributed`` environment — ``MASTER_ADDR``, ``MASTER_PORT``,
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` — and uses NCCL when a GPU is visible, gloo on CPU.
Nothing is downloaded: the data is the 8x8 digits set that ships inside scikit-learn.

Checkpoints: after every epoch rank 0 writes ``epoch-NNNN.pt`` into ``--checkpoint-dir``
(default ``$CORRAL_CHECKPOINT_DIR``) atomically (temporary file, fsync, rename), keeping the
last two; on start every rank loads the latest one and goes on from there, so a restart
recomputes at most the epoch that was in progress. On SIGTERM (preemption, ``kubectl delete``)
the workers stop at the next step boundary and rank 0 saves a mid-epoch checkpoint first, so
a graceful stop loses no work at all.

Every epoch prints one line ``epoch=E loss=L train_s=T world=W`` (``train_s`` is training time
accumulated across restarts), and the end prints ``final accuracy=A target=T``; the exit code
is 0 only when the accuracy reaches ``--target-accuracy``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

EXIT_BELOW_TARGET = 2
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process stopped by SIGTERM


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("EPOCHS", "20")))
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--target-accuracy", type=float, default=0.93)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint-dir",
        default=os.environ.get("CORRAL_CHECKPOINT_DIR", ""),
        help="where checkpoints live (default $CORRAL_CHECKPOINT_DIR; empty: no checkpoints)",
    )
    parser.add_argument(
        "--step-delay",
        type=float,
        default=float(os.environ.get("STEP_DELAY", "0")),
        help="extra seconds per step, standing in for a bigger model (tests use it to stretch epochs)",
    )
    parser.add_argument(
        "--fail-at-epoch",
        type=int,
        default=-1,
        help="raise at the start of this epoch (for testing failure handling); -1: never",
    )
    return parser.parse_args(argv)


class Stop:
    """Set by SIGTERM; the loop checks it at every step boundary."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def load_data(seed: int) -> tuple[TensorDataset, TensorDataset]:
    digits = load_digits()
    features = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    return TensorDataset(features[train], labels[train]), TensorDataset(features[test], labels[test])


def make_model(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def checkpoints(directory: Path) -> list[Path]:
    return sorted(directory.glob("epoch-*.pt"))


def latest_checkpoint(directory: Path | None) -> dict[str, Any] | None:
    if directory is None or not directory.is_dir():
        return None
    for path in reversed(checkpoints(directory)):
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
            return state
        except Exception as error:  # a torn file cannot happen with rename, but never trust disks
            print(f"warning: skipping unreadable checkpoint {path}: {error}", flush=True)
    return None


def save_checkpoint(directory: Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write atomically: a reader sees the old checkpoint or the new one, never half of one."""
    directory.mkdir(parents=True, exist_ok=True)
    # Mid-epoch checkpoints (after SIGTERM) sort after their epoch's start: epoch-0003.0017.pt.
    name = f"epoch-{state['epoch']:04d}.{state['step']:04d}.pt"
    final = directory / name
    temporary = directory / f".{name}.{os.getpid()}.tmp"
    with temporary.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    for old in checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def evaluate(model: nn.Module, data: TensorDataset, device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        features, labels = data.tensors
        predictions = model(features.to(device)).argmax(dim=1)
        accuracy = (predictions == labels.to(device)).float().mean().item()
    model.train()
    return float(accuracy)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = Stop()
    signal.signal(signal.SIGTERM, stop.handler)

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    # torchrun (and corral) set MASTER_ADDR: join the process group even in a world of one (NCCL on 1 GPU).
    distributed = world_size > 1 or "MASTER_ADDR" in os.environ
    if distributed:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    restart = os.environ.get("CORRAL_RESTART_COUNT", "0")
    print(
        f"rank={rank} world={world_size} backend={backend} device={device} pid={os.getpid()} "
        f"master={os.environ.get('MASTER_ADDR', '-')}:{os.environ.get('MASTER_PORT', '-')} restart={restart}",
        flush=True,
    )

    torch.manual_seed(args.seed)
    train_data, test_data = load_data(args.seed)
    model = make_model(args.hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else None

    start_epoch, start_step, train_seconds = 0, 0, 0.0
    state = latest_checkpoint(checkpoint_dir)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_step, train_seconds = state["epoch"], state["step"], state["train_seconds"]
        if state.get("world_size") != world_size:
            start_step = 0  # batches are split differently now: redo the interrupted epoch whole
        print(f"resumed from checkpoint epoch={start_epoch} step={start_step} train_s={train_seconds:.3f}", flush=True)

    ddp: nn.Module = DistributedDataParallel(model) if distributed else model
    sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train_data, batch_size=args.batch_size, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss()

    def snapshot(epoch: int, step: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": step,
            "train_seconds": train_seconds,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "world_size": world_size,
        }

    def terminate(epoch: int, step: int) -> int:
        if rank == 0 and checkpoint_dir is not None:
            path = save_checkpoint(checkpoint_dir, snapshot(epoch, step))
            print(f"SIGTERM: saved checkpoint {path.name} at epoch={epoch} step={step}", flush=True)
        print(f"rank={rank} stopping on SIGTERM", flush=True)
        return EXIT_TERMINATED

    for epoch in range(start_epoch, args.epochs):
        if epoch == args.fail_at_epoch:
            raise RuntimeError(f"--fail-at-epoch {epoch}: failing on purpose")
        sampler.set_epoch(epoch)
        total, batches = 0.0, 0
        skip = start_step if epoch == start_epoch else 0
        began = time.monotonic()
        step = 0
        for step, (features, labels) in enumerate(loader):
            if step < skip:
                continue
            if stop.requested:
                train_seconds += time.monotonic() - began
                return terminate(epoch, step)
            try:
                optimizer.zero_grad()
                loss = loss_fn(ddp(features.to(device)), labels.to(device))
                loss.backward()
                optimizer.step()
            except Exception:
                # A peer stopped on SIGTERM first: the failed step changed nothing, save what we have.
                if stop.requested:
                    train_seconds += time.monotonic() - began
                    return terminate(epoch, step)
                raise
            total += float(loss.item())
            batches += 1
            if args.step_delay > 0:
                time.sleep(args.step_delay)
        train_seconds += time.monotonic() - began
        if rank == 0 and checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, snapshot(epoch + 1, 0))
        print(
            f"epoch={epoch + 1} loss={total / max(batches, 1):.4f} train_s={train_seconds:.3f} world={world_size}",
            flush=True,
        )
        if stop.requested:
            print(f"rank={rank} stopping on SIGTERM after epoch {epoch + 1}", flush=True)
            return EXIT_TERMINATED

    accuracy = evaluate(model, test_data, device)
    print(f"final accuracy={accuracy:.4f} target={args.target_accuracy:.4f}", flush=True)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0 if accuracy >= args.target_accuracy else EXIT_BELOW_TARGET


if __name__ == "__main__":
    sys.exit(main())
