"""Whole models with the new backward ops inside the trained region.

Each tf_keras model puts the op between trained layers (or between a trained
layer and the trained classifier), is converted to full int8 and then to a
training model; a Trainer with every tensor preserved runs the on-device
steps. After the last step the op's input gradient must equal, bit for bit,
numpy's float32 evaluation of docs/format.md's formula from the tensors of
that step (y/grad, x, y and their quantization), and training on a shifted
task must lower the loss. Gradient values against TF autodiff are in
tests/test_grad_kernels.py.
"""
import numpy as np
import pytest

import models  # also sets TF_USE_LEGACY_KERAS before TensorFlow loads
import tflm_train
from tflm_train.converter import tflite


def _keras():
    import tensorflow as tf  # noqa: PLC0415 - slow import, only when building
    import tf_keras
    return tf, tf_keras, tf_keras.layers


def _train(model, x, y, scheme):
    int8_model = models.quantize(model, x[:32])
    training = tflm_train.convert(int8_model, {**scheme, "optimizer": {"lr": 0.05}})
    trainer = tflm_train.Trainer(training, preserve_all_tensors=True)
    losses = [trainer.step(x[k], y[k]) for k in range(len(x))]
    m = tflite.read_model(training)
    ops = [tflite.op_name(m, op) for op in m.subgraphs[0].operators]
    return trainer, m, ops, losses


class Step:
    """The tensors of forward op `name` as the last step left them."""

    def __init__(self, trainer, model, ops, name):
        op = model.subgraphs[0].operators[ops.index(name)]
        self.trainer = trainer
        self.x_index, self.y_index = int(op.inputs[0]), int(op.outputs[0])
        self.op = op

    def info(self, index):
        return self.trainer.tensor_info(index)

    def value(self, index):
        return self.trainer.tensor(index)

    def grad(self, index):
        name = self.info(index)["name"] + "/grad"
        return self.trainer.tensor(self.trainer.tensor_index(name))

    def real(self, index):
        """s * (q - z) in float32, as the kernels dequantize."""
        info = self.info(index)
        q = self.value(index).astype(np.int32) - int(info["zero_points"][0])
        return np.float32(info["scales"][0]) * q.astype(np.float32)


def _f32(v):
    return np.float32(v)


def _hard_swish(s):
    v = s.real(s.x_index)
    inner = (v * _f32(2) + _f32(3)) / _f32(6)
    return np.where(v <= -3, _f32(0), np.where(v >= 3, _f32(1), inner)).astype(np.float32)


def _logistic(s):
    v = s.real(s.y_index)
    return v * (_f32(1) - v)


def _tanh(s):
    v = s.real(s.y_index)
    return (_f32(1) - v) * (_f32(1) + v)


def _leaky(alpha):
    def derivative(s):
        zero = int(s.info(s.x_index)["zero_points"][0])
        return np.where(s.value(s.x_index).astype(np.int32) >= zero, _f32(1), _f32(alpha))
    return derivative


def _activation_layer(kind):
    tf, _, L = _keras()
    if kind == "HARD_SWISH":  # fused into HARD_SWISH by the TFLite converter
        return L.Lambda(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)
    if kind == "LOGISTIC":
        return L.Activation("sigmoid")
    if kind == "TANH":
        return L.Activation("tanh")
    return L.LeakyReLU(0.2)


ACTIVATIONS = {"HARD_SWISH": _hard_swish, "LOGISTIC": _logistic, "TANH": _tanh,
               "LEAKY_RELU": _leaky(0.2)}


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_gradient_in_a_trained_model(kind):
    """Conv -> activation -> Conv 1x1 -> Flatten -> Dense; last-k:3 trains
    all three layers, so the gradient crosses the activation (MobileNetV3's
    last layers: hard swish between convolutions)."""
    _, _, L = _keras()
    shape = (8, 8, 1)
    x, y = models.quadrant_task(shape)

    def body(t):
        t = L.Conv2D(8, 3, padding="same")(t)
        t = _activation_layer(kind)(t)
        t = L.Conv2D(8, 1)(t)  # linear: no unit can die during the test
        return L.Dense(4)(L.Flatten()(t))

    model = models.pretrained_on_mirror(body, shape, x, y)
    trainer, m, ops, losses = _train(model, x, y, {"preset": "last-k:3"})
    assert kind in ops and f"TFLMTRAIN_{kind}_GRAD" in ops
    s = Step(trainer, m, ops, kind)
    q_y = s.value(s.y_index)
    dy = s.grad(s.y_index)
    want = np.where((q_y > -128) & (q_y < 127), dy * ACTIVATIONS[kind](s), _f32(0))
    np.testing.assert_array_equal(s.grad(s.x_index), want.astype(np.float32))
    assert np.count_nonzero(want) > want.size // 4
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


