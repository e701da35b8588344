"""Model zoo: the models TFLM users actually have, through every step of
tflm-train (issue 14).

Six architectures are built here in tf_keras with random initial weights
and a short float pre-training on a learnable synthetic task (no downloaded
weights, no model files):

* person detection: MobileNetV1-0.25 on 96x96x1 whose first layer is a
  DepthwiseConv2D with depth multiplier 8 (what TOCO made of a Conv2D on a
  1-channel input), 2 classes, 1x1 conv logits + RESHAPE + SOFTMAX as in
  TFLM's person_detect model;
* DS-CNN keyword spotter (MLPerf Tiny): 49x10x1, conv 64 10x4 stride 2, 4
  depthwise-separable blocks with BN + ReLU, AveragePooling2D, Dense 12,
  made with tfmot QAT, saved as .h5 and converted from that file;
* ResNet-8 (MLPerf Tiny image classification): 32x32x3, 16/32/64 filters,
  3 residual stacks, 10 classes;
* MobileNetV3-Small (tf_keras.applications, weights=None) at 96x96x3,
  alpha 0.25, minimalistic and not, 10 classes, include_preprocessing=False
  (with True its Rescaling layer adds a MUL and an ADD by constants at the
  input; the inputs here are already in [-1, 1]-like units);
* LSTM(20) + Dense(10) on 28x28 (TFLM's mnist_lstm), built with batch 1 so
  the TFLite converter fuses the LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM;
* an EfficientNet-lite-like model: MBConv blocks with ReLU6 and no
  squeeze-excite (expand 1x1 / depthwise 3x3 / project 1x1, residual ADD).

For each model: full-int8 conversion (tflm_train.to_int8_tflite; the DS-CNN
from its .h5), the operators it has that the runtime did not run before
issue 14, and every intermediate tensor of the int8 model against the
tflite-micro wheel (tests/tflm_parity.py). Then for the schemes
`classifier`, `last-k:2` and a sparse one (SPARSE, docs/scheme.md), one
cell each: does `tflm_train.convert` accept it (or its one-line refusal),
the planner's peak RAM, does the loss fall over STEPS host-simulator steps
on the model's task with permuted labels (mean of the first vs the last
20 % of the steps), does the exported inference model run in the wheel
(every tensor equal to our runtime's), and, where the plan fits 256 KiB,
the Cortex-M4 firmware under QEMU (tflm_train.firmware): its RAM,
instructions per training step, and whether its weights (sha256) and
losses after FIRMWARE_STEPS steps equal the host simulator's.

Nothing is skipped silently: whatever fails is recorded with its message,
so the table fills in as kernels land.

    python examples/model_zoo.py --quick                  # 2 models, short runs
    python examples/model_zoo.py --results docs/results.md

Results are cached in --cache (default docs/model_zoo.json, not used with
--quick) per model, keyed by a fingerprint of the code that decides them
(tflm_train/, ops_cc/, the firmware sources, the TF/tfmot/tflite-micro
versions and PROTOCOL): a rerun on unchanged code only re-renders the
table; after kernels land every model is recomputed. --refresh ignores it.
Needs the Cortex-M toolchain and QEMU (examples/cortex_m/README.md) for the
firmware columns; --no-firmware skips them.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))  # tflm_parity: the wheel parity check

import numpy as np  # noqa: E402

import digits_adaptation as da  # noqa: E402  (write_section)
import tflm_parity  # noqa: E402
import tflm_train  # noqa: E402
from tflm_train.converter import ConversionError, tflite  # noqa: E402
from tflm_train.converter.build import ConversionWarning  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.errors import TflmTrainError  # noqa: E402
from tflm_train.training import train  # noqa: E402

HEADING = "## Model zoo"
DEFAULT_CACHE = ROOT / "docs" / "model_zoo.json"
RAM_BUDGET_KB = 256
LR = 0.01
# Everything the results depend on besides the code fingerprint and the
# model's own parameters; bump "version" when the protocol changes.
PROTOCOL = {"version": 1, "lr": LR, "steps": 300, "firmware_steps": 10, "train_samples": 256,
            "device_samples": 200, "calibration_samples": 64, "parity_samples": 3,
            "window": 0.2, "ram_budget_kb": RAM_BUDGET_KB}
# Smoke test (tests/test_model_zoo_example.py): a model that converts with
# every scheme and one that (before its kernels land) is refused; one
# firmware run.
QUICK = {"models": ("resnet8", "lstm"), "steps": 100, "firmware_steps": 3,
         "train_samples": 128, "device_samples": 64, "calibration_samples": 16,
         "parity_samples": 1, "pretrain_epochs": 2, "firmware_cells": 1}
SCHEMES = {"classifier": {"preset": "classifier"}, "last-k:2": {"preset": "last-k:2"}}
# Biases of the last 6 layers, a quarter of the output channels of the two
# layers before the classifier, the classifier.
SPARSE = {"bias_update_layers": 6, "weight_update": {"-2": 0.25, "-3": 0.25}}

# What the standalone runtime ran before issue 14 (docs/scheme.md of then):
# anything else a model has is "new to it".
ORIGINAL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
                "MAX_POOL_2D", "MEAN", "PAD", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"}
ORIGINAL_ACTIVATIONS = {0, 1, 3}  # NONE, RELU, RELU6
ACTIVATION_NAMES = {2: "RELU_N1_TO_1", 4: "TANH", 5: "SIGN_BIT"}


# -- models -----------------------------------------------------------------------------
def _keras():
    import tf_keras  # noqa: PLC0415 - TensorFlow is slow to import
    return tf_keras, tf_keras.layers


def _bn_relu(L, x, max_value=None, name=""):
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(max_value, name=f"{name}_relu")(x)


def person_detection(batch_size=None):
    """MobileNetV1-0.25, 96x96x1, 2 classes; layer 0 is TOCO's depthwise x8."""
    keras, L = _keras()
    inputs = L.Input((96, 96, 1), batch_size=batch_size, name="input")
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=8, use_bias=False,
                          name="conv1")(inputs)
    x = _bn_relu(L, x, 6.0, "conv1")
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 \
        + [(256, 2), (256, 1)]
    for i, (filters, stride) in enumerate(blocks, 1):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              name=f"conv_dw_{i}")(x)
        x = _bn_relu(L, x, 6.0, f"conv_dw_{i}")
        x = L.Conv2D(filters, 1, use_bias=False, name=f"conv_pw_{i}")(x)
        x = _bn_relu(L, x, 6.0, f"conv_pw_{i}")
    x = L.AveragePooling2D(3, name="pool")(x)  # the 3x3 map
    x = L.Conv2D(2, 1, name="logits")(x)
    x = L.Flatten(name="reshape")(x)  # a static RESHAPE (Reshape((2,)) adds SHAPE, PACK...)
    return keras.Model(inputs, L.Softmax(name="softmax")(x), name="person_detection")


