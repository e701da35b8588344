"""Training and evaluation loops over a Dataset on the host simulator."""
from __future__ import annotations

import math
import sys

import numpy as np

from tflm_train.data import Dataset
from tflm_train.runtime import Trainer


def _predicted_class(output: np.ndarray) -> int:
    return int(np.argmax(output.reshape(-1)))


def sample_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation seeded by (seed, epoch),
    so the host, the firmware and reruns see the same sequence."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train(trainer: Trainer, data: Dataset, *, epochs: int | None = None,
          steps: int | None = None, seed: int = 0, progress: bool = True,
          log=print) -> dict:
    """Runs SGD sample by sample. Exactly one of `epochs`/`steps` is given;
    `steps` walks the epoch orders until that many samples were used.

    Returns the per-step losses, per-epoch mean loss and running accuracy
    (from each step's own forward pass, before its update), and the digest
    of the trained weights.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs or steps")
    n = len(data)
    total = steps if steps is not None else epochs * n
    num_epochs = math.ceil(total / n)
    step_losses: list[float] = []
    epoch_stats = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False)
    done = 0
    for epoch in range(num_epochs):
        correct, losses = 0, []
        for i in sample_order(n, seed, epoch):
            if done == total:
                break
            loss = trainer.step(data.x[i], data.y[i])
            correct += _predicted_class(trainer.last_output()) == data.y[i]
            losses.append(loss)
            done += 1
            if bar is not None:
                bar.update(1)
        step_losses.extend(losses)
        stats = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                 "train_accuracy": correct / len(losses), "steps": len(losses)}
        epoch_stats.append(stats)
        log(f"epoch {epoch + 1}/{num_epochs}: loss {stats['loss']:.4f} "
            f"train accuracy {stats['train_accuracy']:.3f} ({len(losses)} steps)")
    if bar is not None:
        bar.close()
    return {"steps": done, "seed": seed, "loss_history": step_losses,
            "epochs": epoch_stats, "weights_sha256": trainer.weights_sha256()}


def evaluate(trainer: Trainer, data: Dataset) -> dict:
    """Accuracy and mean loss in infer mode (weights unchanged)."""
    correct, losses = 0, []
    for x, y in zip(data.x, data.y):
        loss, output = trainer.evaluate(x, y)
        losses.append(loss)
        correct += _predicted_class(output) == y
    return {"accuracy": correct / len(data), "loss": float(np.mean(losses)),
            "samples": len(data)}
