"""tflm-train: on-device training for TensorFlow Lite Micro.

    import tflm_train
    train_model = tflm_train.convert(keras_model, {"preset": "bias-only"},
                                     representative_data=x_calib)
    trainer = tflm_train.Trainer(train_model)
    loss = trainer.step(x, y)
"""
from tflm_train.converter import (ConversionError, Scheme, convert,
                                  export_inference_model, to_int8_tflite)
from tflm_train.errors import DataError, RuntimeModelError, TflmTrainError
from tflm_train.plan import plan
from tflm_train.runtime import Trainer
from tflm_train.scheme_search import search_scheme

__all__ = [
    "ConversionError", "DataError", "RuntimeModelError", "Scheme",
    "TflmTrainError", "Trainer", "convert", "export_inference_model", "plan",
    "search_scheme", "to_int8_tflite",
]
__version__ = "0.1.0"