def ds_cnn(batch_size=None):
    """MLPerf Tiny keyword spotting DS-CNN: 49x10x1 MFCCs, 12 classes."""
    keras, L = _keras()
    inputs = L.Input((49, 10, 1), batch_size=batch_size, name="input")
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", name="conv")(inputs)
    x = _bn_relu(L, x, None, "conv")
    x = L.Dropout(0.2)(x)
    for i in range(4):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw_{i}")(x)
        x = _bn_relu(L, x, None, f"dw_{i}")
        x = L.Conv2D(64, 1, padding="same", name=f"pw_{i}")(x)
        x = _bn_relu(L, x, None, f"pw_{i}")
    x = L.Dropout(0.4)(x)
    x = L.AveragePooling2D((25, 5), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(12, activation="softmax", name="classifier")(x),
                       name="ds_cnn")


def resnet8(batch_size=None):
    """MLPerf Tiny image classification ResNet-8: 32x32x3, 10 classes."""
    keras, L = _keras()
    inputs = L.Input((32, 32, 3), batch_size=batch_size, name="input")
    x = L.Conv2D(16, 3, padding="same", name="conv")(inputs)
    x = _bn_relu(L, x, None, "conv")
    for stack, filters in enumerate((16, 32, 64), 1):
        stride = 1 if stack == 1 else 2
        y = L.Conv2D(filters, 3, strides=stride, padding="same", name=f"s{stack}_a")(x)
        y = _bn_relu(L, y, None, f"s{stack}_a")
        y = L.Conv2D(filters, 3, padding="same", name=f"s{stack}_b")(y)
        y = L.BatchNormalization(name=f"s{stack}_b_bn")(y)
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same", name=f"s{stack}_skip")(x)
        x = L.Add(name=f"s{stack}_add")([x, y])
        x = L.ReLU(name=f"s{stack}_relu")(x)
    x = L.AveragePooling2D(8, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="classifier")(x),
                       name="resnet8")


def mobilenet_v3_small(minimalistic):
    def build(batch_size=None):
        keras, L = _keras()
        inputs = L.Input((96, 96, 3), batch_size=batch_size, name="input")
        return keras.applications.MobileNetV3Small(
            input_tensor=inputs, alpha=0.25, minimalistic=minimalistic, weights=None,
            classes=10, include_preprocessing=False)
    return build


def lstm(batch_size=None):
    """TFLM's mnist_lstm: LSTM(20) over 28 steps of 28 features, Dense(10)."""
    keras, L = _keras()
    inputs = L.Input((28, 28), batch_size=batch_size, name="input")
    x = L.LSTM(20, name="lstm")(inputs)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="classifier")(x),
                       name="lstm")


