"""Scheme "gradients": "int8": the gradients between backward operators are
int8 with a per-tensor scale computed on the device (docs/format.md "int8
gradients"). References: numpy quantization of the float32-gradient model's
own gradients, numpy sums of the int8 operands, and TensorFlow-independent
numpy transposed convolutions."""
import collections

import numpy as np
import pytest

import models
import tflm_train
from tflm_train.converter import ConversionError, tflite
from tflm_train.converter.scheme import DEFAULT_SEED
from tflm_train.data import Dataset

OPTIMIZER = {"lr": 0.05, "rounding": "nearest"}
# Every layer trains: the stem's output gradient is the sum of two (GRAD_SUM).
RESIDUAL_SCHEME = {"preset": "last-k:4"}


def _convert(source, scheme, gradients):
    return tflm_train.convert(source, dict(scheme, gradients=gradients, optimizer=OPTIMIZER))


def _sample(name, seed=3):
    shape, classes = models.SHAPES[name]
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, shape).astype(np.float32), int(rng.integers(0, classes))


def _quantize(v):
    """int8_grad.h's quantization in float32 numpy: (q, scale)."""
    v = np.asarray(v, np.float32)
    amax = np.float32(np.max(np.abs(v))) if v.size else np.float32(0)
    if amax == 0:
        return np.zeros(v.shape, np.int8), np.float32(0)
    q = v * (np.float32(127) / amax)
    r = np.floor(np.abs(q) + np.float32(0.5))
    return (np.sign(q) * np.minimum(r, 127)).astype(np.int8), amax / np.float32(127)


def _grad_tensors(model):
    """{gradient tensor name: (type, shape)} of a training model, without
    the loss's float32 real_output/grad."""
    sg = tflite.read_model(model).subgraphs[0]
    return {tflite.name_of(t): (t.type, [int(d) for d in t.shape]) for t in sg.tensors
            if "/grad" in tflite.name_of(t) and not tflite.name_of(t).endswith("/scale")
            and not tflite.name_of(t).startswith("tflm_train/real_output")
            and "grad_offsets" not in tflite.name_of(t)}


def _one_step(model, name):
    trainer = tflm_train.Trainer(model, preserve_all_tensors=True)
    trainer.step(*_sample(name))
    return trainer


def _value(trainer, name):
    return trainer.tensor(trainer.tensor_index(name))


@pytest.fixture(scope="module")
def residual():
    source = models.residual()
    return {g: _convert(source, RESIDUAL_SCHEME, g) for g in ("float32", "int8")}


def test_every_gradient_is_int8_with_a_float_scale(residual):
    floats, ints = _grad_tensors(residual["float32"]), _grad_tensors(residual["int8"])
    assert floats.keys() == ints.keys() and len(ints) >= 5
    sg = tflite.read_model(residual["int8"]).subgraphs[0]
    names = {tflite.name_of(t): t for t in sg.tensors}
    for name, (kind, shape) in ints.items():
        assert floats[name] == (tflite.FLOAT32, shape)
        assert kind == tflite.INT8, name
        scale = names[name + "/scale"]
        assert scale.type == tflite.FLOAT32 and [int(d) for d in scale.shape] == [1]
    assert names["tflm_train/real_output/grad"].type == tflite.FLOAT32


def test_the_first_gradient_is_the_float_gradient_quantized(residual):
    """The output layer's x/grad is the first int8 gradient written: its q
    and scale equal numpy's quantization of the float32 model's x/grad after
    the same sample (same weights, same float sums)."""
    floats, ints = _one_step(residual["float32"], "residual"), _one_step(residual["int8"],
                                                                         "residual")
    head_input = [n for n in _grad_tensors(residual["int8"]) if "flatten" in n][0]
    v = _value(floats, head_input)
    q, scale = _quantize(v)
    assert np.count_nonzero(v) > 0
    np.testing.assert_array_equal(_value(ints, head_input), q)
    assert _value(ints, head_input + "/scale")[0] == scale


