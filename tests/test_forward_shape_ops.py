"""Shape and layout ops of the standalone runtime against the real TFLM.

STRIDED_SLICE, TRANSPOSE, SQUEEZE, EXPAND_DIMS, RESIZE_NEAREST_NEIGHBOR and
MEAN over any axes: small tf_keras models, converted to full int8 here, run
through our runtime and the `tflite-micro` wheel; every tensor must agree
byte for byte (tests/tflm_parity.py). Most put the op between convolutions,
and the calibration data is scaled so that quantization ranges differ
(narrow, unit, wide).
"""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import models
import tflm_parity
from tflm_train import _native
from tflm_train.converter import tflite

L = keras.layers
# Calibration ranges: narrow, unit and wide activations.
RANGES = {"narrow": 0.05, "unit": 1.0, "wide": 20.0}


def _keras(input_shape, body, seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input(input_shape)
    return keras.Model(x, body(x))


def _convert(model, input_shape, scale, seed, float_io=False):
    rng = np.random.default_rng(seed)
    samples = (rng.normal(0, 1, size=(24,) + tuple(input_shape)) * scale).astype(np.float32)
    return models.quantize(model, samples, float_io=float_io)


def _ops(model_bytes):
    m = tflite.read_model(model_bytes)
    return [tflite.op_name(m, op) for op in m.subgraphs[0].operators]


def _options(model_bytes, name):
    m = tflite.read_model(model_bytes)
    return [op.builtinOptions for op in m.subgraphs[0].operators
            if tflite.op_name(m, op) == name]


def _check(model_bytes, expect_ops, samples=4, seed=0):
    ops = _ops(model_bytes)
    for op in expect_ops:
        assert op in ops, f"the converter produced {ops}, no {op}"
    compared = tflm_parity.assert_every_tensor_matches_tflm(model_bytes, samples, seed)
    assert compared >= len(ops) * samples
    return compared


def conv(filters=6, kernel=3, activation="relu"):
    return L.Conv2D(filters, kernel, padding="same", activation=activation)


# ---- STRIDED_SLICE ---------------------------------------------------------

SLICES = {
    # x[:, 1:5:2, ...]: begin/end with stride 2, ellipsis folded by the converter.
    "stride2": lambda t: t[:, 1:5:2, ...],
    # x[..., -3:]: negative begin, end mask.
    "last3": lambda t: t[..., -3:],
    # x[:, 0]: shrink axis (rank 4 -> 3).
    "shrink": lambda t: t[:, 0],
    # x[:, -1, 2:]: shrink with a negative index.
    "shrink_neg": lambda t: t[:, -1, 2:],
    # Negative strides, reversed axes, clamped out-of-range indices.
    "reverse": lambda t: t[:, ::-1, 6:1:-2, :],
    "reverse_clamped": lambda t: t[:, 100:-100:-3, -2::-1, 1:3],
    # Everything but the first and last row / column.
    "crop": lambda t: t[:, 1:-1, 1:-1, :],
    # Every third channel.
    "channels": lambda t: t[:, :, :, ::3],
}


def _slice_model(kind, seed):
    def body(x):
        y = conv(6)(x)
        y = L.Lambda(SLICES[kind])(y)
        if len(y.shape) == 3:  # shrunk: continue as a sequence
            y = L.Conv1D(4, 2, activation="relu")(y)
        else:
            y = conv(4)(y)
        return L.Dense(3)(L.Flatten()(y))
    return _keras((8, 7, 3), body, seed)


@pytest.mark.parametrize("rng_name", ["narrow", "wide"])
@pytest.mark.parametrize("kind", sorted(SLICES))
def test_strided_slice_matches_tflm(kind, rng_name):
    model = _convert(_slice_model(kind, 0), (8, 7, 3), RANGES[rng_name], 0)
    _check(model, ["STRIDED_SLICE", "CONV_2D"])


def test_strided_slice_masks_reach_the_model():
    # The converter's masks for x[:, 0] and reversed slices are what we test.
    shrink = _convert(_slice_model("shrink", 0), (8, 7, 3), 1.0, 0)
    (o,) = _options(shrink, "STRIDED_SLICE")
    assert o.shrinkAxisMask == 2 and o.beginMask != 0
    reverse = _convert(_slice_model("reverse", 0), (8, 7, 3), 1.0, 0)
    (o,) = _options(reverse, "STRIDED_SLICE")
    assert o.endMask != 0


def test_strided_slice_on_the_model_input_with_float_io():
    def body(x):
        y = L.Lambda(lambda t: t[:, 2:, ::2])(x)
        return L.Dense(2)(L.Flatten()(conv(3)(y)))
    model = _convert(_keras((6, 6, 2), body, 1), (6, 6, 2), 1.0, 1, float_io=True)
    _check(model, ["STRIDED_SLICE", "QUANTIZE", "DEQUANTIZE"])


# ---- TRANSPOSE -------------------------------------------------------------

TRANSPOSES = {
    "permute_hw": (lambda: L.Permute((2, 1, 3)), (5, 4, 3)),
    "permute_chw": (lambda: L.Permute((3, 1, 2)), (5, 4, 3)),
    "permute_cwh": (lambda: L.Permute((3, 2, 1)), (5, 4, 3)),
}


@pytest.mark.parametrize("rng_name", sorted(RANGES))
@pytest.mark.parametrize("kind", sorted(TRANSPOSES))
def test_permute_between_convs_matches_tflm(kind, rng_name):
    layer, shape = TRANSPOSES[kind]

    def body(x):
        y = layer()(conv(3)(x))
        return L.Dense(4)(L.Flatten()(conv(5)(y)))
    model = _convert(_keras(shape, body, 2), shape, RANGES[rng_name], 2)
    _check(model, ["TRANSPOSE", "CONV_2D"])


def test_transpose_of_a_sequence_matches_tflm():
    # Rank 3: [N, T, C] -> [N, C, T], then a Conv1D over channels-as-time.
    def body(x):
        y = L.Conv1D(6, 3, padding="same", activation="relu")(x)
        y = L.Lambda(lambda t: tf.transpose(t, [0, 2, 1]))(y)
        return L.Dense(3)(L.Flatten()(L.Conv1D(4, 2)(y)))
    model = _convert(_keras((10, 4), body, 3), (10, 4), 1.0, 3)
    _check(model, ["TRANSPOSE", "EXPAND_DIMS"])


def test_rank5_transpose_matches_tflm():
    # A channel shuffle: [N, H, W, G, C/G] -> [N, H, W, C/G, G].
    def body(x):
        y = conv(6)(x)
        y = L.Lambda(lambda t: tf.reshape(tf.transpose(
            tf.reshape(t, [-1, 4, 4, 2, 3]), [0, 1, 2, 4, 3]), [-1, 4, 4, 6]))(y)
        return L.Dense(3)(L.Flatten()(conv(4)(y)))
    model = _convert(_keras((4, 4, 2), body, 4), (4, 4, 2), 1.0, 4)
    m = tflite.read_model(model)
    ranks = [len(m.subgraphs[0].tensors[op.inputs[0]].shape)
             for op in m.subgraphs[0].operators if tflite.op_name(m, op) == "TRANSPOSE"]
    assert ranks == [5]
    _check(model, ["TRANSPOSE"])


# ---- SQUEEZE and EXPAND_DIMS -----------------------------------------------

def _squeeze_instead_of_reshape(model_bytes, dims_for):
    """The converter turns tf.squeeze into RESHAPE when shapes are static;
    this rewrites each RESHAPE that only drops size-1 dimensions into the
    SQUEEZE it came from (squeeze_dims from `dims_for(input_shape,
    output_shape)`), so TFLM's and our SQUEEZE run on real shapes."""
    schema = tflite.schema()
    m = tflite.read_model(model_bytes)
    codes = m.operatorCodes
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
    code.version = 1
    codes.append(code)
    rewritten = 0
    sg = m.subgraphs[0]
    for op in sg.operators:
        if tflite.op_name(m, op) != "RESHAPE":
            continue
        shape_in = [int(d) for d in sg.tensors[op.inputs[0]].shape]
        shape_out = [int(d) for d in sg.tensors[op.outputs[0]].shape]
        dims = dims_for(shape_in, shape_out)
        if dims is None:
            continue
        op.opcodeIndex = len(codes) - 1
        op.inputs = np.array(op.inputs[:1], dtype=np.int32)
        options = schema.SqueezeOptionsT()
        options.squeezeDims = list(dims)
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = options
        rewritten += 1
    assert rewritten > 0
    return tflite.write_model(m)


def _dropped_ones(shape_in, shape_out):
    """Positions of shape_in whose removal (all size 1) gives shape_out."""
    dropped, j = [], 0
    for i, d in enumerate(shape_in):
        if j < len(shape_out) and shape_out[j] == d:
            j += 1
        elif d == 1:
            dropped.append(i)
        else:
            return None
    return dropped if j == len(shape_out) and dropped else None


def _squeeze_model(seed):
    # [N, 6, 1, 5] --squeeze(2)--> [N, 6, 5] (a Conv1D follows), with
    # [N, 1, 1, C] -> [N, C] before the classifier.
    def body(x):
        y = L.Conv2D(5, (3, 3), activation="relu")(x)  # [N, 6, 1, 5]
        y = L.Lambda(lambda t: tf.squeeze(t, axis=2))(y)
        y = L.Conv1D(4, 6, activation="relu")(y)  # [N, 1, 4]
        y = L.Lambda(lambda t: tf.squeeze(t, axis=1))(y)
        return L.Dense(3)(y)
    return _keras((8, 3, 2), body, seed)


@pytest.mark.parametrize("form", ["listed", "negative"])
@pytest.mark.parametrize("rng_name", ["narrow", "wide"])
def test_squeeze_matches_tflm(form, rng_name):
    model = _convert(_squeeze_model(5), (8, 3, 2), RANGES[rng_name], 5)
    assert "RESHAPE" in _ops(model)
    tflm_parity.assert_every_tensor_matches_tflm(model, 2)  # as converted

    def dims_for(shape_in, shape_out):
        dropped = _dropped_ones(shape_in, shape_out)
        if dropped is None or form == "listed":
            return dropped
        return [d - len(shape_in) for d in dropped]
    squeezed = _squeeze_instead_of_reshape(model, dims_for)
    assert _ops(squeezed).count("SQUEEZE") == 2
    _check(squeezed, ["SQUEEZE", "CONV_2D"])


def test_squeeze_of_every_unit_dimension_matches_tflm():
    # An empty squeeze_dims list drops every dimension of size 1, the batch
    # too: [1, 4, 1, 5] -> [4, 5] at the model output.
    def body(x):
        return L.Lambda(lambda t: tf.squeeze(t, axis=2))(L.Conv2D(5, (3, 3))(x))
    model = _convert(_keras((6, 3, 2), body, 5), (6, 3, 2), 1.0, 5)
    squeezed = _squeeze_instead_of_reshape(model, lambda i, o: [] if i == [1, 4, 1, 5] else None)
    m = tflite.read_model(squeezed)
    (out,) = m.subgraphs[0].outputs
    m.subgraphs[0].tensors[out].shape = np.array([4, 5], dtype=np.int32)
    m.subgraphs[0].tensors[out].shapeSignature = None
    _check(tflite.write_model(m), ["SQUEEZE"])


@pytest.mark.parametrize("axis", [1, 2, -1, -2])
def test_expand_dims_matches_tflm(axis):
    # [N, 6] -> [N, 1, 6] or [N, 6, 1], then a Conv1D (which adds a second
    # EXPAND_DIMS of its own).
    def body(x):
        y = L.Dense(6, activation="relu")(L.Flatten()(x))
        y = L.Lambda(lambda t: tf.expand_dims(t, axis))(y)
        return L.Dense(3)(L.Flatten()(L.Conv1D(4, 1)(y)))
    model = _convert(_keras((4, 3), body, 6), (4, 3), 1.0, 6)
    assert _ops(model).count("EXPAND_DIMS") == 2
    _check(model, ["EXPAND_DIMS", "CONV_2D"])


@pytest.mark.parametrize("rng_name", sorted(RANGES))
def test_conv1d_expand_dims_matches_tflm(rng_name):
    # Keras Conv1D lowers to EXPAND_DIMS + CONV_2D + RESHAPE.
    def body(x):
        y = L.Conv1D(8, 3, activation="relu")(x)
        y = L.Conv1D(6, 3, strides=2)(y)
        return L.Dense(3)(L.Flatten()(y))
    model = _convert(_keras((16, 5), body, 7), (16, 5), RANGES[rng_name], 7)
    _check(model, ["EXPAND_DIMS", "CONV_2D", "RESHAPE"])


# ---- RESIZE_NEAREST_NEIGHBOR -----------------------------------------------

RESIZES = {
    "upsample2": lambda: L.UpSampling2D(2, interpolation="nearest"),
    "upsample2x3": lambda: L.UpSampling2D((2, 3), interpolation="nearest"),
    "resize_up": lambda: L.Lambda(
        lambda t: tf.image.resize(t, (11, 7), method="nearest")),
    "resize_down": lambda: L.Lambda(
        lambda t: tf.image.resize(t, (3, 2), method="nearest")),
    "align_corners": lambda: L.Lambda(
        lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (11, 7), align_corners=True)),
    "align_corners_down": lambda: L.Lambda(
        lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (3, 4), align_corners=True)),
    "legacy": lambda: L.Lambda(
        lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 13))),
    "legacy_half_pixel": lambda: L.Lambda(
        lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 13),
                                                             half_pixel_centers=True)),
}
RESIZE_OPTIONS = {
    "upsample2": (False, True), "upsample2x3": (False, True), "resize_up": (False, True),
    "resize_down": (False, True), "align_corners": (True, False),
    "align_corners_down": (True, False), "legacy": (False, False),
    "legacy_half_pixel": (False, True),
}


