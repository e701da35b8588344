"""The TensorFlow reference of examples/optimizer_recipes.py.

tf_keras SGD on a tfmot QAT model with the device's optimizer recipe:
learning-rate schedule, momentum and mini-batches, as specified for
tflm-train's `"optimizer"` scheme field:

* learning rate of update t = 0, 1, 2, ... (t counts applied updates, which
  is what Keras' `optimizer.iterations` holds when the update is computed):
  lr_t = lr * f(t) with `lr_factor` below;
* tf.keras.optimizers.SGD(learning_rate=SpecSchedule, momentum=m,
  nesterov=False): v <- m v - lr_t g; w <- w + v;
* g is the gradient of the mean loss over B consecutive samples of the
  sample stream (all epochs' orders concatenated); a trailing partial batch
  is dropped, as on the device.

Like examples/_qat_reference.py (whose scheme masks, calibration and
prediction it reuses), the model runs in inference mode, so quantizer
ranges and BatchNorm statistics stay at the source domain, and only the
scheme's parameters train, through gradient masks (a masked entry's
gradient is 0, so its velocity stays 0 and it never moves).

Nothing here imports tflm_train: the results do not depend on its code.
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

import _qat_reference as ref  # noqa: E402

SCHEDULES = ("constant", "cosine", "step")


def lr_factor(t: int, schedule: str = "constant", warmup_steps: int = 0,
              decay_steps: int = 1, alpha: float = 0.0, decay_rate: float = 0.1) -> float:
    """f(t) of the spec, in double precision (the documentation of
    SpecSchedule, and what it is checked against)."""
    if t < warmup_steps:
        return (t + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        u = min(t - warmup_steps, decay_steps) / decay_steps
        return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * u))
    if schedule == "step":
        return decay_rate ** math.floor((t - warmup_steps) / decay_steps)
    raise ValueError(f"unknown schedule {schedule!r}")


class SpecSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr * f(t) as a Keras LearningRateSchedule (t = optimizer.iterations).

    The kind of schedule is fixed; lr, warm-up, decay steps, alpha and the
    decay rate are variables, so one compiled training step serves every
    run (`set` before each run)."""

    def __init__(self, kind: str = "constant"):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}")
        self.kind = kind
        make = lambda value: tf.Variable(value, dtype=tf.float32, trainable=False)  # noqa: E731
        self.lr, self.warmup, self.decay = make(0.01), make(0.0), make(1.0)
        self.alpha, self.rate = make(0.0), make(0.1)

    def set(self, lr: float, warmup_steps: int = 0, decay_steps: int = 1,
            alpha: float = 0.0, decay_rate: float = 0.1) -> None:
        self.lr.assign(lr)
        self.warmup.assign(float(warmup_steps))
        self.decay.assign(float(decay_steps))
        self.alpha.assign(alpha)
        self.rate.assign(decay_rate)

    def __call__(self, step):
        t = tf.cast(step, tf.float32)
        warm = (t + 1.0) / tf.maximum(self.warmup, 1.0)
        if self.kind == "constant":
            after = tf.ones_like(t)
        elif self.kind == "cosine":
            u = tf.minimum(t - self.warmup, self.decay) / self.decay
            after = self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + tf.cos(math.pi * u))
        else:
            after = tf.pow(self.rate, tf.floor((t - self.warmup) / self.decay))
        return self.lr * tf.where(t < self.warmup, warm, after)

    def get_config(self):
        return {"kind": self.kind}


def check_schedule(kind: str, **settings) -> float:
    """Largest |SpecSchedule - lr * lr_factor| / lr over the run's updates
    (settings: lr, warmup_steps, decay_steps, ...; `updates` how many)."""
    updates = settings.pop("updates")
    schedule = SpecSchedule(kind)
    schedule.set(**settings)
    lr = settings["lr"]
    keys = ("warmup_steps", "decay_steps", "alpha", "decay_rate")
    spec = {k: settings[k] for k in keys if k in settings}
    got = schedule(tf.range(updates)).numpy()
    want = np.array([lr * lr_factor(t, kind, **spec) for t in range(updates)])
    return float(np.max(np.abs(got - want)) / lr)


def batches(order: list[np.ndarray], batch_size: int) -> np.ndarray:
    """The epochs' sample orders as one stream, cut into consecutive batches
    of batch_size samples (rows); a trailing partial batch is dropped."""
    stream = np.concatenate(order)
    count = len(stream) // batch_size
    return stream[:count * batch_size].reshape(count, batch_size)


class RecipeTuner:
    """Masked SGD fine-tuning of one QAT model with schedules, momentum and
    mini-batches, restarted from the pretrained weights for every run."""

    def __init__(self, model: keras.Model, scheme: str):
        self.model = model
        self.scheme = scheme
        self._initial = model.get_weights()
        self._parts = ref.scheme_variables(model, scheme)
        # (schedule kind, momentum) -> (step, optimizer, schedule); the step
        # retraces once per batch size.
        self._steps: dict[tuple[str, float], tuple] = {}

    def run(self, x: np.ndarray, y: np.ndarray, order: list[np.ndarray], lr: float, *,
            schedule: str = "constant", warmup_steps: int = 0, decay_steps: int = 1,
            alpha: float = 0.0, decay_rate: float = 0.1, momentum: float = 0.0,
            batch_size: int = 1) -> list[float]:
        """Trains over the samples in `order` (one index array per epoch) in
        batches of batch_size; returns the batch-mean loss of every update."""
        self.model.set_weights(self._initial)
        step, optimizer, lr_schedule = self._step(schedule, momentum)
        lr_schedule.set(lr, warmup_steps, decay_steps, alpha, decay_rate)
        _reset(optimizer)
        losses = [float(step(x[rows], y[rows])) for rows in batches(order, batch_size)]
        if int(optimizer.iterations.numpy()) != len(losses):
            raise AssertionError("optimizer.iterations does not count the updates")
        return losses

    def _step(self, schedule: str, momentum: float):
        key = (schedule, momentum)
        if key not in self._steps:
            lr_schedule = SpecSchedule(schedule)
            optimizer = keras.optimizers.SGD(learning_rate=lr_schedule, momentum=momentum,
                                             nesterov=False)
            optimizer.build([v for v, _ in self._parts])
            self._steps[key] = (ref.make_step(self.model, self._parts, optimizer), optimizer,
                                lr_schedule)
        return self._steps[key]


def _reset(optimizer) -> None:
    """Back to update 0 with zero velocities."""
    optimizer.iterations.assign(0)
    for velocity in getattr(optimizer, "momentums", []):
        velocity.assign(tf.zeros_like(velocity))
