"""tflm-train: on-device training for TensorFlow Lite Micro.

    import tflm_train
    train_model = tflm_train.convert(keras_model, {"preset": "bias-only"},
                                     representative_data=x_calib)
    trainer = tflm_train.Trainer(train_model)
    history = trainer.fit(tflm_train.Dataset(x_train, y_train), epochs=3, seed=0)
    metrics = trainer.evaluate(tflm_train.Dataset(x_test, y_test))
    loss = trainer.step(x, y)                # one sample
"""
from tflm_train.converter import (ConversionError, Scheme, convert,
                                  export_inference_model, to_int8_tflite)
from tflm_train.data import Dataset
from tflm_train.errors import DataError, RuntimeModelError, TflmTrainError
from tflm_train.plan import plan
from tflm_train.results import FirmwareResult, Plan, TrainResult
from tflm_train.runtime import Trainer
from tflm_train.scheme_search import search_scheme
from tflm_train.training import evaluate, train

__all__ = [
    "ConversionError", "DataError", "Dataset", "FirmwareResult", "Plan", "RuntimeModelError",
    "Scheme", "TflmTrainError", "TrainResult", "Trainer", "convert", "evaluate",
    "export_inference_model", "plan", "search_scheme", "to_int8_tflite", "train",
]
__version__ = "0.1.0"