@pytest.mark.parametrize("rng_name", ["narrow", "wide"])
@pytest.mark.parametrize("kind", sorted(RESIZES))
def test_resize_nearest_between_convs_matches_tflm(kind, rng_name):
    def body(x):
        y = RESIZES[kind]()(conv(4)(x))
        return L.Dense(3)(L.Flatten()(conv(3)(y)))
    model = _convert(_keras((5, 4, 2), body, 8), (5, 4, 2), RANGES[rng_name], 8)
    (o,) = _options(model, "RESIZE_NEAREST_NEIGHBOR")
    assert (o.alignCorners, o.halfPixelCenters) == RESIZE_OPTIONS[kind]
    _check(model, ["RESIZE_NEAREST_NEIGHBOR", "CONV_2D"])


# ---- MEAN ------------------------------------------------------------------

MEANS = {
    # GlobalAveragePooling1D over a sequence: axis 1 of a rank-3 tensor.
    "gap1d": ((12, 4), lambda y: L.GlobalAveragePooling1D()(
        L.Conv1D(6, 3, activation="relu")(y))),
    "gap1d_keepdims": ((12, 4), lambda y: L.Flatten()(L.GlobalAveragePooling1D(keepdims=True)(
        L.Conv1D(6, 3, activation="relu")(y)))),
    # Mean over time of a sequence straight from the input (an LSTM-style
    # feature summary, axis=1, rank 3).
    "time": ((9, 5), lambda y: L.Lambda(lambda t: tf.reduce_mean(t, axis=1))(y)),
    # Over the channels, kept as a dimension of 1.
    "channels_keepdims": ((6, 5, 4), lambda y: L.Flatten()(L.Lambda(
        lambda t: tf.reduce_mean(t, axis=-1, keepdims=True))(conv(6)(y)))),
    # Two non-adjacent axes, and H alone.
    "h_and_c": ((6, 5, 4), lambda y: L.Lambda(
        lambda t: tf.reduce_mean(t, axis=[1, 3]))(conv(6)(y))),
    "h_only": ((6, 5, 4), lambda y: L.Flatten()(L.Lambda(
        lambda t: tf.reduce_mean(t, axis=1))(conv(6)(y)))),
    # The spatial mean (GlobalAveragePooling2D), which already worked.
    "gap2d": ((6, 5, 4), lambda y: L.GlobalAveragePooling2D()(conv(6)(y))),
    "gap2d_keepdims": ((6, 5, 4), lambda y: L.Flatten()(
        L.GlobalAveragePooling2D(keepdims=True)(conv(6)(y)))),
}