def _routing_model(kind):
    tf, _, L = _keras()
    if kind == "TRANSPOSE":
        return L.Permute((2, 1, 3)), lambda dy: np.transpose(dy, (0, 2, 1, 3))
    # STRIDED_SLICE: every other row from 1, columns reversed.
    return (L.Lambda(lambda t: t[:, 1:7:2, ::-1, :]),
            lambda dy: _scatter(dy, (slice(None), slice(1, 7, 2), slice(None, None, -1))))


def _scatter(dy, index):
    out = np.zeros((1, 8, 6, 8), np.float32)
    out[index] = dy
    return out


@pytest.mark.parametrize("kind", ["TRANSPOSE", "STRIDED_SLICE"])
def test_routing_gradient_in_a_trained_model(kind):
    """Conv -> relu -> TRANSPOSE / STRIDED_SLICE -> Flatten -> Dense
    (flattened, so that the gradient differs cell by cell)."""
    _, _, L = _keras()
    shape = (8, 6, 1)
    x, y = models.quadrant_task(shape)
    layer, route = _routing_model(kind)

    def body(t):
        t = L.Conv2D(8, 3, padding="same", activation="relu")(t)
        return L.Dense(4)(L.Flatten()(layer(t)))

    model = models.pretrained_on_mirror(body, shape, x, y)
    trainer, m, ops, losses = _train(model, x, y, {"preset": "last-k:2"})
    assert kind in ops and f"TFLMTRAIN_{kind}_GRAD" in ops
    s = Step(trainer, m, ops, kind)
    np.testing.assert_array_equal(s.grad(s.x_index), route(s.grad(s.y_index)))
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


def test_expand_dims_gradient_through_conv1d():
    """Conv1D is EXPAND_DIMS -> CONV_2D -> RESHAPE in TFLite: training the
    first of two Conv1Ds sends the gradient through the second one's
    EXPAND_DIMS (whose gradient is RESHAPE's)."""
    _, _, L = _keras()
    shape = (16, 2)
    x, y = models.quadrant_task(shape)

    def body(t):
        t = L.Conv1D(6, 3, padding="same", activation="relu")(t)
        t = L.Conv1D(6, 3, padding="same", activation="relu")(t)
        return L.Dense(4)(L.Flatten()(t))

    # A dynamic batch: with a static one the TFLite converter writes RESHAPE.
    model = models.pretrained_on_mirror(body, shape, x, y, batch_size=None)
    trainer, m, ops, losses = _train(model, x, y, {"preset": "last-k:3"})
    assert "EXPAND_DIMS" in ops and "TFLMTRAIN_RESHAPE_GRAD" in ops
    sg = m.subgraphs[0]
    expands = [op for op, name in zip(sg.operators, ops) if name == "EXPAND_DIMS"]
    s = Step(trainer, m, ops, "EXPAND_DIMS")
    s.x_index, s.y_index = int(expands[1].inputs[0]), int(expands[1].outputs[0])
    dy = s.grad(s.y_index)
    np.testing.assert_array_equal(s.grad(s.x_index), dy.reshape(s.value(s.x_index).shape))
    assert np.any(dy != 0)
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