def test_gradient_sum_and_pass_through_ops_match_numpy_on_their_operands(residual):
    """GRAD_SUM: numpy's float32 sum of q_i * s_i in operand order, then
    quantized. ADD's gradient: its y/grad's q where the mask passes, else 0,
    and the same scale. The MEAN-free AVERAGE_POOL_2D gradient: numpy's
    window shares of the dequantized y/grad, quantized."""
    trainer = _one_step(residual["int8"], "residual")
    sg = tflite.read_model(residual["int8"]).subgraphs[0]
    codes = tflite.read_model(residual["int8"]).operatorCodes
    ops = {}
    for op in sg.operators:
        code = codes[op.opcodeIndex].customCode
        ops.setdefault(code.decode() if isinstance(code, bytes) else code, []).append(op)

    def get(t):
        return trainer.tensor(int(t))

    (grad_sum,) = ops["TFLMTRAIN_GRAD_SUM"]
    n = (len(grad_sum.inputs) - 1) // 2
    operands, scales = grad_sum.inputs[1:1 + n], grad_sum.inputs[1 + n:]
    total = np.zeros(get(operands[0]).shape, np.float32)
    for t, s in zip(operands, scales, strict=True):
        total = total + get(t).astype(np.float32) * get(s)[0]
    q, scale = _quantize(total)
    assert n == 2 and np.count_nonzero(q) > 0
    np.testing.assert_array_equal(get(grad_sum.outputs[0]), q)
    assert get(grad_sum.outputs[1])[0] == scale

    (add_grad,) = ops["TFLMTRAIN_ADD_GRAD"]
    dy, dy_scale = get(add_grad.inputs[1]), get(add_grad.inputs[3])[0]
    for out, out_scale in zip(add_grad.outputs[:2], add_grad.outputs[2:], strict=True):
        dx = get(out)
        assert get(out_scale)[0] == dy_scale
        assert np.all((dx == dy) | (dx == 0)) and np.count_nonzero(dx) > 0

    (pool_grad,) = ops["TFLMTRAIN_AVERAGE_POOL_2D_GRAD"]
    dy = get(pool_grad.inputs[1]).astype(np.float32) * get(pool_grad.inputs[3])[0]
    dy = dy * _mask(get(pool_grad.inputs[2]), dy.shape)
    # 2x2 windows, stride 2 on 8x8 (the model's AveragePooling2D): each input
    # cell gets a quarter of its window's gradient.
    shares = np.repeat(np.repeat(dy / np.float32(4), 2, axis=1), 2, axis=2)
    q, scale = _quantize(shares)
    np.testing.assert_array_equal(get(pool_grad.outputs[0]), q)
    assert get(pool_grad.outputs[1])[0] == scale


def _mask(y, shape):
    """The activation mask a gradient op reads: packed bits (PACK_MASK) or,
    for a layer without activation, the int8 output's open range."""
    if y.dtype == np.uint8:
        return np.unpackbits(y, bitorder="little")[:int(np.prod(shape))].reshape(shape)
    return ((y > -128) & (y < 127)).astype(np.uint8)


def _options(op):
    from flatbuffers import flexbuffers
    return flexbuffers.Loads(bytes(np.asarray(op.customOptions, dtype=np.uint8)))


def _same_padding(size, out, kernel, stride, dilation, padding):
    """TFLite's implicit zero rows before the input (SAME: half the total,
    rounded down; VALID: none)."""
    if padding != 0:
        return 0
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2


def _numpy_input_grad(kind, g, real_w, x_shape, o):
    """float64 dL/dx of a CONV_2D / DEPTHWISE_CONV_2D (filter real_w as
    stored: [O, KH, KW, I] / [1, KH, KW, C*m]) or FULLY_CONNECTED ([O, I])
    from the masked real output gradient g."""
    if kind == "FULLY_CONNECTED":
        return (g.reshape(-1, real_w.shape[0]) @ real_w).reshape(x_shape)
    _, h, w, _ = x_shape
    _, oh, ow, _ = g.shape
    kh, kw = real_w.shape[1:3]
    sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h", 1), o.get("dilation_w", 1)
    ph = _same_padding(h, oh, kh, sh, dh, o["padding"])
    pw = _same_padding(w, ow, kw, sw, dw, o["padding"])
    dx = np.zeros(x_shape)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
                    if not (0 <= iy < h and 0 <= ix < w):
                        continue
                    if kind == "CONV_2D":
                        dx[0, iy, ix] += g[0, oy, ox] @ real_w[:, ky, kx, :]
                    else:  # depthwise: output channel c * m + j reads input channel c
                        m = g.shape[3] // x_shape[3]
                        terms = g[0, oy, ox] * real_w[0, ky, kx]
                        dx[0, iy, ix] += terms.reshape(-1, m).sum(axis=1)
    return dx


LAYER_GRADS = {f"TFLMTRAIN_{k}_GRAD": k for k in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                   "FULLY_CONNECTED")}


