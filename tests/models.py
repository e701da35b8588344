"""Small int8 .tflite models for the tests, shared by all test files.

Each builder returns the bytes of a full-int8 .tflite model (int8 input and
output unless `float_io`, which adds QUANTIZE/DEQUANTIZE) with random
weights and non-zero biases, deterministic in `seed` and cached for the
session. `keras_model(name, seed)` gives the float tf_keras model behind it.
Import as `import models` (pytest puts tests/ on sys.path).
"""
import dataclasses
import functools
import os

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# name -> (input shape without batch, number of classes)
SHAPES = {
    "cnn": ((8, 8, 1), 5),
    "mobilenet": ((12, 12, 3), 4),
    "residual": ((8, 8, 2), 6),
    "wide_residual": ((6, 6, 2), 4),
    "mlp": ((6, 6, 1), 10),
    "inverted_residual": ((16, 16, 3), 4),
}


def _layers():
    import tf_keras  # noqa: PLC0415 - TensorFlow is slow to import
    return tf_keras, tf_keras.layers


def _cnn(L, x, classes):
    """conv3x3+relu, maxpool, conv3x3+relu, global mean, FC."""
    y = L.Conv2D(4, 3, activation="relu", name="conv_a")(x)
    y = L.MaxPool2D(name="pool")(y)
    y = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return L.Dense(classes, name="classifier")(y)


def _mobilenet(L, x, classes):
    """Depthwise-separable blocks with ReLU6, PAD before a stride-2 depthwise,
    softmax at the end."""
    y = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
    y = L.ReLU(6.0, name="stem_relu")(y)
    y = L.DepthwiseConv2D(3, padding="same", name="dw1")(y)
    y = L.ReLU(6.0, name="dw1_relu")(y)
    y = L.Conv2D(8, 1, name="pw1")(y)
    y = L.ReLU(6.0, name="pw1_relu")(y)
    y = L.ZeroPadding2D(1, name="pad")(y)  # symmetric: not foldable into SAME
    y = L.DepthwiseConv2D(3, strides=2, name="dw2")(y)
    y = L.ReLU(6.0, name="dw2_relu")(y)
    y = L.Conv2D(12, 1, name="pw2")(y)
    y = L.ReLU(6.0, name="pw2_relu")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(classes, name="classifier")(y)
    return L.Softmax(name="softmax")(y)


def _residual(L, x, classes, width=4):
    """A residual block: the stem output feeds a conv branch and the ADD."""
    stem = L.Conv2D(width, 3, padding="same", activation="relu", name="stem")(x)
    y = L.Conv2D(width, 3, padding="same", activation="relu", name="res_a")(stem)
    y = L.Conv2D(width, 3, padding="same", name="res_b")(y)
    y = L.Add(name="add")([stem, y])
    y = L.ReLU(name="add_relu")(y)
    y = L.AveragePooling2D(name="pool")(y)
    y = L.Flatten(name="flatten")(y)
    return L.Dense(classes, name="classifier")(y)


def _wide_residual(L, x, classes):
    """_residual with 25 channels: res_b's 3x3 input gradient sums its 25
    input channels in register blocks of 16, 8 and 1."""
    return _residual(L, x, classes, width=25)


def _mlp(L, x, classes):
    """Dense layers on the flattened input."""
    y = L.Flatten(name="flatten")(x)
    y = L.Dense(12, activation="relu", name="fc1")(y)
    y = L.Dense(8, activation="relu", name="fc2")(y)
    return L.Dense(classes, name="classifier")(y)


def _inverted_residual(L, x, classes):
    """MobileNetV2-like: stem, two inverted residual blocks (1x1 expand,
    ReLU6 -> 3x3 depthwise -> 1x1 project; the first with a residual ADD,
    the second with stride 2 and depth multiplier 2), classifier. Frozen
    expand -> depthwise pairs fuse (tflm_train/converter/fusion.py)."""
    stem = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6", name="stem")(x)
    y = L.Conv2D(24, 1, activation="relu6", name="b1_expand")(stem)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="b1_depthwise")(y)
    y = L.Conv2D(8, 1, name="b1_project")(y)
    y = L.Add(name="b1_add")([stem, y])
    y = L.Conv2D(16, 1, activation="relu6", name="b2_expand")(y)
    y = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                          activation="relu6", name="b2_depthwise")(y)
    y = L.Conv2D(12, 1, activation="relu6", name="b2_project")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return L.Dense(classes, name="classifier")(y)