def _custom_op(model, ops, name):
    """The only operator `name` of the training graph."""
    (op,) = [op for op, n in zip(model.subgraphs[0].operators, ops) if n == name]
    return op


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_squeeze_excite_mul_gradient(gate):
    """Conv -> [GAP -> 1x1 relu -> 1x1 gate] -> MUL features by the gates
    ([1, H, W, C] * [1, 1, 1, C]) -> Flatten -> Dense, every layer trained:
    the features' gradient is y/grad times the gate, the gates' the float32
    sum over H, W (row-major) of y/grad times the features. The
    MobileNetV3 form (hard swish features, hard-sigmoid gates
    relu6(v + 3) / 6) becomes HARD_SWISH, the +3 folded into the conv bias
    and a MUL by the scalar constant 1/6 (a rank-0 operand)."""
    tf, _, L = _keras()
    shape = (8, 8, 1)
    x, y = models.quadrant_task(shape)

    def body(t):
        t = L.Conv2D(8, 3, padding="same", activation="relu" if gate == "sigmoid" else None)(t)
        if gate == "hard_sigmoid":
            t = L.Activation(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)(t)
        gates = L.GlobalAveragePooling2D(keepdims=True)(t)
        gates = L.Conv2D(4, 1, activation="relu")(gates)
        if gate == "sigmoid":
            gates = L.Conv2D(8, 1, activation="sigmoid")(gates)
        else:
            gates = L.ReLU(6.0)(L.Conv2D(8, 1)(gates) + 3.0) * (1.0 / 6.0)
        t = L.Multiply()([t, gates])
        return L.Dense(4)(L.Flatten()(t))

    model = models.pretrained_on_mirror(body, shape, x, y)
    trainer, m, ops, losses = _train(model, x, y, {"preset": "last-k:4"})
    other = "LOGISTIC" if gate == "sigmoid" else "HARD_SWISH"
    for name in ("MUL", other, "TFLMTRAIN_MUL_GRAD", f"TFLMTRAIN_{other}_GRAD"):
        assert name in ops
    (grad,) = [op for op, n in zip(m.subgraphs[0].operators, ops)
               if n == "TFLMTRAIN_MUL_GRAD" and len(op.outputs) == 2]
    _, dy_i, y_i, a_i, b_i = (int(t) for t in grad.inputs)
    da_i, db_i = (int(t) for t in grad.outputs)
    s = Step(trainer, m, ops, "MUL")
    q_y, dy = s.value(y_i), s.value(dy_i)
    # Multiply() has no fused activation: the mask is the int8 range.
    g = np.where((q_y > -128) & (q_y < 127), dy, _f32(0)).astype(np.float32)
    a, b = s.real(a_i), s.real(b_i)
    assert a.shape[1:3] == (8, 8) and b.shape == (1, 1, 1, 8)
    np.testing.assert_array_equal(s.value(da_i), (g * b).astype(np.float32))
    want = np.zeros(8, np.float32)
    for h, w in np.ndindex(8, 8):
        want = want + g[0, h, w] * a[0, h, w]
    np.testing.assert_array_equal(s.value(db_i).reshape(-1), want)
    assert np.any(want != 0)
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


def test_broadcast_add_gradient():
    """Conv -> ADD of a per-channel offset computed from the features
    ([1, H, W, C] + [1, 1, 1, C]) -> Flatten -> Dense, every layer trained:
    the offset's gradient is the float32 sum over H, W (row-major) of the
    masked y/grad."""
    _, _, L = _keras()
    shape = (8, 8, 1)
    x, y = models.quadrant_task(shape)

    def body(t):
        t = L.Conv2D(8, 3, padding="same", activation="relu")(t)
        offset = L.Conv2D(8, 1)(L.GlobalAveragePooling2D(keepdims=True)(t))
        return L.Dense(4)(L.Flatten()(L.Add()([t, offset])))

    model = models.pretrained_on_mirror(body, shape, x, y)
    trainer, m, ops, losses = _train(model, x, y, {"preset": "last-k:3"})
    grad = _custom_op(m, ops, "TFLMTRAIN_ADD_GRAD")
    _, dy_i, y_i = (int(t) for t in grad.inputs)
    q_y, dy = trainer.tensor(y_i), trainer.tensor(dy_i)
    # y is read only as the mask: packed (TFLMTRAIN_PACK_MASK, 1 bit per
    # element, LSB first), the int8 limits applied there.
    assert q_y.dtype == np.uint8 and q_y.size == dy.size // 8
    mask = np.unpackbits(q_y, bitorder="little").reshape(dy.shape).astype(bool)
    g = np.where(mask, dy, _f32(0)).astype(np.float32)
    grads = [trainer.tensor(int(t)) for t in grad.outputs]
    assert sorted(d.shape for d in grads) == [(1, 1, 1, 8), (1, 8, 8, 8)]
    want = np.zeros(8, np.float32)
    for h, w in np.ndindex(8, 8):
        want = want + g[0, h, w]
    for d in grads:
        if d.shape == g.shape:
            np.testing.assert_array_equal(d, g)
        else:
            np.testing.assert_array_equal(d.reshape(-1), want)
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


