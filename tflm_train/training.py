"""Training and evaluation loops over a Dataset on the host simulator."""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np

from tflm_train.data import Dataset
from tflm_train.results import TrainResult
from tflm_train.runtime import Trainer


def _predicted_class(logits: np.ndarray) -> int:
    return int(np.argmax(logits.reshape(-1)))


def _target(data: Dataset, i: int):
    return None if data.y is None else data.y[i]


class StallDetector:
    """Warns once when the loss has been exactly the same for `window` steps
    in a row: nothing moves (saturated outputs, or a learning rate too small
    to change any int8 weight)."""

    def __init__(self, log: Callable[[str], Any], window: int = 100):
        self.log, self.window = log, window
        self.last, self.run, self.warned = None, 0, False

    def update(self, loss: float) -> None:
        """Records one step's loss; logs the warning once on a stall."""
        self.run = self.run + 1 if loss == self.last else 1
        self.last = loss
        if self.run == self.window and not self.warned:
            self.warned = True
            self.log(f"warning: the loss has been exactly {loss:.6g} for {self.window} steps; "
                     "training has stalled (is the learning rate large enough to move an int8 "
                     "weight, and are the layers feeding the loss saturated?)")


def sample_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation seeded by (seed, epoch),
    so the host, the firmware and reruns see the same sequence."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train(trainer: Trainer, data: Dataset, *, epochs: int | None = None,
          steps: int | None = None, seed: int = 0, progress: bool = True,
          log: Callable[[str], Any] = print) -> TrainResult:
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
    stall = StallDetector(log)
    for epoch in range(num_epochs):
        correct, losses = 0, []
        for i in sample_order(n, seed, epoch):
            if done == total:
                break
            loss = trainer.step(data.x[i], _target(data, i))
            stall.update(loss)
            if trainer.is_classifier:
                correct += _predicted_class(trainer.last_real_output()) == data.y[i]
            losses.append(loss)
            done += 1
            if bar is not None:
                bar.update(1)
        step_losses.extend(losses)
        stats = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "steps": len(losses)}
        summary = f"epoch {epoch + 1}/{num_epochs}: loss {stats['loss']:.4f}"
        if trainer.is_classifier:
            stats["train_accuracy"] = correct / len(losses)
            summary += f" train accuracy {stats['train_accuracy']:.3f}"
        epoch_stats.append(stats)
        log(f"{summary} ({len(losses)} steps)")
    if bar is not None:
        bar.close()
    return TrainResult(steps=done, seed=seed, loss_history=step_losses, epochs=epoch_stats,
                       weights_sha256=trainer.weights_sha256())


def evaluate(trainer: Trainer, data: Dataset) -> dict:
    """Mean loss in infer mode (weights unchanged), and for a classifier the
    accuracy of the real-valued logits' argmax (export keeps it: the exported
    int8 output is rescaled to the trained logits' range)."""
    correct, losses = 0, []
    for i in range(len(data)):
        loss, _ = trainer.evaluate_sample(data.x[i], _target(data, i))
        losses.append(loss)
        if trainer.is_classifier:
            correct += _predicted_class(trainer.last_real_output()) == data.y[i]
    result = {"loss": float(np.mean(losses)), "samples": len(data)}
    if trainer.is_classifier:
        result["accuracy"] = correct / len(data)
    return result