_BODIES = {"cnn": _cnn, "mobilenet": _mobilenet, "residual": _residual,
           "wide_residual": _wide_residual, "mlp": _mlp,
           "inverted_residual": _inverted_residual}


def keras_model(name, seed=0):
    """The float tf_keras model `name` with deterministic random weights."""
    keras, L = _layers()
    shape, classes = SHAPES[name]
    inputs = L.Input(shape, name="input")
    model = keras.Model(inputs, _BODIES[name](L, inputs, classes), name=name)
    return randomize_weights(model, seed)


def randomize_weights(model, seed=0, bias_std=0.1):
    """Deterministic random weights (He-normal kernels, normal biases) for
    every layer of a tf_keras model; returns the model."""
    _, L = _layers()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kernel, *rest = weights
        depthwise = isinstance(layer, L.DepthwiseConv2D)  # kernel (KH, KW, C, 1)
        fan_in = np.prod(kernel.shape[:2] if depthwise else kernel.shape[:-1])
        new = [rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32)]
        new += [rng.normal(0, bias_std, w.shape).astype(np.float32) for w in rest]
        layer.set_weights(new)
    return model


def representative_inputs(name, seed=0, count=32):
    """Float inputs for calibration and tests, shape (count, *input shape)."""
    shape, _ = SHAPES[name]
    return np.random.default_rng(seed + 1000).normal(0, 1, (count,) + shape).astype(np.float32)


def quantize(model, samples, float_io=False, per_tensor_dense=False):
    """Full-int8 post-training quantization of a tf_keras model.

    TF 2.21 quantizes FULLY_CONNECTED weights per channel by default;
    `per_tensor_dense` asks for the per-tensor weights older converters (and
    many deployed models) have.
    """
    import tensorflow as tf  # noqa: PLC0415
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if per_tensor_dense:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@functools.cache
def tflite_model(name, seed=0, float_io=False, per_tensor_dense=False):
    """int8 .tflite bytes of architecture `name` (see SHAPES)."""
    return quantize(keras_model(name, seed), representative_inputs(name, seed), float_io,
                    per_tensor_dense)


def plain_cnn(seed=0, float_io=False):
    return tflite_model("cnn", seed, float_io)


def mobilenet_like(seed=0, float_io=False):
    return tflite_model("mobilenet", seed, float_io)


def residual(seed=0, float_io=False):
    return tflite_model("residual", seed, float_io)


def wide_residual(seed=0, float_io=False):
    return tflite_model("wide_residual", seed, float_io)


def mlp(seed=0, float_io=False):
    return tflite_model("mlp", seed, float_io)


def inverted_residual(seed=0, float_io=False):
    return tflite_model("inverted_residual", seed, float_io)


ARCHITECTURES = {"cnn": plain_cnn, "mobilenet": mobilenet_like, "residual": residual,
                 "mlp": mlp}


# Regression models (not classifiers): name -> (input shape, output shape).
REGRESSION_SHAPES = {"sine": ((1,), (1,)), "autoencoder": ((32,), (32,))}