@pytest.mark.parametrize("preset", ["last-k:2", "last-k:4"])
def test_concatenation_gradient(preset):
    """Conv -> two branches (1x1, 3x3) -> CONCATENATION -> Flatten -> Dense.
    last-k:2 trains the classifier and the 3x3 branch: the gradient op then
    has one output, the second input's slice; last-k:4 trains all."""
    _, _, L = _keras()
    shape = (8, 8, 1)
    x, y = models.quadrant_task(shape)

    def body(t):
        t = L.Conv2D(6, 3, padding="same", activation="relu")(t)
        left = L.Conv2D(3, 1, activation="relu")(t)
        right = L.Conv2D(5, 3, padding="same", activation="relu")(t)
        return L.Dense(4)(L.Flatten()(L.Concatenate()([left, right])))

    model = models.pretrained_on_mirror(body, shape, x, y)
    trainer, m, ops, losses = _train(model, x, y, {"preset": preset})
    assert "CONCATENATION" in ops
    grad = _custom_op(m, ops, "TFLMTRAIN_CONCATENATION_GRAD")
    dy = trainer.tensor(int(grad.inputs[1]))
    offsets = trainer.tensor(int(grad.inputs[2]))
    widths = [trainer.tensor(int(t)).shape[3] for t in grad.outputs]
    assert list(offsets) == ([3] if preset == "last-k:2" else [0, 3])
    assert widths == ([5] if preset == "last-k:2" else [3, 5])
    for t, start, width in zip(grad.outputs, offsets, widths):
        np.testing.assert_array_equal(trainer.tensor(int(t)), dy[..., start:start + width])
    assert np.any(dy != 0)
    later = trainer.fit((x, y), epochs=3, progress=False)
    assert later.epochs[-1]["loss"] < 0.8 * np.mean(losses)


def test_firmware_trains_the_new_ops_like_the_host():
    """Cortex-M4 (QEMU) and the host agree bit for bit on every loss and the
    trained weights of a model whose trained region holds every new
    backward op (their float math has no platform-dependent step)."""
    import shutil  # noqa: PLC0415

    from tflm_train.data import Dataset  # noqa: PLC0415
    from tflm_train.firmware import TOOLS, run_firmware  # noqa: PLC0415
    from tflm_train.training import train  # noqa: PLC0415

    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip("Cortex-M toolchain / QEMU not installed")
    model, x, y = models.every_new_op_model()
    int8_model = models.quantize(model, x[:32])
    training = tflm_train.convert(int8_model, {"preset": "last-k:6", "optimizer": {
        "lr": 0.05, "rounding": "stochastic"}})
    m = tflite.read_model(training)
    ops = {tflite.op_name(m, op) for op in m.subgraphs[0].operators}
    for kind in ("HARD_SWISH", "LOGISTIC", "MUL", "TRANSPOSE", "STRIDED_SLICE", "LEAKY_RELU",
                 "TANH", "CONCATENATION"):
        assert f"TFLMTRAIN_{kind}_GRAD" in ops, kind
    data = Dataset(x[:12], y[:12])
    device = run_firmware(training, data, steps=20, seed=5)
    host = train(tflm_train.Trainer(training), data, steps=20, seed=5, progress=False,
                 log=lambda *_: None)
    assert device["loss_history"] == host["loss_history"]  # bit for bit
    assert device["weights_sha256"] == host["weights_sha256"]


def test_the_new_ops_model_runs_forward_like_tflm():
    """The forward pass of that model, every tensor, against the
    tflite-micro wheel (the backward ops read these tensors)."""
    import tflm_parity  # noqa: PLC0415

    model, x, _ = models.every_new_op_model()
    int8_model = models.quantize(model, x[:32])
    assert tflm_parity.assert_every_tensor_matches_tflm(int8_model, 4, 0) > 4 * 15
