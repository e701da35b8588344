"""In-place DEPTHWISE_CONV_2D in the standalone runtime.

When no later op reads a depthwise convolution's input, the runtime puts the
output over the input's buffer and computes it a few rows at a time
(ops_cc/kernels/depthwise_conv.h). Checked here on small tf_keras models
(strides, paddings, kernel sizes; TensorFlow's converter turns a dilated
depthwise convolution into SPACE_TO_BATCH_ND around it): the final outputs equal the
`tflite-micro` wheel's byte for byte, every tensor equals it when the
runtime keeps all tensors (no sharing then), and the planned live bytes at
the depthwise op are the input, a few output rows and the requantization
scratch, not input + output.
"""
import numpy as np
import pytest
import tf_keras as keras

import models
import tflm_parity
from tflm_train import _native
from tflm_train.converter import tflite

L = keras.layers
ARENA = 1 << 22

CASES = {  # name: (input shape, DepthwiseConv2D keyword arguments)
    "3x3 stride 1 same": ((12, 10, 8), dict(kernel_size=3, padding="same")),
    "3x3 stride 2 same": ((13, 12, 8), dict(kernel_size=3, strides=2, padding="same")),
    "5x5 stride 1 valid": ((11, 9, 4), dict(kernel_size=5, padding="valid")),
    "7x7 stride 2 same": ((16, 16, 6), dict(kernel_size=7, strides=2, padding="same")),
    "2x2 stride 2 valid": ((10, 10, 4), dict(kernel_size=2, strides=2, padding="valid")),
    "3x1 stride (2, 1) same": ((9, 7, 4), dict(kernel_size=(3, 1), strides=(2, 1),
                                               padding="same")),
}


def _model(shape, dw, seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input(shape)
    y = L.Conv2D(shape[-1], 1, activation="relu")(x)  # the depthwise input is planned
    y = L.DepthwiseConv2D(activation="relu", **dw)(y)
    y = L.Conv2D(5, 1)(y)
    model = keras.Model(x, y)
    models.randomize_weights(model, seed)
    samples = np.random.default_rng(seed).normal(0, 1, (24,) + shape).astype(np.float32)
    return models.quantize(model, samples)


def _depthwise_op(model_bytes):
    m = tflite.read_model(model_bytes)
    ops = m.subgraphs[0].operators
    i = next(i for i, op in enumerate(ops) if tflite.op_name(m, op) == "DEPTHWISE_CONV_2D")
    x, y = int(ops[i].inputs[0]), int(ops[i].outputs[0])
    size = lambda t: int(np.prod(m.subgraphs[0].tensors[t].shape))  # noqa: E731
    return i, size(x), m.subgraphs[0].tensors[y].shape


@pytest.mark.parametrize("name", sorted(CASES))
def test_in_place_depthwise_equals_tflm(name):
    shape, dw = CASES[name]
    model_bytes = _model(shape, dw, seed=len(name))
    ours = _native.Interpreter(model_bytes, ARENA)
    ref = tflm_parity.tflm_interpreter(model_bytes)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.integers(-128, 128, size=(1,) + shape).astype(np.int8)
        ours.set_tensor(ours.inputs[0], x)
        ref.set_input(x, 0)
        ours.invoke()
        ref.invoke()
        out = ours.outputs[0]
        np.testing.assert_array_equal(
            ours.get_tensor(out).reshape(-1), tflm_parity.tflm_tensor(ref, out, np.int8))
    # Keeping every tensor (no sharing) agrees with the wheel everywhere.
    assert tflm_parity.assert_every_tensor_matches_tflm(model_bytes, samples=2) > 0

    op, input_bytes, out_shape = _depthwise_op(model_bytes)
    align = lambda n: -(-n // 16) * 16  # noqa: E731
    out_row = int(out_shape[2]) * int(out_shape[3])
    channels = int(out_shape[3])
    live = ours.timeline()[op]["live_bytes"]
    requant_scratch = align(8 * channels)  # multipliers and shifts, int32 each
    rows = (live - align(input_bytes) - requant_scratch) / out_row
    assert live < align(input_bytes) + align(int(np.prod(out_shape))), (
        f"the depthwise op holds {live} B: not in place")
    assert 1 <= rows <= 4, f"{rows} output rows of scratch"


def test_not_in_place_when_the_input_is_read_later():
    """A residual: the depthwise input feeds the ADD too, so the output
    gets its own buffer."""
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 4))
    y = L.Conv2D(4, 1, activation="relu")(x)
    z = L.DepthwiseConv2D(3, padding="same")(y)
    model = keras.Model(x, L.Add()([y, z]))
    samples = np.random.default_rng(0).normal(0, 1, (16, 8, 8, 4)).astype(np.float32)
    model_bytes = models.quantize(model, samples)
    ours = _native.Interpreter(model_bytes, ARENA)
    op, input_bytes, out_shape = _depthwise_op(model_bytes)
    assert ours.timeline()[op]["live_bytes"] >= input_bytes + int(np.prod(out_shape))
    assert tflm_parity.assert_every_tensor_matches_tflm(model_bytes, samples=2) > 0


def test_plan_lists_the_in_place_ops():
    """`tflm-train plan` names each in-place depthwise op of a training
    model and the output buffer it no longer needs; training numerics are
    the firmware's (tests/test_firmware.py runs these models)."""
    import tflm_train

    training = tflm_train.convert(models.tflite_model("mobilenet", 0), {"preset": "last-k:2"})
    report = tflm_train.plan(training)
    m = tflite.read_model(training)
    graph = m.subgraphs[0]
    expected = [i for i, op in enumerate(graph.operators)
                if tflite.op_name(m, op) == "DEPTHWISE_CONV_2D"]
    assert expected
    savings = [s for s in report["memory_savings"] if s["what"].startswith("in place")]
    assert [s["op"] for s in savings] == expected
    for s in savings:
        out = graph.tensors[int(graph.operators[s["op"]].outputs[0])]
        assert s["was_bytes"] == int(np.prod(out.shape)) and s["now_bytes"] == 0