@functools.cache
def regression_model(name, seed=0):
    """int8 .tflite of a regression model with int8 input and output:
    "sine", TFLM hello_world's shape (1 -> 16 -> 16 -> 1, ReLU), fitted to
    sin(x) on [0, 2 pi); "autoencoder", a dense 32 -> 8 -> 32 autoencoder
    (the anomaly-detection kind) fitted to smooth random curves."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    x, y = regression_data(name, seed, 512)
    if name == "sine":
        model = keras.Sequential([L.Input((1,)), L.Dense(16, activation="relu"),
                                  L.Dense(16, activation="relu"), L.Dense(1)])
    else:
        model = keras.Sequential([L.Input((32,)), L.Dense(8, activation="relu"),
                                  L.Dense(32)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    return quantize(model, x[:64])


def regression_data(name, seed=0, count=64, offset=0.0):
    """(x, y) float32 for `regression_model(name)`; `offset` shifts the
    target (a new task for fine-tuning)."""
    rng = np.random.default_rng(seed + 2000)
    if name == "sine":
        x = rng.uniform(0, 2 * np.pi, (count, 1)).astype(np.float32)
        return x, (np.sin(x) + offset).astype(np.float32)
    t = np.linspace(0, 1, 32, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    x = (0.5 + 0.4 * np.sin(2 * np.pi * t + phase)).astype(np.float32)
    return x, x + np.float32(offset)


@dataclasses.dataclass
class OutputLayer:
    """The output layer of a training model, as the tests read it."""
    model: object  # the flatbuffer object model (tflite.read_model)
    x_index: int  # its int8 input
    s_x: np.float32
    z_x: int
    s_w: np.ndarray  # per output channel (a per-tensor scale broadcast)
    filter_index: int
    weight_name: str  # keys of Trainer.trainable_weights()
    bias_name: str

    def features(self, trainer, samples) -> np.ndarray:
        """The real-valued input of the layer for each sample (infer mode)."""
        rows = []
        for sample in samples:
            trainer.predict(sample)
            q = trainer._interp.get_tensor(self.x_index).reshape(-1).astype(np.float32)
            rows.append(self.s_x * (q - self.z_x))
        return np.array(rows)


def output_layer(training, trainer) -> OutputLayer:
    """The trained layer with the highest operator index: the output layer."""
    from tflm_train.converter import tflite

    model = tflite.read_model(training)
    sg = model.subgraphs[0]
    op = sg.operators[max(t.op_index for t in trainer.info.trainables)]
    x_index, w_index, b_index = (int(t) for t in op.inputs[:3])
    q = sg.tensors[x_index].quantization
    classes = int(sg.tensors[w_index].shape[0])
    s_w = np.broadcast_to(np.float32(sg.tensors[w_index].quantization.scale), (classes,))
    return OutputLayer(model, x_index, np.float32(q.scale[0]), int(q.zeroPoint[0]), s_w,
                       w_index, tflite.name_of(sg.tensors[w_index]),
                       tflite.name_of(sg.tensors[b_index]))


def quadrant_task(shape, seed=0, count=64):
    """A learnable 4-class task: the class lights one quadrant of the image
    (or one quarter of the sequence)."""
    rng = np.random.default_rng(seed)
    y = np.arange(count) % 4
    x = rng.normal(0, 0.3, (count,) + shape).astype(np.float32)
    h = shape[0] // 2
    for k in range(count):
        c = y[k]
        if len(shape) == 3:
            w = shape[1] // 2
            x[k, (c // 2) * h:(c // 2 + 1) * h, (c % 2) * w:(c % 2 + 1) * w] += 1.0
        else:
            q = shape[0] // 4
            x[k, c * q:(c + 1) * q] += 1.0
    return x, y


def pretrained_on_mirror(body, shape, x, y, seed=0, batch_size=1):
    """A model trained on the mirrored task (so that the real one is a
    domain shift on-device training has to follow)."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = L.Input(shape, batch_size=batch_size)
    model = keras.Model(inp, body(inp))
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:, ::-1], y, epochs=15, verbose=0, batch_size=8)
    return model


@functools.cache
def every_new_op_model():
    """(tf_keras model, x, y): one model with HARD_SWISH, LOGISTIC, squeeze-excite
    MUL, TRANSPOSE, STRIDED_SLICE, LEAKY_RELU, TANH and CONCATENATION, all
    inside the region last-k:6 trains; pre-trained on the mirrored
    quadrant task."""
    import tensorflow as tf  # noqa: PLC0415
    _, L = _layers()

    def body(t):
        t = L.Conv2D(8, 3, padding="same")(t)
        t = L.Activation(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)(t)  # HARD_SWISH
        gates = L.GlobalAveragePooling2D(keepdims=True)(t)
        gates = L.Conv2D(4, 1, activation="relu")(gates)
        gates = L.Conv2D(8, 1, activation="sigmoid")(gates)  # LOGISTIC
        t = L.Multiply()([t, gates])  # MUL, squeeze-excite broadcast
        t = L.Permute((2, 1, 3))(t)  # TRANSPOSE
        t = L.Lambda(lambda v: v[:, ::2, ::-1, :])(t)  # STRIDED_SLICE
        left = L.LeakyReLU(0.2)(L.Conv2D(3, 1)(t))  # LEAKY_RELU
        right = L.Activation("tanh")(L.Conv2D(3, 1)(t))  # TANH
        return L.Dense(4)(L.Flatten()(L.Concatenate()([left, right])))  # CONCATENATION

    shape = (8, 8, 1)
    x, y = quadrant_task(shape)
    return pretrained_on_mirror(body, shape, x, y), x, y
