"""LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU, and a QUANTIZE that requantizes
int8 to int8 inside the graph, against TFLM's reference kernels (the
`tflite-micro` wheel): every tensor of small converted models equal byte for
byte (tflm_parity).

Each activation sits between two trainable layers, so its input and output
are intermediate tensors with converter-chosen quantization. Calibration
data scaled by 0.1 and by 10 gives narrow and wide input ranges: the linear
region of sigmoid / tanh / hard swish, and their saturated ones. Some models
then get quantization parameters edited into places converters do not reach
(scales where the fixed-point paths shift by large amounts), to pin those
paths too.
"""
import functools

import numpy as np
import pytest

import models  # also sets TF_USE_LEGACY_KERAS before TensorFlow loads
import tflm_parity

RANGES = (0.1, 10.0)


def _keras():
    import tensorflow as tf  # noqa: PLC0415 - slow import, only when building
    import tf_keras
    return tf, tf_keras, tf_keras.layers


def _activation(kind):
    """The tf_keras layer the converter turns into builtin `kind`."""
    tf, _, L = _keras()
    if kind == "LOGISTIC":
        return L.Activation("sigmoid")
    if kind == "TANH":
        return L.Activation("tanh")
    if kind == "HARD_SWISH":  # fused into HARD_SWISH by the converter
        return L.Lambda(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)
    if kind.startswith("LEAKY_RELU"):
        return L.LeakyReLU(float(kind.split(":")[1]))
    raise ValueError(kind)


# layout -> input shape (without batch)
LAYOUTS = {
    "dense": (6,),        # rank 2 activations
    "conv": (5, 5, 2),    # rank 4
    "rank6": (2, 2, 2, 3, 2),  # rank 6 with the batch
}


@functools.cache
def activation_model(kind, layout, input_range, seed=0):
    """int8 .tflite: a layer, the activation `kind`, a layer; calibrated
    with normal inputs times `input_range`."""
    _, keras, L = _keras()
    # A fixed batch keeps the RESHAPEs static (no SHAPE op).
    x = L.Input(LAYOUTS[layout], batch_size=1, name="input")
    if layout == "dense":
        y = L.Dense(8, name="before")(x)
        y = _activation(kind)(y)
        y = L.Dense(4, name="after")(y)
    elif layout == "conv":
        y = L.Conv2D(3, 3, padding="same", name="before")(x)
        y = _activation(kind)(y)
        y = L.Conv2D(2, 1, name="after")(y)
    else:
        y = L.Dense(2, name="before")(x)  # on the last axis: keeps rank 6
        y = _activation(kind)(y)
        y = L.Dense(2, name="after")(y)
    model = keras.Model(x, y)
    models.randomize_weights(model, seed, bias_std=0.3)
    samples = (np.random.default_rng(seed + 1).normal(0, 1, (48,) + LAYOUTS[layout])
               * input_range).astype(np.float32)
    return models.quantize(model, samples)


def _ops(model_bytes):
    from tflm_train.converter import tflite  # noqa: PLC0415
    model = tflite.read_model(model_bytes)
    return [tflite.op_name(model, op) for op in model.subgraphs[0].operators]


def _check(model_bytes, op, samples=8, seed=0):
    """Parity on `samples` random inputs; returns the tensors compared."""
    assert op in _ops(model_bytes), _ops(model_bytes)
    compared = tflm_parity.assert_every_tensor_matches_tflm(model_bytes, samples, seed)
    assert compared >= samples * 3
    return compared


def _edited(model_bytes, op_name, tensor_role, scale=None, zero_point=None):
    """The model with the quantization of `op_name`'s input or output tensor
    replaced (the neighbouring ops read it from the tensor, so the graph
    stays consistent)."""
    from tflm_train.converter import tflite  # noqa: PLC0415
    model = tflite.read_model(model_bytes)
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators if tflite.op_name(model, o) == op_name)
    index = (op.inputs if tensor_role == "input" else op.outputs)[0]
    q = graph.tensors[index].quantization
    if scale is not None:
        q.scale = np.array([scale], np.float32)
    if zero_point is not None:
        q.zeroPoint = np.array([zero_point], np.int64)
    return tflite.write_model(model)


