"""The host simulator: the C++ standalone runtime driven from Python.

`Trainer` runs exactly the kernels the device runs (same C++ code, same
float evaluation order), one sample per step, so its weights after N steps
equal the device's bit for bit.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from tflm_train import _native
from tflm_train.errors import DataError, RuntimeModelError, TflmTrainError

# The host has memory to spare; plan() reports what the model really needs.
DEFAULT_ARENA_BYTES = 64 * 1024 * 1024
TRAIN_MODE = 1
INFER_MODE = 0
METADATA_NAME = "tflm_train.training_info"

if TYPE_CHECKING:
    from tflm_train.data import Dataset
    from tflm_train.results import TrainResult

#: A training model: its flatbuffer bytes or the path of a .tflite file.
ModelSource = Union[bytes, bytearray, memoryview, str, os.PathLike]


def _read_bytes(model: ModelSource) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(os.fspath(model))
    if not path.is_file():
        raise TflmTrainError(f"{path}: no such model file")
    return path.read_bytes()


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float -> int8 as TFLite's QUANTIZE does (round half away from zero)."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    rounded = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


class Trainer:
    """Runs training and inference steps of a training .tflite on the host.

    Args:
      model: path or bytes of a training flatbuffer made by `convert`.
      lr, bias_lr: override the learning rates stored in the model.
      arena_size: bytes of the simulated arena.
      preserve_all_tensors: keep every intermediate tensor (activations,
        gradients) readable with `tensor` after a step, instead of sharing
        arena space (more memory; same results).

    `fit(data, epochs=...)` and `evaluate(data)` run over a data set (a
    `Dataset` or a DATA.npz path); `step(x, y)` and `evaluate_sample(x, y)`
    take one sample.
    """

    def __init__(self, model: ModelSource, *, lr: float | None = None,
                 bias_lr: float | None = None,
                 arena_size: int = DEFAULT_ARENA_BYTES,
                 preserve_all_tensors: bool = False):
        from tflm_train.converter import read_training_info, set_hparams

        data = _read_bytes(model)
        self.info = read_training_info(data)
        if lr is not None or bias_lr is not None:
            data = set_hparams(data, lr=lr, bias_lr=bias_lr)
        self._model = data
        try:
            self._interp = _native.Interpreter(data, arena_size,
                                               preserve_all_tensors=preserve_all_tensors)
        except RuntimeError as e:
            raise RuntimeModelError(f"runtime: {e}") from None
        self._input = self._interp.tensor_info(self.info.input)
        self._target = self._interp.tensor_info(self.info.label)
        self._output_index = self._interp.outputs[0]
        self._invoked = False
        self._tensor_indices: dict[str, int] | None = None

    # -- inputs ----------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the model's sample input, batch dimension 1 included."""
        return tuple(self._input["shape"])

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for a regression model (loss mse or mae)."""
        return self.info.num_classes

    @property
    def is_classifier(self) -> bool:
        """True for a classifier (integer labels, cross-entropy loss)."""
        return self.info.num_classes > 0

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Shape of one regression target (the model output's, batch 1)."""
        return tuple(self._target["shape"])

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        """One sample (with or without the batch dimension) as the model's
        input type; float data is quantized with the input's parameters."""
        x = np.asarray(x)
        shape = self.input_shape
        if x.shape != shape and (1,) + x.shape != shape:
            raise DataError(f"input sample has shape {x.shape}, model expects {shape[1:]}")
        if x.dtype == np.int8:
            return x.reshape(shape).astype(self._input["dtype"], copy=False)
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise DataError("input sample contains NaN, infinity or non-numbers")
        if self._input["dtype"] == np.float32:
            return x.reshape(shape).astype(np.float32)
        return quantize_input(x, self._input["scales"][0],
                              self._input["zero_points"][0]).reshape(shape)

    def target(self, x: np.ndarray, y: Any, mode: int = TRAIN_MODE) -> np.ndarray:
        """What the model's label/target input gets for sample `x` and `y`:
        the label (int32 [1]), or the regression target (float32, the output's
        shape; for an autoencoder with `y` None, `x` in real units)."""
        if self.is_classifier:
            if isinstance(y, (bool, np.bool_)) or not isinstance(y, (int, np.integer)):
                raise DataError(f"label {y!r} is not an integer class index")
            label = int(y)
            if mode == TRAIN_MODE and not 0 <= label < self.num_classes:
                raise DataError(f"label {label} out of range [0, {self.num_classes})")
            return np.array([label], np.int32)
        if y is None:
            y = self._reconstruction_target(x)
        target = np.asarray(y, dtype=np.float32)
        shape = self.target_shape
        if target.size != int(np.prod(shape)):
            raise DataError(f"target has shape {target.shape}, the model output has {shape[1:]}")
        if not np.all(np.isfinite(target)):
            raise DataError("target contains NaN or infinity")
        return target.reshape(shape)

    def _reconstruction_target(self, x) -> np.ndarray:
        """An autoencoder's target: its input as real values."""
        if self.target_shape != self.input_shape:
            raise DataError(f"no target given, and the model output {self.target_shape[1:]} "
                            f"is not shaped like its input {self.input_shape[1:]}")
        q = self.prepare_input(x)
        if q.dtype == np.float32:
            return q
        return (np.float32(self._input["scales"][0])
                * (q.astype(np.float32) - np.float32(self._input["zero_points"][0])))

    def _run(self, x, y, mode: int) -> float:
        target = self.target(x, y, mode)
        self._interp.set_tensor(self.info.input, self.prepare_input(x))
        self._interp.set_tensor(self.info.label, target)
        self._interp.set_tensor(self.info.mode, np.array([mode], np.int32))
        try:
            self._interp.invoke()
        except RuntimeError as e:
            raise RuntimeModelError(f"runtime: {e}") from None
        self._invoked = True
        return float(self._interp.get_tensor(self.info.loss)[0])

    # -- steps -----------------------------------------------------------
    def step(self, x: np.ndarray, y: Any = None) -> float:
        """One SGD step on one sample; returns the loss before the update.

        `y` is the class label, or for a regression model (loss mse/mae) the
        target with the output's shape; an autoencoder may omit it (the
        target is then its input)."""
        return self._run(x, y, TRAIN_MODE)

    def evaluate_sample(self, x: np.ndarray, y: Any = None) -> tuple[float, np.ndarray]:
        """Forward pass on one sample in infer mode (weights unchanged):
        (loss, model output). `y` as for `step`."""
        loss = self._run(x, y, INFER_MODE)
        return loss, self._interp.get_tensor(self._output_index)

    # -- data sets -------------------------------------------------------
    def fit(self, data: Dataset | tuple | str | os.PathLike, *, epochs: int | None = None,
            steps: int | None = None, seed: int = 0, progress: bool = True,
            log: Callable[[str], Any] = print) -> TrainResult:
        """Trains on a data set sample by sample, as `tflm_train.train`:
        `epochs` epochs (1 if neither is given) or `steps` steps, in the
        sample order `seed` gives (the firmware's). `data`: a `Dataset`, an
        (x, y) pair of arrays or a DATA.npz path. Returns `train`'s result (loss history, per-epoch
        loss and accuracy, weights_sha256)."""
        from tflm_train.data import load_for
        from tflm_train.training import train

        if epochs is None and steps is None:
            epochs = 1
        return train(self, load_for(self, data), epochs=epochs, steps=steps, seed=seed,
                     progress=progress, log=log)

    def evaluate(self, data: Dataset | tuple | str | os.PathLike) -> dict:
        """Mean loss (and for a classifier the accuracy) over a data set in
        infer mode, weights unchanged: `tflm_train.evaluate`'s result.
        `data`: a `Dataset`, an (x, y) pair or a DATA.npz path. One sample:
        `evaluate_sample`."""
        from tflm_train.data import load_for
        from tflm_train.training import evaluate

        return evaluate(self, load_for(self, data))

    def last_output(self) -> np.ndarray:
        """The model output of the last step's forward pass."""
        return self._interp.get_tensor(self._output_index)

    def last_real_output(self) -> np.ndarray:
        """The output layer's real-valued output of the last step (float32,
        what the loss read: logits of a classifier), never saturated."""
        return self._interp.get_tensor(self.info.real_output)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's output for one sample, exactly as the device computes
        it (int8 for an int8 model)."""
        self._run(x, 0 if self.is_classifier else np.zeros(self.target_shape, np.float32),
                  INFER_MODE)
        return self._interp.get_tensor(self._output_index)

    def output_range(self) -> np.ndarray:
        """The [min, max] that follows the real-valued output over the train
        steps (from the calibrated int8 range; export requantizes to it)."""
        index = self.info.output_range if self._invoked else self.info.output_range_initializer
        return self._interp.get_tensor(index)

    def reset(self) -> None:
        """Back to the weights stored in the model's initialisers."""
        self._interp.reset()
        self._invoked = False

    # -- weights ---------------------------------------------------------
    def trainable_weights(self) -> dict[str, np.ndarray]:
        """Current trainable tensors by tensor name, in metadata order."""
        out = {}
        for t in self.info.trainables:
            name = self._interp.tensor_info(t.variable)["name"]
            out[name] = self._current(t)
        return out

    def _current(self, trainable) -> np.ndarray:
        # Until the first Invoke the variables hold zero points: the INIT op
        # copies the initialisers in at the start of the first step.
        index = trainable.variable if self._invoked else trainable.initializer
        return self._interp.get_tensor(index)

    def weights_sha256(self) -> str:
        """sha256 over the raw bytes of all trainable tensors in metadata
        order (the firmware prints the same digest)."""
        h = hashlib.sha256()
        for t in self.info.trainables:
            h.update(self._current(t).tobytes())
        return h.hexdigest()

    def state_tensor(self, index: int) -> np.ndarray:
        """The live value of a state variable (a trainable, rng or the
        output range), as the device's TrainingSession::state_tensor."""
        self._materialize_state()
        return self._interp.get_tensor(index)

    def set_state_tensor(self, index: int, value: np.ndarray) -> None:
        """Overwrites a state variable (as the device's LoadState does)."""
        self._materialize_state()
        self._interp.set_tensor(index, np.asarray(value))

    def _materialize_state(self) -> None:
        """Runs the variable initialisation (one infer step on a zero sample,
        weights unchanged) if no step ran yet, as
        TrainingSession::MaterializeState does."""
        if not self._invoked:
            self.predict(np.zeros(self.input_shape, self._input["dtype"]))

    def to_bytes(self) -> bytes:
        """The training model with the current trained state (weights,
        stochastic-rounding state, output range, optimizer state) as its
        initialisers, so
        training continues from it exactly as an unbroken run would, and
        export works."""
        from tflm_train.converter import set_trainable_values

        if not self._invoked:  # the file's own initialisers are the state
            return bytes(self._model)
        return set_trainable_values(
            self._model, {i: self._interp.get_tensor(i) for i in self.info.state_variables()})

    def export_inference_model(self) -> bytes:
        """A plain inference .tflite with the current weights."""
        from tflm_train.converter import export_inference_model

        return export_inference_model(self.to_bytes())

    # -- tensors ---------------------------------------------------------
    def tensor_info(self, index: int) -> dict:
        """Name, dtype, shape, bytes and quantization of tensor `index`."""
        return self._interp.tensor_info(index)

    def tensor_index(self, name: str) -> int:
        """The index of the tensor called `name` (KeyError if none is)."""
        if self._tensor_indices is None:
            self._tensor_indices = {self._interp.tensor_info(t)["name"]: t
                                    for t in range(self._interp.num_tensors)}
        return self._tensor_indices[name]

    def tensor(self, index: int) -> np.ndarray:
        """Tensor `index` as the last step left it (an intermediate tensor
        only with `preserve_all_tensors`)."""
        return self._interp.get_tensor(index)

    def memory(self) -> dict:
        """Arena figures of the host runtime (see `plan` for the report)."""
        return dict(self._interp.memory())
