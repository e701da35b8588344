"""The TensorFlow reference of examples/lr_grid.py: tfmot QAT fine-tuning.

A pretrained model runs as a tensorflow-model-optimization quantization-aware
(fake-quant) model and is fine-tuned with the device's protocol — batch 1,
plain SGD, the same sample order — on exactly the parameters a tflm-train
scheme trains, through per-variable gradient masks. The model runs in
inference mode throughout fine-tuning, so the quantizer ranges (weights and
activations) and BatchNorm statistics stay where the source domain set
them, as the int8 scales do on the device; gradients pass the fake-quant
ops as straight-through estimators.

Nothing here imports tflm_train: the results do not depend on its code.

"bias" of a convolution followed by BatchNorm (the stem of the residual
model, which has no bias of its own) is the BatchNorm's beta: after the
converter folds BN into the convolution, beta is exactly the int8 model's
bias up to a constant, so training it is what bias training on the device
does. Gamma and the moving statistics never train.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

NUM_CLASSES = 10
# tfmot's activation ranges are moving averages (decay 0.999) starting at
# [-6, 6]; after this many training-mode passes < 1 % of that start is left.
CALIBRATION_STEPS = 5000
CALIBRATION_BATCH = 32

# What each scheme trains: trainable-layer index (conv/dense layers in model
# order, negative from the classifier) -> (fraction of output channels whose
# weights train, largest L2 norm first; whether the bias trains). Mirrors
# the presets and the sparse scheme of docs/scheme.md.
SCHEME_PARTS = {
    "classifier": lambda n: {-1: (1.0, True)},
    "last-k:2": lambda n: {-2: (1.0, True), -1: (1.0, True)},
    "bias-only": lambda n: {i: (0.0, True) for i in range(n)},
    "sparse": lambda n: {-3: (0.0, True), -2: (0.5, True), -1: (1.0, True)},
}


def residual_model(seed: int) -> keras.Model:
    """Float residual CNN for 8x8x1 digits: stem conv+BN+ReLU6, one residual
    block (two 3x3 convs, ReLU6 between, added to its input, ReLU6 after),
    global average pooling and a linear classifier (logits)."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = L.Input((8, 8, 1), name="input")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    block_input = L.ReLU(6.0, name="stem_relu")(x)
    y = L.Conv2D(16, 3, padding="same", name="res_a")(block_input)
    y = L.ReLU(6.0, name="res_a_relu")(y)
    y = L.Conv2D(16, 3, padding="same", name="res_b")(y)
    y = L.Add(name="add")([block_input, y])
    y = L.ReLU(6.0, name="add_relu")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    outputs = L.Dense(NUM_CLASSES, name="classifier")(y)
    return keras.Model(inputs, outputs, name="residual_qat")


def pretrain_qat(float_model: keras.Model, x: np.ndarray, y: np.ndarray,
                 epochs: int = 30) -> keras.Model:
    """Quantization-aware training from scratch on (x, y), then calibration."""
    model = tfmot.quantization.keras.quantize_model(float_model)
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    calibrate(model, x)
    return model


def quantize_pretrained(float_model: keras.Model, x: np.ndarray) -> keras.Model:
    """The pretrained float model as a QAT model with ranges set on x."""
    model = tfmot.quantization.keras.quantize_model(float_model)
    calibrate(model, x)
    return model


def calibrate(model: keras.Model, x: np.ndarray) -> None:
    """Sets the quantizer ranges (and BN statistics) on x with training-mode
    forward passes; no weight changes."""
    forward = tf.function(lambda batch: model(batch, training=True))
    rng = np.random.default_rng(0)
    for _ in range(CALIBRATION_STEPS):
        forward(x[rng.choice(len(x), CALIBRATION_BATCH, replace=False)])