def _tensor(model_bytes, op_name, tensor_role):
    from tflm_train.converter import tflite  # noqa: PLC0415
    model = tflite.read_model(model_bytes)
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators if tflite.op_name(model, o) == op_name)
    return graph.tensors[(op.inputs if tensor_role == "input" else op.outputs)[0]]


def _quantization(model_bytes, op_name, tensor_role):
    q = _tensor(model_bytes, op_name, tensor_role).quantization
    return float(q.scale[0]), int(q.zeroPoint[0])


# ---- LOGISTIC and TANH --------------------------------------------------------

@pytest.mark.parametrize("layout", ["dense", "conv"])
@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_logistic_tanh_match_tflm(kind, input_range, layout):
    model = activation_model(kind, layout, input_range)
    expected = (1 / 256, -128) if kind == "LOGISTIC" else (1 / 128, 0)
    assert _quantization(model, kind, "output") == expected
    _check(model, kind)


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_logistic_tanh_rank6(kind):
    model = activation_model(kind, "rank6", 3.0)
    assert len(_tensor(model, kind, "input").shape) == 6
    _check(model, kind)


# input scales whose Q4.27 rescale shifts left by 0, a little, by 30 (radius
# 1: only the zero point is not saturated) and by 31 or more (radius 0:
# every input saturates, even the zero point, as in TFLM)
@pytest.mark.parametrize("scale", [2.0 ** -27.5, 1e-4, 3.9, 12.0, 1e6])
@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_logistic_tanh_extreme_input_scales(kind, scale):
    model = _edited(activation_model(kind, "dense", 1.0), kind, "input", scale=scale)
    _check(model, kind)


# ---- HARD_SWISH -----------------------------------------------------------------

@pytest.mark.parametrize("layout", ["dense", "conv"])
@pytest.mark.parametrize("input_range", RANGES + (1.0,))
def test_hard_swish_matches_tflm(input_range, layout):
    _check(activation_model("HARD_SWISH", layout, input_range), "HARD_SWISH")


def test_hard_swish_rank6():
    model = activation_model("HARD_SWISH", "rank6", 2.0)
    assert len(_tensor(model, "HARD_SWISH", "input").shape) == 6
    _check(model, "HARD_SWISH")


# Output scales (as factors of the input scale) far above the input scale
# drive the output shift to 16 and beyond, where TFLM's 16-bit rounding
# shift narrows its mask; just above input scale / 128 gives shift 0 (the
# largest pre-shift values). Input scales far from the usual give relu-ish
# shifts from -20 up to +24.
@pytest.mark.parametrize("input_scale,output_factor,zero_point", [
    (None, 1 / 120, None), (None, 0.9, 5), (None, 1e3, -3), (None, 1e5, 100),
    (1e-6, 1.0, None), (2.0 ** 10, 0.7, None), (1e5, 0.01, 7)])
def test_hard_swish_extreme_scales(input_scale, output_factor, zero_point):
    model = activation_model("HARD_SWISH", "dense", 1.0)
    if input_scale is not None:
        model = _edited(model, "HARD_SWISH", "input", scale=input_scale)
    scale = _quantization(model, "HARD_SWISH", "input")[0] * output_factor
    model = _edited(model, "HARD_SWISH", "output", scale=scale, zero_point=zero_point)
    _check(model, "HARD_SWISH")


# ---- LEAKY_RELU -----------------------------------------------------------------

@pytest.mark.parametrize("layout", ["dense", "conv"])
@pytest.mark.parametrize("input_range", RANGES)
@pytest.mark.parametrize("alpha", ["0.1", "0.3", "0.01", "-0.2", "1.5"])
def test_leaky_relu_matches_tflm(alpha, input_range, layout):
    _check(activation_model(f"LEAKY_RELU:{alpha}", layout, input_range), "LEAKY_RELU")


def test_leaky_relu_rank6():
    model = activation_model("LEAKY_RELU:0.2", "rank6", 1.0)
    assert len(_tensor(model, "LEAKY_RELU", "input").shape) == 6
    _check(model, "LEAKY_RELU")


@pytest.mark.parametrize("role,scale,zero_point", [
    ("output", 1e-5, -100), ("output", 50.0, 127), ("input", 3e-9, 0)])
