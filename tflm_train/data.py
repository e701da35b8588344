"""Labelled datasets for training and evaluation (DATA.npz files).

A DATA.npz holds `x`: samples, NHWC (or the model's input layout) with a
leading sample axis — float32 in the model's float input domain (quantized
with the model's input parameters) or already int8 — and `y`: integer class
labels, one per sample.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflm_train.errors import DataError


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_npz(path, *, sample_shape: tuple[int, ...] | None = None,
             num_classes: int | None = None) -> Dataset:
    """Loads and validates DATA.npz; every problem is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile/pickle/format errors from numpy
        raise DataError(f"{path}: not a readable .npz file ({e.__class__.__name__}: {e})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has {sorted(arrays)})")
    return validate(Dataset(arrays["x"], arrays["y"]), name=str(path),
                    sample_shape=sample_shape, num_classes=num_classes)


def validate(data: Dataset, *, name: str = "data",
             sample_shape: tuple[int, ...] | None = None,
             num_classes: int | None = None) -> Dataset:
    x, y = np.asarray(data.x), np.asarray(data.y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: 'y' must be a 1-D integer array of labels, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} samples in 'x' but {len(y)} labels in 'y'")
    if len(y) == 0:
        raise DataError(f"{name}: no samples")
    if x.dtype != np.int8:
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{name}: 'x' must be float or int8, got {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
            raise DataError(f"{name}: 'x' contains NaN or infinity (first in sample {first})")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise DataError(f"{name}: samples have shape {tuple(x.shape[1:])}, model expects {tuple(sample_shape)}")
    if num_classes is not None:
        out = (y < 0) | (y >= num_classes)
        if out.any():
            i = int(np.argmax(out))
            raise DataError(f"{name}: label {int(y[i])} of sample {i} out of range [0, {num_classes})")
    return Dataset(x, y.astype(np.int64))


def atomic_write(path, data: bytes) -> None:
    """Writes `data` to `path` via a temporary file and rename, so a failure
    never leaves a partial file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