@pytest.mark.parametrize("name", ["residual", "mobilenet", "inverted_residual"])
def test_layer_input_gradients_match_numpy(name):
    """Every int8 x/grad a layer gradient writes (3x3 and 1x1 convolutions,
    stride 2, SAME and VALID padding, depthwise with multiplier 1 and 2, a
    fused MEAN gradient, fully connected), with frozen weights (only biases
    train): dequantized, within half a quantization step of numpy's float64
    transposed convolution of the dequantized, masked y/grad with the real
    weights; the scale is numpy's max |dx| / 127."""
    from tflm_train.converter.build import _activation_range

    source = {"mobilenet": models.mobilenet_like}.get(name, getattr(models, name, None))()
    model = _convert(source, {"preset": "bias-only"}, "int8")
    trainer = _one_step(model, name)
    flat = tflite.read_model(model)
    sg = flat.subgraphs[0]
    checked = collections.Counter()
    for op in sg.operators:
        code = flat.operatorCodes[op.opcodeIndex].customCode
        kind = LAYER_GRADS.get(code.decode() if isinstance(code, bytes) else code)
        if kind is None or len(op.outputs) != 2:
            continue
        o = _options(op)
        filt = sg.tensors[int(op.inputs[5])]
        scales = np.asarray(filt.quantization.scale, np.float64)
        axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0
        shape = [1] * len(filt.shape)
        shape[axis] = -1
        real_w = tflite.tensor_data(flat, filt).astype(np.float64) * scales.reshape(shape)
        dy = trainer.tensor(int(op.inputs[2])).astype(np.float64)
        if len(op.inputs) > 14:  # int8 y/grad and its scale (the output layer's is float32)
            dy = dy * np.float64(trainer.tensor(int(op.inputs[14]))[0])
        y_tensor = sg.tensors[int(op.inputs[3])]
        y = trainer.tensor(int(op.inputs[3]))
        if o.get("dy_broadcast_h", 0):  # a fused spatial MEAN: dy [N, C] over H x W
            cells = o["dy_broadcast_h"] * o["dy_broadcast_w"]
            dy = np.broadcast_to(dy.reshape(1, 1, 1, -1) / cells,
                                 (1, o["dy_broadcast_h"], o["dy_broadcast_w"], dy.size))
        if y.dtype == np.uint8:  # packed mask bits
            mask = np.unpackbits(y, bitorder="little")[:dy.size].reshape(dy.shape)
        elif y.dtype == np.float32:  # the output layer's real output, no activation
            assert o["activation"] == 0
            mask = np.ones(dy.shape, bool)
        else:
            lo, hi = _activation_range(o["activation"], y_tensor)
            mask = (y > lo) & (y < hi)
        x_shape = tuple(int(d) for d in sg.tensors[int(op.outputs[0])].shape)
        dx = _numpy_input_grad(kind, dy * mask, real_w, x_shape, o)
        q, scale = trainer.tensor(int(op.outputs[0])), trainer.tensor(int(op.outputs[1]))[0]
        assert np.count_nonzero(q) > 0
        assert scale == pytest.approx(np.abs(dx).max() / 127, rel=1e-5)
        assert np.max(np.abs(q * np.float64(scale) - dx)) <= 0.5 * scale * 1.001
        kernel = tuple(int(d) for d in filt.shape[1:3]) if kind != "FULLY_CONNECTED" else ()
        checked[(kind, kernel, o.get("stride_h", 1))] += 1
    assert len(checked) >= 2, checked


def test_training_tracks_float32_gradients_and_runs_in_less_ram():
    """Same samples, same steps: the losses of int8 and float32 gradients
    stay close, and the planned peak of the int8 model is smaller."""
    source = models.inverted_residual()
    shape, classes = models.SHAPES["inverted_residual"]
    rng = np.random.default_rng(2)
    data = Dataset(rng.normal(0, 1, (24,) + shape).astype(np.float32),
                   rng.integers(0, classes, 24))
    losses, peaks = {}, {}
    for g in ("float32", "int8"):
        model = _convert(source, {"preset": "last-k:6"}, g)
        trainer = tflm_train.Trainer(model)
        losses[g] = np.array([trainer.step(x, y) for x, y in zip(data.x, data.y, strict=True)])
        peaks[g] = tflm_train.plan(model)["peak_arena_bytes"]
    assert losses["int8"][0] == losses["float32"][0]  # same forward before any update
    assert np.max(np.abs(losses["int8"] - losses["float32"])) < 0.05 * np.max(losses["float32"])
    assert peaks["int8"] < 0.7 * peaks["float32"]


