"""Labelled datasets for training and evaluation (DATA.npz files).

A DATA.npz holds `x`: samples, NHWC (or the model's input layout) with a
leading sample axis — float32 in the model's float input domain (quantized
with the model's input parameters) or already int8 — and `y`: integer class
labels, one per sample, or for a regression model (loss mse/mae) float
targets with the model output's shape after the sample axis; an autoencoder
(output shaped like its input) may omit `y`: it reconstructs its input.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tflm_train.errors import DataError

if TYPE_CHECKING:
    from tflm_train.runtime import Trainer


@dataclass
class Dataset:
    """Samples `x` (leading sample axis) and their labels or regression
    targets `y` (None: an autoencoder reconstructs `x`)."""

    x: np.ndarray
    y: np.ndarray | None  # labels, regression targets, or None (reconstruct x)

    def __len__(self) -> int:
        return len(self.x)


def load_npz(path: str | os.PathLike, *, sample_shape: tuple[int, ...] | None = None,
             num_classes: int | None = None,
             target_shape: tuple[int, ...] | None = None,
             target_optional: bool = False) -> Dataset:
    """Loads and validates DATA.npz; every problem is a one-line DataError.

    `target_shape` (a regression model's output shape without the batch)
    makes `y` float targets; with `target_optional` it may be absent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile/pickle/format errors from numpy
        raise DataError(f"{path}: not a readable .npz file ({e.__class__.__name__}: {e})") from None
    required = ("x",) if target_optional else ("x", "y")
    for key in required:
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has {sorted(arrays)})")
    return validate(Dataset(arrays["x"], arrays.get("y")), name=str(path),
                    sample_shape=sample_shape, num_classes=num_classes,
                    target_shape=target_shape)


def validate(data: Dataset, *, name: str = "data",
             sample_shape: tuple[int, ...] | None = None,
             num_classes: int | None = None,
             target_shape: tuple[int, ...] | None = None) -> Dataset:
    """`data` checked (one-line DataError naming `name`): samples present,
    finite and of `sample_shape`; integer labels in [0, `num_classes`), or
    with `target_shape` float regression targets. Returns the checked
    Dataset (labels as int64)."""
    x = np.asarray(data.x)
    if len(x) == 0:
        raise DataError(f"{name}: no samples")
    _check_samples(x, name, sample_shape)
    if target_shape is not None:
        return Dataset(x, _regression_targets(data.y, len(x), name, target_shape))
    y = np.asarray(data.y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: 'y' must be a 1-D integer array of labels, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} samples in 'x' but {len(y)} labels in 'y'")
    if num_classes is not None:
        out = (y < 0) | (y >= num_classes)
        if out.any():
            i = int(np.argmax(out))
            raise DataError(f"{name}: label {int(y[i])} of sample {i} out of range [0, {num_classes})")
    return Dataset(x, y.astype(np.int64))


def _regression_targets(y, count: int, name: str, target_shape) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{name}: 'y' must hold float regression targets, got {y.dtype}")
    if len(y) != count:
        raise DataError(f"{name}: {count} samples in 'x' but {len(y)} targets in 'y'")
    if int(np.prod(y.shape[1:])) != int(np.prod(target_shape)):
        raise DataError(f"{name}: targets have shape {tuple(y.shape[1:])}, the model output "
                        f"has {tuple(target_shape)}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{name}: 'y' contains NaN or infinity")
    return y.astype(np.float32).reshape((count,) + tuple(target_shape))


def _check_samples(x: np.ndarray, name: str, sample_shape) -> None:
    if x.dtype != np.int8:
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{name}: 'x' must be float or int8, got {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
            raise DataError(f"{name}: 'x' contains NaN or infinity (first in sample {first})")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise DataError(f"{name}: samples have shape {tuple(x.shape[1:])}, model expects {tuple(sample_shape)}")


def load_for(trainer: Trainer, data: Dataset | tuple | str | os.PathLike) -> Dataset:
    """`data` (a DATA.npz path, a Dataset or an (x, y) pair) checked against the model of
    `trainer`: sample shape, and labels for a classifier or float targets
    for a regression model (optional for an autoencoder)."""
    shape = trainer.input_shape[1:]
    if trainer.is_classifier:
        checks = {"num_classes": trainer.num_classes}
    else:
        checks = {"target_shape": trainer.target_shape[1:]}
    if isinstance(data, tuple):
        if len(data) != 2:
            raise DataError(f"data: a tuple must be (x, y), got {len(data)} elements")
        data = Dataset(np.asarray(data[0]), None if data[1] is None else np.asarray(data[1]))
    if isinstance(data, Dataset):
        if data.y is None and not trainer.is_classifier \
                and trainer.target_shape != trainer.input_shape:
            raise DataError("data: no targets, and the model output is not shaped like its input")
        return validate(data, sample_shape=shape, **checks)
    optional = not trainer.is_classifier and trainer.target_shape == trainer.input_shape
    return load_npz(data, sample_shape=shape, target_optional=optional, **checks)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` via a temporary file in the same folder and a
    rename, so a failure never leaves a partial file behind. Missing parent
    folders are created. The file gets the permissions a plain `open(path,
    "wb")` of a new file would give (0o666 minus the umask), not
    `tempfile.mkstemp`'s 0o600. The converter's `write_atomically` is this
    function."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            # Created like open() creates a file: the kernel applies the umask.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
