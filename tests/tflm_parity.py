"""One check used by every forward-kernel test: our standalone runtime and
the `tflite-micro` wheel (a compiled TFLM with its reference kernels) run
the same model on the same inputs, and every tensor both hold must agree
byte for byte."""
import numpy as np
from tflite_micro import runtime as tflm

from tflm_train import _native

ARENA = 1 << 22
COMPARED_TYPES = (np.int8, np.int16, np.int32, np.float32)


def tflm_interpreter(model_bytes):
    """The wheel's interpreter, keeping every intermediate tensor."""
    return tflm.Interpreter.from_bytes(
        model_bytes, intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)


def tflm_tensor(interp, index, dtype):
    return np.asarray(interp.GetTensor(index, 0)["tensor_data"]).view(dtype).reshape(-1)


def random_input(info, rng):
    """A sample for an input tensor: uniform int8, or normal floats."""
    if info["dtype"] == np.int8:
        return rng.integers(-128, 128, size=info["shape"]).astype(np.int8)
    return rng.normal(0, 1.5, size=info["shape"]).astype(np.float32)


def assert_every_tensor_matches_tflm(model_bytes, samples=4, seed=0):
    """Runs `samples` random inputs through both; returns how many tensors
    were compared (every one equal, else AssertionError naming the first
    that differs)."""
    ours = _native.Interpreter(model_bytes, ARENA, preserve_all_tensors=True)
    ref = tflm_interpreter(model_bytes)
    rng = np.random.default_rng(seed)
    compared = 0
    for sample in range(samples):
        for position, index in enumerate(ours.inputs):
            x = random_input(ours.tensor_info(index), rng)
            ours.set_tensor(index, x)
            ref.set_input(x, position)
        ours.invoke()
        ref.invoke()
        for t in range(ours.num_tensors):
            info = ours.tensor_info(t)
            if info["dtype"] not in COMPARED_TYPES:
                continue
            try:
                a = ours.get_tensor(t).reshape(-1)
            except RuntimeError:  # constant-free unused tensor: no memory
                continue
            b = tflm_tensor(ref, t, a.dtype)
            if not np.array_equal(a, b):
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
                raise AssertionError(
                    f"sample {sample}: tensor {t} '{info['name']}' differs from TFLM in "
                    f"{int(np.count_nonzero(diff))} of {a.size} elements (max {diff.max()})")
            compared += 1
    return compared
