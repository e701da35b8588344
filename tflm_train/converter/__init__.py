"""tflm-train converter: int8 model + sparse-update scheme -> training .tflite.

The training flatbuffer format is described in docs/format.md, the scheme in
docs/scheme.md. TensorFlow is imported only when a Keras model has to be
converted to .tflite first.
"""
from tflm_train.data import atomic_write as write_atomically  # the package's one writer

from .build import build_training_model
from .errors import ConversionError
from .export import (check_on_device, export_inference_model, read_training_info, set_hparams,
                     set_trainable_values)
from .scheme import OptimizerConfig, Scheme, as_scheme
from .source import to_int8_tflite
from .training_info import (FORMAT_VERSION, Optimizer, Rounding, Schedule, StateKind, Trainable,
                            TrainableKind, TrainingInfo)

__all__ = [
    "ConversionError", "FORMAT_VERSION", "Optimizer", "OptimizerConfig", "Rounding", "Schedule",
    "Scheme", "StateKind", "Trainable", "TrainableKind", "TrainingInfo", "convert", "export_inference_model",
    "read_training_info", "set_hparams", "set_trainable_values", "to_int8_tflite",
    "write_atomically",
]


def convert(model, scheme, *, representative_data=None, out=None):
    """Converts an int8 model and a sparse-update scheme to a training model.

    `model`: a tf_keras model (QAT, or float with `representative_data` for
    full-int8 post-training quantization), a path to a saved Keras model
    (.h5/.keras/SavedModel directory) or a .tflite file, or .tflite bytes.
    `scheme`: a Scheme, a dict, or a path to a JSON/YAML file.
    Returns the training .tflite bytes, also written atomically to `out`.
    """
    scheme = as_scheme(scheme)
    data = build_training_model(to_int8_tflite(model, representative_data), scheme)
    # An operator the converter accepts may still use an option or shape the
    # runtime's kernel refuses: refuse the file here, before it is written.
    check_on_device(data, "the runtime cannot run the training model")
    if scheme.ram_budget is not None:
        _check_ram_budget(data, scheme.ram_budget)
    if out is not None:
        write_atomically(out, data)
    return data


def _check_ram_budget(data, budget):
    """Refuses a training model whose step needs more RAM than `budget`
    (the planner's peak_ram_bytes: planned arena + persistent), naming what
    the optimizer state costs."""
    from tflm_train.plan import plan  # noqa: PLC0415 - tflm_train imports this package

    report = plan(data)
    needed = report["peak_ram_bytes"]
    if needed <= budget:
        return
    parts = ", ".join(f"{name.replace('_', ' ')} {size}"
                      for name, size in report["state_breakdown"].items() if size)
    raise ConversionError(
        f"scheme: ram_budget is {budget} bytes but a training step needs {needed} (arena "
        f"{report['peak_arena_bytes']} + persistent {report['persistent_bytes']}; state: "
        f"{parts}); drop momentum or mini-batches, or train fewer layers")