def test_leaky_relu_extreme_scales(role, scale, zero_point):
    model = _edited(activation_model("LEAKY_RELU:0.3", "dense", 1.0), "LEAKY_RELU",
                    role, scale=scale, zero_point=zero_point)
    _check(model, "LEAKY_RELU")


# alpha * input scale / output scale = +-1/2 exactly: every odd negative
# input is a rounding tie, where a negative alpha's rescale must be the
# negated rescale by |alpha| (as in TFLM), not a rescale by a negative
# multiplier (ties round upwards: the two differ).
@pytest.mark.parametrize("alpha", ["-0.5", "0.5"])
def test_leaky_relu_rounding_ties(alpha):
    model = activation_model(f"LEAKY_RELU:{alpha}", "dense", 1.0)
    scale, _ = _quantization(model, "LEAKY_RELU", "input")
    model = _edited(model, "LEAKY_RELU", "output", scale=scale, zero_point=3)
    _check(model, "LEAKY_RELU")


# ---- QUANTIZE int8 -> int8 inside the graph --------------------------------------

@functools.cache
def qat_average_pool_model(seed=0, epochs=2):
    """tfmot QAT of conv -> AveragePooling2D -> conv: the converter puts a
    QUANTIZE (int8 -> int8) after the pooling, whose output quantizer the QAT
    wrapper adds."""
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415
    _, keras, L = _keras()
    x = L.Input((8, 8, 2), name="input")
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    y = L.AveragePooling2D(name="pool")(y)
    y = L.Conv2D(3, 1, name="after")(y)
    y = L.Flatten(name="flatten")(y)
    model = keras.Model(x, L.Dense(3, name="classifier")(y))
    models.randomize_weights(model, seed, bias_std=0.3)
    qat = tfmot.quantization.keras.quantize_model(model)
    rng = np.random.default_rng(seed + 1)
    data = rng.normal(0, 1, (64, 8, 8, 2)).astype(np.float32)
    qat.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    qat.fit(data, rng.normal(0, 1, (64, 3)).astype(np.float32), epochs=epochs,
            batch_size=16, verbose=0)
    return models.quantize(qat, data[:32])


def test_qat_average_pool_requantize_matches_tflm():
    model = qat_average_pool_model()
    in_q = _quantization(model, "QUANTIZE", "input")
    out_q = _quantization(model, "QUANTIZE", "output")
    assert in_q != out_q  # a real requantization
    _check(model, "QUANTIZE")


# The QUANTIZE output quantization edited: scale ratios above and below 1,
# equal scales with another zero point (TFLM's identity multiplier), and
# ratios that saturate.
@pytest.mark.parametrize("factor,zero_point", [
    (1.0, 17), (0.37, -5), (3.3, 40), (1 / 300.0, 0), (200.0, -128), (1.0, None)])
def test_requantize_scales_match_tflm(factor, zero_point):
    base = qat_average_pool_model()
    scale = _quantization(base, "QUANTIZE", "input")[0] * factor
    model = _edited(base, "QUANTIZE", "output", scale=scale, zero_point=zero_point)
    _check(model, "QUANTIZE")


# ---- what TFLM refuses, refused here too ----------------------------------------

def _tflm_refuses(model_bytes):
    try:
        tflm_parity.tflm_interpreter(model_bytes)
    except (RuntimeError, ValueError):
        return True
    return False


def _ours_refuses(model_bytes, message):
    from tflm_train import _native  # noqa: PLC0415
    with pytest.raises(RuntimeError, match=message):
        _native.Interpreter(model_bytes, tflm_parity.ARENA)
    return True


def test_refusals_agree_with_tflm():
    hard_swish = activation_model("HARD_SWISH", "dense", 1.0)
    input_scale = _quantization(hard_swish, "HARD_SWISH", "input")[0]
    # output multiplier of 1 or more: TFLM's HARD_SWISH Prepare refuses it
    model = _edited(hard_swish, "HARD_SWISH", "output", scale=input_scale / 200)
    assert _tflm_refuses(model) and _ours_refuses(model, "HARD_SWISH: input scale")
    # LOGISTIC output zero point other than -128: TFLM refuses it
    logistic = activation_model("LOGISTIC", "dense", 1.0)
    model = _edited(logistic, "LOGISTIC", "output", zero_point=0)
    assert _tflm_refuses(model) and _ours_refuses(model, "LOGISTIC: output must have")