@pytest.mark.parametrize("rng_name", sorted(RANGES))
@pytest.mark.parametrize("kind", sorted(MEANS))
def test_mean_matches_tflm(kind, rng_name):
    shape, head = MEANS[kind]
    model = _convert(_keras(shape, lambda x: L.Dense(3)(head(x)), 9), shape,
                     RANGES[rng_name], 9)
    _check(model, ["MEAN"])


def test_mean_over_a_long_sequence_matches_tflm():
    # 200 steps: the count is not a power of two and the sums are large.
    def body(x):
        y = L.Conv1D(8, 5, activation="relu")(x)
        return L.Dense(2)(L.GlobalAveragePooling1D()(y))
    model = _convert(_keras((204, 3), body, 10), (204, 3), 3.0, 10)
    _check(model, ["MEAN"], samples=6, seed=3)


# ---- all together ----------------------------------------------------------

def test_shape_ops_in_one_model_match_tflm():
    def body(x):
        y = conv(8)(x)                                        # [N, 8, 8, 8]
        y = L.Lambda(lambda t: t[:, ::2, 1:, :6])(y)          # [N, 4, 7, 6]
        y = L.Permute((2, 1, 3))(y)                           # [N, 7, 4, 6]
        y = L.UpSampling2D(2)(y)                              # [N, 14, 8, 6]
        y = L.DepthwiseConv2D(3, strides=2, activation="relu6")(y)
        y = L.Lambda(lambda t: tf.reduce_mean(t, axis=2))(y)  # [N, 6, 6]
        y = L.Conv1D(5, 3)(y)
        return L.Softmax()(L.Dense(4)(L.GlobalAveragePooling1D()(y)))
    model = _convert(_keras((8, 8, 3), body, 11), (8, 8, 3), 1.0, 11)
    compared = _check(model, ["STRIDED_SLICE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR",
                              "MEAN", "EXPAND_DIMS", "SOFTMAX"], samples=8, seed=5)
    assert compared > 8 * 10


def test_a_bad_slice_is_refused_with_the_op_named():
    # The runtime refuses what it cannot run bit-exactly, naming the op.
    model = _convert(_slice_model("stride2", 0), (8, 7, 3), 1.0, 0)
    m = tflite.read_model(model)
    for op in m.subgraphs[0].operators:
        if tflite.op_name(m, op) == "STRIDED_SLICE":
            op.builtinOptions.ellipsisMask = 1
    with pytest.raises(RuntimeError, match="STRIDED_SLICE: ellipsis"):
        _native.Interpreter(tflite.write_model(m), tflm_parity.ARENA)