def efficientnet_lite(batch_size=None):
    """EfficientNet-lite-like: stem, 5 MBConv blocks (ReLU6, no SE), head."""
    keras, L = _keras()
    inputs = L.Input((64, 64, 3), batch_size=batch_size, name="input")
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = _bn_relu(L, x, 6.0, "stem")
    for i, (expand, filters, stride) in enumerate(
            [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 40, 2), (6, 40, 1)]):
        shortcut, channels = x, x.shape[-1]
        if expand != 1:
            x = L.Conv2D(channels * expand, 1, use_bias=False, name=f"b{i}_expand")(x)
            x = _bn_relu(L, x, 6.0, f"b{i}_expand")
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              name=f"b{i}_dw")(x)
        x = _bn_relu(L, x, 6.0, f"b{i}_dw")
        x = L.Conv2D(filters, 1, use_bias=False, name=f"b{i}_project")(x)
        x = L.BatchNormalization(name=f"b{i}_project_bn")(x)
        if stride == 1 and channels == filters:
            x = L.Add(name=f"b{i}_add")([shortcut, x])
    x = L.Conv2D(128, 1, use_bias=False, name="head")(x)
    x = _bn_relu(L, x, 6.0, "head")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, name="classifier")(x), name="efficientnet_lite")


@dataclasses.dataclass(frozen=True)
class ZooModel:
    title: str
    build: Callable  # (batch_size=None) -> tf_keras model
    classes: int
    softmax: bool  # the model ends in a softmax (else logits)
    qat: bool = False  # tfmot QAT, saved as .h5, converted from the file
    batch_one: bool = False  # converted from a batch-1 copy (fused LSTM)
    pretrain_epochs: int = 4
    sparse: dict = dataclasses.field(default_factory=lambda: SPARSE)

    def params(self) -> dict:
        """What identifies the model in the cache."""
        return {"title": self.title, "classes": self.classes, "qat": self.qat,
                "batch_one": self.batch_one, "pretrain_epochs": self.pretrain_epochs,
                "sparse": self.sparse}


MODELS = {
    "person_detection": ZooModel("person detection MobileNetV1-0.25 96×96×1 (dw ×8 first)",
                                 person_detection, 2, True),
    "ds_cnn": ZooModel("DS-CNN KWS 49×10×1 (tfmot QAT, from .h5)", ds_cnn, 12, True, qat=True),
    "resnet8": ZooModel("ResNet-8 32×32×3", resnet8, 10, True),
    "mobilenet_v3_small_min": ZooModel("MobileNetV3-Small minimalistic α0.25 96×96×3",
                                       mobilenet_v3_small(True), 10, True),
    "mobilenet_v3_small": ZooModel("MobileNetV3-Small α0.25 96×96×3",
                                   mobilenet_v3_small(False), 10, True),
    # One trainable layer (the classifier): the sparse scheme is half of its
    # output channels and its bias.
    "lstm": ZooModel("LSTM(20) + Dense 28×28", lstm, 10, True, batch_one=True,
                     sparse={"bias_update_layers": 1, "weight_update": {"-1": 0.5}}),
    "efficientnet_lite": ZooModel("EfficientNet-lite-like (MBConv, ReLU6) 64×64×3",
                                  efficientnet_lite, 10, False),
}


