"""Turns the converter's model argument into int8 inference .tflite bytes."""
import os

import numpy as np

from .errors import ConversionError
from .tflite import TFLITE_FILE_IDENTIFIER


def to_int8_tflite(model, representative_data=None):
    """.tflite bytes from bytes, a .tflite file, a Keras model or its saved file.

    A file is .tflite if it ends in .tflite or has the TFL3 file identifier.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ConversionError(f"{path}: no such model file or directory")
        if os.path.isfile(path) and (path.endswith(".tflite") or _is_tflite_file(path)):
            with open(path, "rb") as f:
                return f.read()
        model = _load_keras(path)
    if not (hasattr(model, "layers") and hasattr(model, "inputs")):
        raise ConversionError(f"model must be a Keras model, a model path or .tflite bytes, "
                              f"got {type(model).__name__}")
    return _quantize(model, representative_data)


def _is_tflite_file(path):
    with open(path, "rb") as f:
        return f.read(8)[4:8] == TFLITE_FILE_IDENTIFIER


def _import_tf():
    # tfmot (QAT models) works only with Keras 2, which TF picks at import.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow is slow to import
    return tf


def _load_keras(path):
    """Loads a .h5/.keras file or SavedModel directory, QAT wrappers included."""
    _import_tf()
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415
    import tf_keras  # noqa: PLC0415
    try:
        with tfmot.quantization.keras.quantize_scope():
            return tf_keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any load failure is the user's file
        raise ConversionError(f"{path}: cannot load as a Keras model ({_first_line(e)})") from e


def _quantize(model, representative_data):
    """Full-int8 conversion (int8 input and output) through the TFLite converter."""
    tf = _import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative_data is not None:
        samples = np.asarray(representative_data, dtype=np.float32)
        converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - TF raises many types here
        hint = "" if representative_data is not None else " (pass representative_data)"
        raise ConversionError(f"int8 conversion of the Keras model failed{hint}: "
                              f"{_first_line(e)}") from e


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