def predict_classes(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Argmax of the fake-quant model's logits, inference mode."""
    return np.argmax(model(x, training=False).numpy(), axis=-1)


class FineTuner:
    """Masked batch-1 SGD fine-tuning of one QAT model, restarted from its
    pretrained weights (and quantizer ranges) for every run."""

    def __init__(self, model: keras.Model):
        self.model = model
        self._initial = model.get_weights()
        self._steps: dict[str, tuple] = {}  # scheme -> (step, optimizer)

    def run(self, scheme: str, x: np.ndarray, y: np.ndarray, order: list[np.ndarray],
            lr: float) -> list[float]:
        """Trains `scheme` with SGD(lr) over the samples in `order` (one
        index array per epoch); returns the per-step losses."""
        self.model.set_weights(self._initial)
        step, optimizer = self._step(scheme)
        optimizer.learning_rate = lr
        losses = []
        for epoch_order in order:
            for i in epoch_order:
                losses.append(float(step(x[i:i + 1], y[i:i + 1])))
        return losses

    def _step(self, scheme: str):
        """The compiled training step of `scheme` and its optimizer."""
        if scheme not in self._steps:
            optimizer = keras.optimizers.SGD(0.01)  # no momentum; lr set per run
            self._steps[scheme] = (make_step(self.model, scheme_variables(self.model, scheme),
                                             optimizer), optimizer)
        return self._steps[scheme]


def make_step(model: keras.Model, parts: list[tuple[tf.Variable, np.ndarray]], optimizer):
    """A compiled `optimizer` update of the masked variables from the
    gradient of the mean loss over the batch it is given."""
    variables = [v for v, _ in parts]
    masks = [tf.constant(m) for _, m in parts]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip([g * m for g, m in zip(grads, masks)], variables))
        return loss

    return step


def scheme_variables(model: keras.Model, scheme: str) -> list[tuple[tf.Variable, np.ndarray]]:
    """(variable, gradient mask) for every variable `scheme` trains."""
    layers = trainable_layers(model)
    parts = []
    for index, (fraction, bias) in SCHEME_PARTS[scheme](len(layers)).items():
        layer = layers[index]
        if fraction > 0:
            kernel = _variable(layer, "kernel")
            parts.append((kernel, _channel_mask(kernel.numpy(), fraction)))
        if bias:
            variable = _bias_variable(model, layer)
            parts.append((variable, np.ones(variable.shape, np.float32)))
    return parts


def trainable_layers(model: keras.Model) -> list:
    """The QAT wrappers of conv and dense layers, in model order."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return [layer for layer in model.layers if isinstance(getattr(layer, "layer", None), kinds)]


def _bias_variable(model: keras.Model, layer) -> tf.Variable:
    """The layer's bias, or the beta of the BatchNorm right after it."""
    if layer.layer.use_bias:
        return _variable(layer, "bias")
    following = model.layers[model.layers.index(layer) + 1]
    if not isinstance(getattr(following, "layer", None), keras.layers.BatchNormalization):
        raise ValueError(f"{layer.name} has neither a bias nor a following BatchNorm")
    return _variable(following, "beta")


def _variable(wrapper, name: str) -> tf.Variable:
    """The wrapped layer's float variable `name` (the QAT wrapper replaces
    the layer's attribute by its fake-quantized tensor during a call)."""
    (variable,) = [v for v in wrapper.trainable_weights if v.name.endswith(f"/{name}:0")]
    return variable


def _channel_mask(kernel: np.ndarray, fraction: float) -> np.ndarray:
    """1 on the output channels (last axis) with the largest L2 norm,
    round(fraction * channels) of them (at least 1), else 0."""
    channels = kernel.shape[-1]
    count = max(1, round(fraction * channels))
    norms = np.sqrt((kernel.reshape(-1, channels) ** 2).sum(axis=0))
    selected = np.argsort(-norms, kind="stable")[:count]
    mask = np.zeros(kernel.shape, np.float32)
    mask[..., selected] = 1.0
    return mask