def test_plan_lists_each_int8_gradient(residual):
    report = tflm_train.plan(residual["int8"])
    entries = [s for s in report["memory_savings"] if s["technique"] == "int8_gradients"]
    sizes = [int(np.prod(shape)) for _, shape in _grad_tensors(residual["int8"]).values()]
    assert len(entries) == len(sizes)
    assert sorted(e["was_bytes"] for e in entries) == sorted(4 * n for n in sizes)
    assert sorted(e["now_bytes"] for e in entries) == sorted(n + 4 for n in sizes)
    assert all(e["tensor"].endswith(("/grad", "/grad/0", "/grad/1")) for e in entries)
    assert not any(s["technique"] == "int8_gradients"
                   for s in tflm_train.plan(residual["float32"])["memory_savings"])


def test_an_operator_without_an_int8_gradient_is_refused_by_name():
    """The cnn's MAX_POOL_2D has no int8 gradient: training conv_a needs one."""
    with pytest.raises(ConversionError, match=r"gradients.*int8.*MAX_POOL_2D at operator \d+"):
        _convert(models.plain_cnn(), {"preset": "last-k:3"}, "int8")
    _convert(models.plain_cnn(), {"preset": "last-k:3"}, "float32")


def test_gradients_field_is_validated():
    with pytest.raises(ConversionError, match=r"field 'gradients' must be one of float32, int8"):
        _convert(models.plain_cnn(), {"preset": "classifier"}, "int4")


def test_a_missing_scale_is_a_one_line_error(residual):
    """A layer gradient whose int8 y/grad lost its scale input: the runtime
    refuses the model naming the op and the slot (no crash, no read of a
    missing tensor)."""
    from tflm_train.errors import TflmTrainError

    model = tflite.read_model(residual["int8"])
    sg = model.subgraphs[0]
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex].customCode
        if code in (b"TFLMTRAIN_CONV_2D_GRAD", "TFLMTRAIN_CONV_2D_GRAD"):
            op.inputs = op.inputs[:14]
            break
    with pytest.raises(TflmTrainError) as e:
        tflm_train.Trainer(tflite.write_model(model))
    message = str(e.value)
    assert "\n" not in message
    assert "TFLMTRAIN_CONV_2D_GRAD: y/grad is int8 but its scale (input 14) is missing" in message


