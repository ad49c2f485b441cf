"""The demo's smaller real workload when PyTorch is not installed.

Same contract as ``train.py`` — ``RANK``/``WORLD_SIZE`` from the environment, a checkpoint
after every epoch in ``$CORRAL_CHECKPOINT_DIR`` (atomic rename), resume from the latest,
``epoch=E loss=L`` lines and ``final accuracy=A target=T`` — but each rank trains a
scikit-learn ``SGDClassifier`` on its shard of the digits data with ``partial_fit``, and
rank 0's model is the one that is checkpointed and scored. No gradients are exchanged:
it shows scheduling, checkpointing and healing, not distributed training.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--target-accuracy", type=float, default=0.9)
    parser.add_argument("--checkpoint-dir", default=os.environ.get("CORRAL_CHECKPOINT_DIR", "checkpoints"))
    args = parser.parse_args()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(digits.data / 16.0, digits.target, test_size=0.25,
                                                        random_state=0)
    shard_x, shard_y = train_x[rank::world], train_y[rank::world]
    directory = Path(args.checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "sklearn-latest.pkl"
    model, first_epoch = SGDClassifier(loss="log_loss", random_state=rank), 1
    if checkpoint.exists():
        with checkpoint.open("rb") as handle:
            saved = pickle.load(handle)  # our own checkpoint
        model, first_epoch = saved["model"], saved["epoch"] + 1
        print(f"resumed from epoch {saved['epoch']}", flush=True)
    for epoch in range(first_epoch, args.epochs + 1):
        model.partial_fit(shard_x, shard_y, classes=np.arange(10))
        loss = float(np.mean(model.predict(shard_x) != shard_y))
        time.sleep(0.5)
        if rank == 0:
            temporary = directory / "sklearn-latest.pkl.tmp"
            with temporary.open("wb") as handle:
                pickle.dump({"model": model, "epoch": epoch}, handle)
            temporary.replace(checkpoint)
        print(f"epoch={epoch} loss={loss:.4f} world={world}", flush=True)
    accuracy = float(model.score(test_x, test_y))
    print(f"final accuracy={accuracy:.4f} target={args.target_accuracy:.4f}", flush=True)
    return 0 if accuracy >= args.target_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