# -- the task ---------------------------------------------------------------------------
def templates(shape: tuple[int, ...], classes: int, seed: int) -> np.ndarray:
    """One smooth random pattern per class (low-resolution noise, upsampled),
    unit standard deviation."""
    rng = np.random.default_rng(seed)
    lowres = [max(2, d // 8) for d in shape[:2]]
    coarse = rng.normal(0, 1, (classes, *lowres, *shape[2:]))
    fine = coarse.repeat(-(-shape[0] // lowres[0]), axis=1).repeat(-(-shape[1] // lowres[1]),
                                                                     axis=2)
    fine = fine[:, :shape[0], :shape[1]]
    return (fine / fine.std(axis=tuple(range(1, fine.ndim)), keepdims=True)).astype(np.float32)


def task(shape, classes, count, seed, noise=0.7, permute=False) -> Dataset:
    """`count` samples: a class's pattern plus Gaussian noise. With `permute`
    the labels are shifted by one class (the device's task: the same inputs,
    new labels, so the loss starts high and must fall)."""
    rng = np.random.default_rng(seed + 1)
    y = rng.integers(0, classes, count)
    x = templates(shape, classes, 0)[y] + rng.normal(0, noise, (count, *shape))
    if permute:
        y = (y + 1) % classes
    return Dataset(x.astype(np.float32), y.astype(np.int64))


# -- what the model has -----------------------------------------------------------------
def op_counts(model: bytes) -> dict[str, int]:
    m = tflite.read_model(model)
    counts = collections.Counter(tflite.op_name(m, op) for op in m.subgraphs[0].operators)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def new_ops(model: bytes) -> list[str]:
    """Operators (and variants of old ones) the runtime did not run before
    issue 14, in order of first appearance."""
    m = tflite.read_model(model)
    sg = m.subgraphs[0]
    shape = lambda t: [int(d) for d in sg.tensors[t].shape]  # noqa: E731
    found: list[str] = []
    for op in sg.operators:
        name = tflite.op_name(m, op)
        inputs = [int(t) for t in op.inputs]
        what = None
        if name not in ORIGINAL_OPS:
            what = name
        elif name == "DEPTHWISE_CONV_2D":
            multiplier = shape(inputs[1])[3] // shape(inputs[0])[-1]
            if multiplier > 1:
                what = f"DEPTHWISE_CONV_2D ×{multiplier}"
        elif name == "QUANTIZE" and sg.tensors[inputs[0]].type != tflite.FLOAT32:
            what = "QUANTIZE int8→int8"
        elif name == "ADD" and shape(inputs[0]) != shape(inputs[1]):
            what = "ADD (broadcast)"
        elif name == "MEAN":
            axes = sorted(int(a) % len(shape(inputs[0]))
                          for a in tflite.tensor_data(m, sg.tensors[inputs[1]]).ravel())
            if len(shape(inputs[0])) != 4 or axes != [1, 2]:
                what = f"MEAN axes {axes}"
        activation = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        if what is None and activation not in ORIGINAL_ACTIVATIONS:
            what = f"{name} + {ACTIVATION_NAMES.get(activation, activation)}"
        if what is not None and what not in found:
            found.append(what)
    constant = lambda t: m.buffers[t.buffer].data is not None \
        and len(m.buffers[t.buffer].data) > 0  # noqa: E731
    if any(t.type == tflite.INT16 and not constant(t) for t in sg.tensors):
        found.append("int16 activations")
    return found


def name_operator(message: str, model: bytes) -> str:
    """The runtime's error with the operator's name after its index (the
    runtime names an unknown builtin only by its code)."""
    m = re.match(r"operator (\d+):", message)
    if m is None:
        return message
    graph = tflite.read_model(model)
    operators = graph.subgraphs[0].operators
    index = int(m[1])
    if index >= len(operators):
        return message
    return f"operator {index} ({tflite.op_name(graph, operators[index])}):{message[m.end():]}"


# -- one model --------------------------------------------------------------------------
@dataclasses.dataclass
class Settings:
    steps: int
    firmware_steps: int
    train_samples: int
    device_samples: int
    calibration_samples: int
    parity_samples: int
    pretrain_epochs: int | None = None  # None: the model's own
    firmware: bool = True
    firmware_cells: int | None = None  # firmware runs at most (None: all that fit)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def pretrain(spec: ZooModel, data: Dataset, epochs: int, seed: int):
    """The float model fitted to the task (Adam, a few epochs); BatchNorm
    statistics follow quickly (momentum 0.9). A QAT model is the float one
    wrapped by tfmot quantize_model and fine-tuned for one more epoch."""
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    model = spec.build()
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not spec.softmax)
    model.compile(keras.optimizers.Adam(0.003), loss)
    model.fit(data.x, data.y, epochs=epochs, batch_size=16, verbose=0)
    if spec.qat:
        import tensorflow_model_optimization as tfmot  # noqa: PLC0415

        model = tfmot.quantization.keras.quantize_model(model)
        model.compile(keras.optimizers.Adam(0.001), loss)
        model.fit(data.x, data.y, epochs=1, batch_size=16, verbose=0)
    if spec.batch_one:
        fixed = spec.build(batch_size=1)
        fixed.set_weights(model.get_weights())
        model = fixed
    return model


def training_summary(losses: list[float], window: float) -> dict:
    n = max(1, round(window * len(losses)))
    first, last = float(np.mean(losses[:n])), float(np.mean(losses[-n:]))
    return {"loss_first": first, "loss_last": last, "falls": last < first,
            "finite": bool(np.all(np.isfinite(losses)))}


def firmware_cell(training_model: bytes, data: Dataset, steps: int) -> dict:
    """The Cortex-M4 firmware within the RAM budget vs the host simulator."""
    from tflm_train.firmware import RamBudgetError, run_firmware  # noqa: PLC0415

    try:
        device = run_firmware(training_model, data, steps=steps, seed=0, ram_kb=RAM_BUDGET_KB)
    except RamBudgetError as e:
        return {"ran": False, "over_budget_bytes": e.needed_bytes - e.budget_bytes,
                "error": first_line(e)}
    except TflmTrainError as e:
        return {"ran": False, "error": first_line(e)}
    host = train(tflm_train.Trainer(training_model), data, steps=steps, seed=0, progress=False,
                 log=lambda *_: None)
    return {"ran": True, "steps": steps, "ram_bytes": device["ram_bytes"],
            "instructions_per_train_step": device["instructions_per_train_step"],
            "instructions_per_infer_step": device["instructions_per_infer_step"],
            "flash_bytes": device["flash_bytes"],
            "weights_equal": device["weights_sha256"] == host["weights_sha256"],
            "losses_equal": device["loss_history"] == host["loss_history"]}


def scheme_cell(source, scheme: dict, calibration: np.ndarray, device_data: Dataset,
                settings: Settings, run_firmware: bool) -> dict:
    """convert / plan / train / export / firmware of one scheme; stops at
    the first step that fails and records why."""
    cell: dict = {"scheme": scheme}
    t0 = time.time()
    scheme = dict(scheme, optimizer={"lr": LR, "bias_lr": LR, "rounding": "stochastic"})
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConversionWarning)
            training_model = tflm_train.convert(source, scheme, representative_data=calibration)
    except ConversionError as e:
        cell.update(converts=False, refusal=str(e))
        return cell
    cell["warnings"] = [str(w.message) for w in caught if w.category is ConversionWarning]
    cell["converts"] = True
    try:
        plan = tflm_train.plan(training_model)
        cell["plan"] = {k: v for k, v in plan.to_dict().items() if k != "timeline"}
        trainer = tflm_train.Trainer(training_model)
        history = train(trainer, device_data, steps=settings.steps, seed=0, progress=False,
                        log=lambda *_: None)
        cell["training"] = dict(training_summary(history["loss_history"], PROTOCOL["window"]),
                                steps=settings.steps)
        exported = trainer.export_inference_model()
        cell["export"] = {"tensors_equal": tflm_parity.assert_every_tensor_matches_tflm(
            exported, samples=settings.parity_samples)}
    except (AssertionError, TflmTrainError, RuntimeError, ValueError) as e:
        cell["error"] = first_line(e)
        return cell
    fits = cell["plan"]["peak_ram_bytes"] <= RAM_BUDGET_KB * 1024
    if run_firmware and fits:
        cell["firmware"] = firmware_cell(training_model, device_data, settings.firmware_steps)
    elif run_firmware:
        cell["firmware"] = {"ran": False, "error": f"plan {cell['plan']['peak_ram_bytes']} B "
                            f"> {RAM_BUDGET_KB} KiB"}
    cell["seconds"] = round(time.time() - t0, 1)
    return cell


def run_model(name: str, settings: Settings, log=print) -> dict:
    spec = MODELS[name]
    t0 = time.time()
    record: dict = {"params": spec.params()}
    shape = tuple(int(d) for d in spec.build().input_shape[1:])
    data = task(shape, spec.classes, settings.train_samples, seed=0)
    device_data = task(shape, spec.classes, settings.device_samples, seed=1, permute=True)
    calibration = data.x[:settings.calibration_samples]
    epochs = settings.pretrain_epochs or spec.pretrain_epochs
    model = pretrain(spec, data, epochs, seed=0)
    with tempfile.TemporaryDirectory(prefix="model-zoo-") as tmp:
        source = model
        if spec.qat:
            source = os.path.join(tmp, f"{name}.h5")
            model.save(source)
        try:
            int8 = tflm_train.to_int8_tflite(source, calibration)
        except ConversionError as e:
            record.update(int8_error=str(e), seconds=round(time.time() - t0, 1))
            return record
        if not spec.qat:
            source = int8  # the same conversion; the QAT model goes through its file each time
        record.update(int8_model_bytes=len(int8), ops=op_counts(int8), new_ops=new_ops(int8),
                      float_seconds=round(time.time() - t0, 1))
        try:
            record["parity"] = {"tensors_equal": tflm_parity.assert_every_tensor_matches_tflm(
                int8, samples=settings.parity_samples)}
        except AssertionError as e:
            record["parity"] = {"differs": first_line(e)}
        except RuntimeError as e:  # our runtime cannot load or run the model
            record["parity"] = {"runtime_error": name_operator(str(e), int8)}
        schemes = dict(SCHEMES, sparse=spec.sparse)
        record["schemes"] = {}
        for scheme_name, scheme in schemes.items():
            budget = settings.firmware_cells
            firmware = settings.firmware and (budget is None or budget > 0)
            cell = scheme_cell(source, scheme, calibration, device_data, settings, firmware)
            if cell.get("firmware", {}).get("ran") and settings.firmware_cells is not None:
                settings.firmware_cells -= 1
            record["schemes"][scheme_name] = cell
            log(f"  {name} / {scheme_name}: {cell_summary(cell)}")
    record["seconds"] = round(time.time() - t0, 1)
    return record


def cell_summary(cell: dict) -> str:
    if not cell.get("converts"):
        return "refused: " + short(cell.get("refusal", ""))
    if "error" in cell:
        return cell["error"]
    t = cell["training"]
    parts = [f"peak {cell['plan']['peak_ram_bytes']} B",
             f"loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}"]
    fw = cell.get("firmware")
    if fw and fw.get("ran"):
        parts.append(f"firmware {fw['ram_bytes']} B, {fw['instructions_per_train_step']} "
                     f"instr/step, equal {fw['weights_equal'] and fw['losses_equal']}")
    elif fw:
        parts.append(f"firmware: {fw['error']}")
    return ", ".join(parts)


# -- cache ------------------------------------------------------------------------------
def fingerprint() -> str:
    """sha256 of the code and tools that decide the results."""
    h = hashlib.sha256()
    files = sorted(p for d in ("tflm_train", "ops_cc", "examples/cortex_m")
                   for p in (ROOT / d).rglob("*")
                   if p.is_file() and p.suffix in (".py", ".cc", ".h", ".ld", "")
                   and "__pycache__" not in p.parts and "build" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    for package in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro"):
        try:
            h.update(f"{package}={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{package}=none".encode())
    h.update(json.dumps(PROTOCOL, sort_keys=True).encode())
    return h.hexdigest()


def load_cache(path: Path | None, key: str) -> dict:
    if path is None or not path.exists():
        return {}
    stored = json.loads(path.read_text())
    if stored.get("fingerprint") != key:
        print(f"{path}: made by other code or protocol; recomputing")
        return {}
    return stored.get("models", {})


def save_cache(path: Path, key: str, models: dict) -> None:
    """Writes the cache through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": key, "protocol": PROTOCOL, "models": models},
                              indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# -- markdown ---------------------------------------------------------------------------
def short(message: str, limit: int = 400) -> str:
    """A refusal for a table cell: without the list of every operator the
    runtime runs, escaped, at most `limit` characters."""
    message = message.split("; the runtime runs:")[0].replace("|", "\\|")
    return message if len(message) <= limit else message[:limit - 1] + "…"


def kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def tensors(compared: int, settings: Settings) -> str:
    """tflm_parity counts one comparison per tensor and input."""
    n = settings.parity_samples
    return f"{compared // n} tensors × {n} inputs" if n > 1 else f"{compared} tensors"


def model_table(models: dict, settings: Settings) -> str:
    lines = ["| model | int8 size | operators | new to the runtime (issue 14) | "
             "int8 parity with the tflite-micro wheel |", "|---|---|---|---|---|"]
    for name, r in models.items():
        title = r["params"]["title"]
        if "int8_error" in r:
            lines.append(f"| {title} | — | — | — | int8 conversion failed: "
                         f"{short(r['int8_error'])} |")
            continue
        ops = ", ".join(f"{op} {n}" for op, n in sorted(r["ops"].items(),
                                                         key=lambda kv: (-kv[1], kv[0])))
        parity = r["parity"]
        if "tensors_equal" in parity:
            parity = f"every tensor equal ({tensors(parity['tensors_equal'], settings)})"
        elif "differs" in parity:
            parity = f"**differs: {short(parity['differs'])}**"
        else:
            parity = f"not run, our runtime refuses it: {short(parity['runtime_error'])}"
        lines.append(f"| {title} | {kib(r['int8_model_bytes'])} | {ops} | "
                     f"{', '.join(r['new_ops']) or 'none'} | {parity} |")
    return "\n".join(lines)


def scheme_table(models: dict, settings: Settings) -> str:
    lines = ["| model | ops new to it | scheme | converts | peak RAM (plan) | "
             "trains (loss first→last 20 %) | export runs in TFLM | firmware RAM | "
             "instructions/step | firmware = host |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in models.items():
        title = r["params"]["title"]
        new = ", ".join(r.get("new_ops", [])) or "none"
        for scheme_name, cell in r.get("schemes", {}).items():
            row = [title, new, scheme_name]
            if not cell.get("converts"):
                row += [f"refused: {short(cell.get('refusal', ''))}"] + ["—"] * 6
            elif "error" in cell:
                row += ["yes", f"**failed: {short(cell['error'])}**"] + ["—"] * 5
            else:
                t = cell["training"]
                trend = f"{t['loss_first']:.3f} → {t['loss_last']:.3f}"
                trend = (f"yes, {trend}" if t["falls"] and t["finite"] else f"**no**, {trend}")
                row += ["yes", kib(cell["plan"]["peak_ram_bytes"]), trend,
                        f"yes, every tensor equal "
                        f"({tensors(cell['export']['tensors_equal'], settings)})"]
                fw = cell.get("firmware")
                if fw is None:
                    row += ["not run"] * 3
                elif fw.get("ran"):
                    same = fw["weights_equal"] and fw["losses_equal"]
                    row += [kib(fw["ram_bytes"]), f"{fw['instructions_per_train_step']:,d}",
                            f"yes ({fw['steps']} steps)" if same else "**no**"]
                elif "over_budget_bytes" in fw:
                    row += [f"over {RAM_BUDGET_KB} KiB by {fw['over_budget_bytes']} B", "—", "—"]
                else:
                    row += [short(fw["error"], 80), "—", "—"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def refusal_reason(message: str) -> str:
    """What a refusal is about, without where: "HARD_SWISH has no forward
    kernel", "QUANTIZE has no gradient kernel", ..."""
    if m := re.match(r"unsupported operator (\S+) at operator \d+", message):
        return f"{m[1]} has no forward kernel"
    if m := re.match(r"(\S+) at operator \d+ (has [^:;]+)", message):
        return f"{m[1]} {m[2]}"
    return short(message, 100)


def summary(models: dict) -> str:
    """The table in a few sentences, computed from it."""
    cells = [(name, scheme, cell) for name, r in models.items()
             for scheme, cell in r.get("schemes", {}).items()]
    converted = [c for c in cells if c[2].get("converts") and "error" not in c[2]]
    falls = [c for c in converted if c[2]["training"]["falls"]]
    ran = [c for c in converted if c[2].get("firmware", {}).get("ran")]
    equal = [c for c in ran if c[2]["firmware"]["weights_equal"]
             and c[2]["firmware"]["losses_equal"]]
    over = [c for c in converted if "over_budget_bytes" in c[2].get("firmware", {})
            or "plan" in c[2].get("firmware", {}).get("error", "")]
    parity = [r for r in models.values() if "tensors_equal" in r.get("parity", {})]
    failed = [c for c in cells if c[2].get("converts") and "error" in c[2]]
    parts = [f"{len(parity)} of {len(models)} int8 models run in our runtime with every "
             f"tensor equal to the wheel's"
             + (f" ({len(models) - len(parity)} are not run: see the table)"
                if len(parity) < len(models) else "") + ".",
             f"{len(converted)} of {len(cells)} model × scheme cells convert"
             + (f" ({len(failed)} then fail: see the table)" if failed else "")
             + f"; the loss falls in {len(falls)} of them and every converted cell's exported "
             f"model runs in the wheel; the firmware ran {len(ran)} of them within "
             f"{RAM_BUDGET_KB} KiB with weights and losses equal to the host's in "
             f"{len(equal)}" + (f" ({len(over)} over the budget)" if over else "") + "."]
    reasons: dict[str, dict[str, list[str]]] = {}  # reason -> model -> schemes
    for name, scheme, cell in cells:
        if not cell.get("converts"):
            reasons.setdefault(refusal_reason(cell["refusal"]), {}) \
                .setdefault(name, []).append(scheme)

    def where(name, schemes):
        title = models[name]["params"]["title"].split(" (")[0]
        every = len(schemes) == len(models[name]["schemes"])
        return f"{title}: {'every scheme' if every else ', '.join(schemes)}"

    if reasons:
        parts.append("Refused: " + "; ".join(
            f"{reason} ({'; '.join(where(n, s) for n, s in by_model.items())})"
            for reason, by_model in reasons.items()) + ".")
    return " ".join(parts)


def report(models: dict, settings: Settings, quick: bool) -> str:
    intro = (
        "The models TFLM users have (issue 14), built in tf_keras with random initial weights "
        "and a short float pre-training on a synthetic task (one smooth random pattern per "
        "class plus noise; no downloaded weights, no model files), then converted to full int8 "
        "(`tflm_train.to_int8_tflite`; the DS-CNN is a tfmot QAT model converted from its "
        "`.h5` file). `python examples/model_zoo.py --results docs/results.md` writes this "
        "section; its results are cached in docs/model_zoo.json, keyed by a fingerprint of "
        "the code that computed them (tflm_train/, ops_cc/, the firmware sources, the "
        "TensorFlow / tfmot / tflite-micro versions), so a rerun after kernels land "
        "recomputes them.\n\n"
        "* Operators \"new to the runtime\": those (and variants of old ones) the standalone "
        "runtime did not run before issue 14.\n"
        f"* Parity: every tensor of the int8 model, for {settings.parity_samples} random "
        "inputs, equal byte for byte between our runtime and the tflite-micro wheel "
        "(tests/tflm_parity.py).\n"
        "* Schemes: `classifier`, `last-k:2` and `sparse` "
        f"(`{json.dumps(SPARSE)}`; for the LSTM, whose only trainable layer is the "
        "classifier: its bias and half of its output channels). A refusal is the converter's "
        "one-line message (without its list of the operators the runtime runs).\n"
        f"* Peak RAM: `tflm_train.plan` (planned arena + persistent, 64-bit host records).\n"
        f"* Trains: {settings.steps} host-simulator steps (SGD, lr {LR}, stochastic rounding, "
        "seed 0) on the same task with the labels shifted by one class; mean loss of the "
        "first vs the last 20 % of the steps.\n"
        "* Export runs in TFLM: the exported inference model after training, every tensor "
        "equal between our runtime and the wheel.\n"
        "* Firmware: Cortex-M4 under QEMU (mps2-an386) within "
        f"{RAM_BUDGET_KB} KiB of RAM, for the cells whose plan fits, {settings.firmware_steps} "
        "steps; RAM = static data + peak stack + heap; firmware = host: the weights' sha256 "
        "and every step's loss equal the host simulator's.")
    if quick:
        intro += " Quick smoke run: fewer models, samples and steps; not a result."
    seconds = sum(r.get("seconds", 0) for r in models.values())
    timing = (f"Computing these results took {seconds / 60:.0f} min on 2 shared cores (per "
              "model: " + ", ".join(f"{name} {r.get('seconds', 0) / 60:.1f}"
                                   for name, r in models.items())
              + " min); a rerun with unchanged code reads docs/model_zoo.json.")
    return "\n\n".join([intro, summary(models), model_table(models, settings),
                        scheme_table(models, settings), timing])


# -- main -------------------------------------------------------------------------------
def settings_for(quick: bool, firmware: bool = True) -> Settings:
    source = QUICK if quick else PROTOCOL
    return Settings(steps=source["steps"], firmware_steps=source["firmware_steps"],
                    train_samples=source["train_samples"],
                    device_samples=source["device_samples"],
                    calibration_samples=source["calibration_samples"],
                    parity_samples=source["parity_samples"],
                    pretrain_epochs=QUICK["pretrain_epochs"] if quick else None,
                    firmware=firmware, firmware_cells=QUICK["firmware_cells"] if quick else None)


def run(models: list[str], settings: Settings, cache: dict | None = None,
        save: Callable[[dict], None] | None = None, log=print) -> dict:
    """Results per model name, from `cache` where present."""
    results = {}
    for name in models:
        cached = (cache or {}).get(name)
        if cached is not None and cached.get("params") == MODELS[name].params():
            log(f"{name}: cached")
            results[name] = cached
            continue
        log(f"{name}: {MODELS[name].title}")
        results[name] = run_model(name, settings, log)
        if cache is not None:
            cache[name] = results[name]
        if save is not None:
            save(results)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {', '.join(QUICK['models'])}, short runs, one firmware run")
    p.add_argument("--models", nargs="+", choices=list(MODELS))
    p.add_argument("--results", type=Path, help="write the section into this markdown file")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"JSON cache of the results (default {DEFAULT_CACHE.relative_to(ROOT)}, "
                        "none with --quick)")
    p.add_argument("--refresh", action="store_true",
                   help="recompute the models of this run even if cached")
    p.add_argument("--no-firmware", action="store_true")
    args = p.parse_args(argv)

    import tensorflow as tf  # noqa: PLC0415

    tf.config.experimental.enable_op_determinism()
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
    from tflm_train.firmware import TOOLS  # noqa: PLC0415

    package = Path(tflm_train.__file__).resolve().parent
    if package != ROOT / "tflm_train":
        print(f"note: tflm_train is imported from {package}, not from this checkout "
              f"({ROOT}); the cache key is this checkout's code (set PYTHONPATH={ROOT})")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and not args.no_firmware:
        print(f"firmware columns skipped: {', '.join(missing)} not installed")
    settings = settings_for(args.quick, firmware=not (args.no_firmware or missing))
    names = args.models or list(QUICK["models"] if args.quick else MODELS)
    cache_path = args.cache if args.cache is not None else (None if args.quick
                                                            else DEFAULT_CACHE)
    key = fingerprint() + ("" if settings.firmware else "+no-firmware")
    cache = load_cache(cache_path, key)
    if args.refresh:
        for name in names:
            cache.pop(name, None)
    t0 = time.time()

    def save(_results):
        if cache_path is not None:
            save_cache(cache_path, key, cache)

    results = run(names, settings, cache, save, log=lambda line: print(line, flush=True))
    # The section shows every model computed with this code (a run of some
    # --models adds to the others' cached results).
    shown = {name: cache[name] for name in MODELS if name in cache} if cache_path else results
    body = report(shown, settings, args.quick)
    print(f"{HEADING}\n\n{body}\n\nthis run: {(time.time() - t0) / 60:.1f} min")
    if args.results is not None:
        da.write_section(args.results, HEADING, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