def test_example_int8_gradients_learns_like_float32(tmp_path):
    """examples/int8_gradients.py --quick: the digits CNN with the sparse
    scheme adapts to the shifted domain with int8 gradients about as well
    as with float32 ones, in less planned RAM; the section it writes holds
    both tables."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import int8_gradients  # noqa: PLC0415

    accuracy = int8_gradients.accuracy_runs([0], quick=True, log=lambda *_: None)
    (cell,) = accuracy.values()
    f, i = cell["float32"][0], cell["int8"][0]
    assert f["accuracy"] > 0.6 and abs(i["accuracy"] - f["accuracy"]) < 0.05
    assert i["peak_arena_bytes"] < f["peak_arena_bytes"]
    assert i["int8_gradient_tensors"] > 0 == f["int8_gradient_tensors"]
    results = tmp_path / "results.md"
    int8_gradients.write_section(results, int8_gradients.section(accuracy, {}, [0], {}))
    text = results.read_text()
    assert text.count(int8_gradients.HEADING) == 1 and "| digits / sparse |" in text


# ---- "gradient_rounding": "stochastic" ----------------------------------------

QUANTIZING_GRAD_OPS = ("TFLMTRAIN_GRAD_SUM", "TFLMTRAIN_AVERAGE_POOL_2D_GRAD",
                       "TFLMTRAIN_CONV_2D_GRAD", "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD",
                       "TFLMTRAIN_FULLY_CONNECTED_GRAD")


def test_gradient_rounding_field_is_validated():
    from tflm_train.converter import Scheme

    with pytest.raises(ConversionError,
                       match=r"field 'gradient_rounding' must be one of nearest, stochastic, "
                             r"got 'up'"):
        Scheme.from_dict({"preset": "classifier", "gradients": "int8",
                          "gradient_rounding": "up"})
    for gradients in ({}, {"gradients": "float32"}):
        with pytest.raises(ConversionError) as e:
            Scheme.from_dict({"preset": "classifier", "gradient_rounding": "stochastic",
                              **gradients})
        assert str(e.value) == ("scheme: field 'gradient_rounding' 'stochastic' needs "
                                "\"gradients\": \"int8\", got 'float32'")
    # Written only when not the default; read back the same.
    nearest = Scheme.from_dict({"preset": "classifier", "gradients": "int8",
                                "gradient_rounding": "nearest"})
    assert "gradient_rounding" not in nearest.to_dict()
    stochastic = Scheme.from_dict({"preset": "classifier", "gradients": "int8",
                                   "gradient_rounding": "stochastic"})
    assert stochastic.to_dict()["gradient_rounding"] == "stochastic"
    assert Scheme.from_dict(stochastic.to_dict()) == stochastic


def _ops_by_name(model):
    flat = tflite.read_model(model)
    ops = collections.defaultdict(list)
    for op in flat.subgraphs[0].operators:
        code = flat.operatorCodes[op.opcodeIndex].customCode
        ops[code.decode() if isinstance(code, bytes) else code].append(op)
    return flat, ops


@pytest.fixture(scope="module")
def residual_sr():
    """The residual CNN, every layer trained (GRAD_SUM, ADD, AVERAGE_POOL_2D,
    layer gradients), optimizer rounding nearest: the rng exists only for
    the int8 gradients."""
    source = models.residual()
    return {r: tflm_train.convert(source, dict(RESIDUAL_SCHEME, gradients="int8",
                                               gradient_rounding=r, optimizer=OPTIMIZER))
            for r in ("nearest", "stochastic")}


def test_stochastic_rounding_is_wired_into_every_quantizing_op(residual_sr):
    """Each op that quantizes an int8 gradient has grad_rounding 1 and reads
    the model's rng; pass-through ops (ADD: same scale, no rounding) do not;
    the nearest model has neither (and no rng: its optimizer rounds to
    nearest)."""
    flat, ops = _ops_by_name(residual_sr["stochastic"])
    sg = flat.subgraphs[0]
    rng = [i for i, t in enumerate(sg.tensors) if tflite.name_of(t) == "tflm_train/rng"]
    assert len(rng) == 1 and sg.tensors[rng[0]].isVariable
    rounded = 0
    for name in QUANTIZING_GRAD_OPS:
        for op in ops.get(name, []):
            int8_out = any(sg.tensors[int(t)].type == tflite.INT8 for t in op.outputs)
            assert _options(op).get("grad_rounding", 0) == int(int8_out), name
            if int8_out:
                slot = 8 if name.endswith(("CONV_2D_GRAD", "CONNECTED_GRAD")) else -1
                assert int(op.inputs[slot]) == rng[0], name
                rounded += 1
    assert rounded >= 5 and ops["TFLMTRAIN_GRAD_SUM"] and ops["TFLMTRAIN_AVERAGE_POOL_2D_GRAD"]
    for op in ops["TFLMTRAIN_ADD_GRAD"]:
        assert "grad_rounding" not in _options(op) and rng[0] not in op.inputs
    flat, ops = _ops_by_name(residual_sr["nearest"])
    assert not any(tflite.name_of(t) == "tflm_train/rng" for t in flat.subgraphs[0].tensors)
    assert not any("grad_rounding" in _options(op) for code, op_list in ops.items()
                   if code is not None for op in op_list)


def test_stochastic_gradients_round_to_a_neighbour_and_change_training(residual_sr):
    """The first int8 gradient (the output layer's x/grad) is, element by
    element, the floor or the ceiling of the float32 gradient over its scale
    (nearest: the nearest of the two), not always the nearest; training from
    it reaches other weights than nearest rounding, and the rng state moves."""
    source = models.residual()
    float_model = _convert(source, RESIDUAL_SCHEME, "float32")
    v = _value(_one_step(float_model, "residual"), _first_int8_grad(residual_sr["nearest"]))
    trainer = _one_step(residual_sr["stochastic"], "residual")
    name = _first_int8_grad(residual_sr["stochastic"])
    q = _value(trainer, name).astype(np.float64)
    scale = _value(trainer, name + "/scale")[0]
    exact = v.astype(np.float32) * (np.float32(127) / np.float32(np.max(np.abs(v))))
    assert scale == np.float32(np.max(np.abs(v))) / np.float32(127)
    assert np.all((q == np.floor(exact)) | (q == np.floor(exact) + 1))
    assert np.any(q != _quantize(v)[0])

    shape, classes = models.SHAPES["residual"]
    rng = np.random.default_rng(7)
    data = Dataset(rng.normal(0, 1, (6,) + shape).astype(np.float32),
                   rng.integers(0, classes, 6))
    weights, states = {}, {}
    for r, model in residual_sr.items():
        t = tflm_train.Trainer(model)
        for x, y in zip(data.x, data.y, strict=True):
            t.step(x, y)
        weights[r] = t.weights_sha256()
        if r == "stochastic":
            state = t.state_tensor(t.tensor_index("tflm_train/rng"))
            states[r] = int(np.asarray(state).view(np.uint32)[0])
    assert weights["stochastic"] != weights["nearest"]
    assert states["stochastic"] != DEFAULT_SEED


def _first_int8_grad(model):
    return [n for n in _grad_tensors(model) if "flatten" in n][0]
