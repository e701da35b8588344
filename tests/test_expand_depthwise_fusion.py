"""TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D: a frozen 1x1 CONV_2D -> DEPTHWISE_CONV_2D
pair run in row bands (tflm_train/converter/fusion.py) gives exactly what
the two builtins give: against the tflite-micro wheel per op, against the
unfused conversion over training steps, and on the firmware."""
import shutil

import numpy as np
import pytest
from flatbuffers import flexbuffers

import models
import tflm_train
from tflm_train import _native
from tflm_train.converter import build, fusion, tflite
from tflm_train.data import Dataset
from tflm_train.firmware import TOOLS, run_firmware
from tflm_train.training import train

from tflm_parity import tflm_interpreter

FUSED = fusion.EXPAND_DEPTHWISE


def _names(model_bytes):
    m = tflite.read_model(model_bytes)
    return [tflite.op_name(m, op) for op in m.subgraphs[0].operators]


def _fuse_all(model_bytes):
    """The inference model with every fusable pair fused (all are frozen)."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    names = [tflite.op_name(m, op) for op in sg.operators]
    pairs = fusion.fusable_pairs(m, names, sg.operators, lambda i: True)
    sg.operators = fusion.fuse(m, sg.operators, pairs)
    return tflite.write_model(m), len(pairs)


# -- op level: random geometries against the wheel's two builtins -------------

def _pair_model(seed):
    """A 1x1 CONV_2D and a DEPTHWISE_CONV_2D with random geometry, activations
    and bias; (int8 .tflite, parameters). The TFLite converter lowers a
    dilated depthwise to SPACE_TO_BATCH_ND, so dilation is set in the
    flatbuffer afterwards (with the output shape it gives)."""
    import tf_keras as keras  # noqa: PLC0415
    L = keras.layers
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 2, 3, 5]))
    stride = int(rng.choice([1, 2, 3]))
    dilation = int(rng.choice([1, 1, 2, 3]))
    padding = str(rng.choice(["same", "valid"]))
    span = (k - 1) * dilation + 1
    h, w = int(rng.integers(span, span + 8)), int(rng.integers(span, span + 8))
    cin, cmid, mult = int(rng.integers(1, 5)), int(rng.integers(1, 7)), int(rng.choice([1, 2, 3]))
    acts = [None, "relu", "relu6"]
    params = dict(k=k, stride=stride, dilation=dilation, padding=padding, h=h, w=w, cin=cin,
                  cmid=cmid, mult=mult)
    x = L.Input((h, w, cin))
    y = L.Conv2D(cmid, 1, use_bias=bool(rng.integers(2)),
                 activation=acts[rng.integers(3)])(x)
    y = L.DepthwiseConv2D(k, strides=stride, padding=padding, depth_multiplier=mult,
                          use_bias=bool(rng.integers(2)), activation=acts[rng.integers(3)])(y)
    model = models.randomize_weights(keras.Model(x, y), seed)
    samples = np.random.default_rng(seed + 1).normal(0, 1, (16, h, w, cin)).astype(np.float32)
    int8 = models.quantize(model, samples)
    if dilation == 1:
        return int8, params
    m = tflite.read_model(int8)
    sg = m.subgraphs[0]
    op = sg.operators[1]
    op.builtinOptions.dilationHFactor = op.builtinOptions.dilationWFactor = dilation
    size = (lambda n: -(-n // stride)) if padding == "same" else \
        (lambda n: -(-(n - span + 1) // stride))
    out = sg.tensors[int(op.outputs[0])]
    out.shape = np.asarray([1, size(h), size(w), cmid * mult], np.int32)
    out.shapeSignature = out.shape.copy()
    return tflite.write_model(m), params


@pytest.mark.parametrize("seed", range(24))
def test_fused_op_equals_the_builtins_in_the_wheel(seed):
    plain, params = _pair_model(seed)
    assert _names(plain) == ["CONV_2D", "DEPTHWISE_CONV_2D"], params
    fused, count = _fuse_all(plain)
    assert count == 1 and _names(fused) == [FUSED]
    ours = _native.Interpreter(fused, 1 << 20)
    ref = tflm_interpreter(plain)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x = rng.integers(-128, 128, size=(1, params["h"], params["w"], params["cin"]),
                         dtype=np.int8)
        ours.set_tensor(ours.inputs[0], x)
        ref.set_input(x, 0)
        ours.invoke()
        ref.invoke()
        np.testing.assert_array_equal(ours.get_tensor(ours.outputs[0]), ref.get_output(0),
                                      err_msg=str(params))


def test_band_is_the_window_not_the_tensor():
    """The fused op's live bytes: input, output and a band of the window's
    rows (plus requantization scratch), not the expanded tensor."""
    for seed in (2, 3, 5):
        plain, p = _pair_model(seed)
        fused, _ = _fuse_all(plain)
        (op,) = _native.Interpreter(fused, 1 << 20).timeline()
        out_h, out_w = (lambda m: [int(d) for d in m.subgraphs[0].tensors[
            m.subgraphs[0].outputs[0]].shape[1:3]])(tflite.read_model(fused))
        band = min((p["k"] - 1) * p["dilation"] + 1, p["h"]) * p["w"] * p["cmid"]
        tensors = p["h"] * p["w"] * p["cin"] + out_h * out_w * p["cmid"] * p["mult"]
        requant = 8 * p["cmid"] * (1 + p["mult"])
        assert tensors + band <= op["live_bytes"] <= tensors + band + requant + 64, (p, op)


# -- malformed models: one-line errors naming the op ---------------------------

def _with_options(model_bytes, **changes):
    m = tflite.read_model(model_bytes)
    op = m.subgraphs[0].operators[0]
    options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, np.uint8)))
    for key, value in changes.items():
        if value is None:
            options.pop(key)
        else:
            options[key] = value
    op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
    return tflite.write_model(m)


@pytest.mark.parametrize("change, message", [
    (dict(depth_multiplier=7), "depth multiplier"),
    (dict(depth_multiplier=0), "depth multiplier"),
    (dict(stride_h=0), "invalid window"),
    (dict(stride_w=-2), "invalid window"),
    (dict(dilation_h=0), "invalid window"),
    (dict(padding=9), "invalid window"),
    (dict(expand_padding=7), "invalid window"),
    (dict(activation=4), "activation"),
    (dict(expand_activation=5), "activation"),
    (dict(expand_padding=None), "expand_padding"),
    (dict(stride_h="x"), "stride_h"),
])
def test_malformed_options_are_errors(change, message):
    fused, _ = _fuse_all(_pair_model(0)[0])
    with pytest.raises(RuntimeError, match=f"{FUSED}.*{message}"):
        _native.Interpreter(_with_options(fused, **change), 1 << 20)


def _with_tensor_shape(model_bytes, slot, shape):
    """Input `slot` of the fused op reshaped to `shape`, its data resized."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    tensor = sg.tensors[int(sg.operators[0].inputs[slot])]
    tensor.shape = np.asarray(shape, np.int32)
    tensor.buffer = tflite.new_buffer(m, np.zeros(shape, tflite.NUMPY_TYPES[tensor.type]))
    return tflite.write_model(m)


@pytest.mark.parametrize("slot, shape, message", [
    (3, [2], "expanded must have 1 elements"),     # the quantization carrier
    (1, [4, 3, 1, 2], "expand_filter must be"),    # not 1x1
    (4, [2, 3, 3, 4], "filter must be"),           # not [1, KH, KW, C]
    (2, [5], "expand_bias must have"),
    (5, [1, 7], "bias must have"),
])
def test_malformed_shapes_are_errors(slot, shape, message):
    fused, _ = _fuse_all(_pair_model(1)[0])
    m = tflite.read_model(fused)
    if int(m.subgraphs[0].operators[0].inputs[slot]) < 0:
        pytest.skip("no tensor in this slot")
    with pytest.raises(RuntimeError, match=f"{FUSED}.*{message}"):
        _native.Interpreter(_with_tensor_shape(fused, slot, shape), 1 << 20)


# -- training: identical to the unfused conversion ----------------------------

SHAPE, CLASSES = models.SHAPES["inverted_residual"]


def _convert(scheme, fuse, monkeypatch):
    monkeypatch.setattr(build, "_FUSE_EXPAND_DEPTHWISE", fuse)
    scheme = dict(scheme, optimizer={"lr": 0.05, "rounding": "stochastic"})
    return tflm_train.convert(models.inverted_residual(), scheme)


def _data(count=10):
    rng = np.random.default_rng(11)
    return Dataset(rng.normal(0, 1, (count,) + SHAPE).astype(np.float32).clip(-3, 3),
                   rng.integers(0, CLASSES, count))


SCHEMES = {
    # Both pairs frozen: both fuse.
    "classifier": ({"bias_update_layers": 2, "weight_update": {"b2_project": 0.5}}, 2),
    # b2's depthwise trains: only b1 fuses, so later op indices shift by one.
    "depthwise": ({"bias_update_layers": 3, "weight_update": {"b2_depthwise": 0.5}}, 1),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_training_equals_the_unfused_conversion(name, monkeypatch):
    scheme, pairs = SCHEMES[name]
    unfused = _convert(scheme, False, monkeypatch)
    fused = _convert(scheme, True, monkeypatch)
    assert _names(fused).count(FUSED) == pairs and FUSED not in _names(unfused)
    info_f, info_u = (tflm_train.converter.read_training_info(m) for m in (fused, unfused))
    assert info_f.num_forward_ops == info_u.num_forward_ops - pairs
    names_f = _names(fused)
    for tf_, tu in zip(info_f.trainables, info_u.trainables, strict=True):
        assert tf_.layer_name == tu.layer_name
        assert names_f[tf_.op_index] == _names(unfused)[tu.op_index]  # the layer's own op

    data = _data()
    host = {}
    for key, model in (("fused", fused), ("unfused", unfused)):
        trainer = tflm_train.Trainer(model)
        result = train(trainer, data, steps=12, seed=5, progress=False, log=lambda *_: None)
        host[key] = {"loss_history": result["loss_history"],
                     "weights_sha256": result["weights_sha256"],
                     "weights": trainer.trainable_weights(),
                     "export": trainer.export_inference_model()}
    assert host["fused"]["loss_history"] == host["unfused"]["loss_history"]
    assert host["fused"]["weights_sha256"] == host["unfused"]["weights_sha256"]
    for k, v in host["unfused"]["weights"].items():
        np.testing.assert_array_equal(host["fused"]["weights"][k], v)
    # Export gives the plain builtins back: the same inference model.
    assert host["fused"]["export"] == host["unfused"]["export"]
    assert FUSED not in _names(host["fused"]["export"])


def test_fusion_saves_the_expanded_tensor(monkeypatch):
    scheme = SCHEMES["classifier"][0]
    before = tflm_train.plan(_convert(scheme, False, monkeypatch))["timeline"]
    after = tflm_train.plan(_convert(scheme, True, monkeypatch))["timeline"]
    k = next(i for i, o in enumerate(before) if o["name"] == "DEPTHWISE_CONV_2D")
    expand, depthwise = before[k - 1], before[k]
    fused = next(o for o in after if o["name"] == FUSED)
    assert expand["name"] == "CONV_2D"
    # b1's expanded tensor is 8x8x24 int8, a stride-1 depthwise reads it.
    # Unfused, the expand op holds its input, the expanded tensor and its
    # requantization scratch; the fused op holds the input, the output (here
    # as large as the expanded tensor), the band of 3 expanded rows and both
    # ops' scratch (8 B per channel each): exactly band + depthwise scratch
    # more, never the expanded tensor.
    assert fused["live_bytes"] - expand["live_bytes"] == 3 * 8 * 24 + 8 * 24
    # The standalone runtime's unfused depthwise runs in place (input + a few
    # output rows): for a stride-1 pair that is less than the fused op; the
    # fusion pays off where the expand op is the peak (MobileNetV2's block_1)
    # and under TFLM, whose depthwise holds input and output.
    assert depthwise["live_bytes"] < fused["live_bytes"]


def test_plan_itemises_each_fused_pair(monkeypatch):
    """`tflm-train plan` lists each fused pair: the expanded tensor the
    unfused expand op writes (its bytes in the unfused plan) against the
    fused op's scratch (band of 3 expanded rows + both ops' requantization
    scratch, 8 B per channel; b2's depthwise has multiplier 2)."""
    scheme = SCHEMES["classifier"][0]
    unfused = _convert(scheme, False, monkeypatch)
    fused = _convert(scheme, True, monkeypatch)
    savings = [s for s in tflm_train.plan(fused)["memory_savings"] if s["name"] == FUSED]
    assert [s["op"] for s in savings] == [k for k, n in enumerate(_names(fused)) if n == FUSED]
    trainer = tflm_train.Trainer(unfused)
    m = tflite.read_model(unfused)
    expand_outputs = [int(op.outputs[0]) for k, op in enumerate(m.subgraphs[0].operators)
                      if _names(unfused)[k + 1:k + 2] == ["DEPTHWISE_CONV_2D"]
                      and _names(unfused)[k] == "CONV_2D"]
    assert [s["was_bytes"] for s in savings] == [trainer.tensor_info(t)["bytes"]
                                                for t in expand_outputs]
    fused_trainer = tflm_train.Trainer(fused)
    for s, t in zip(savings, expand_outputs):
        _, _, width, channels = trainer.tensor_info(t)["shape"]
        fused_op = tflite.read_model(fused).subgraphs[0].operators[s["op"]]
        out_channels = fused_trainer.tensor_info(int(fused_op.outputs[0]))["shape"][-1]
        assert s["now_bytes"] == 3 * width * channels + 8 * channels + 8 * out_channels


_TOOLS_MISSING = [t for t in TOOLS if shutil.which(t) is None]


@pytest.mark.skipif(bool(_TOOLS_MISSING), reason="Cortex-M toolchain / QEMU not installed")
def test_firmware_with_fused_ops_trains_like_the_host(monkeypatch):
    model = _convert(SCHEMES["classifier"][0], True, monkeypatch)
    assert FUSED in _names(model)
    data = _data()
    device = run_firmware(model, data, steps=12, seed=5)
    host = train(tflm_train.Trainer(model), data, steps=12, seed=5, progress=False,
                 log=lambda *_: None)
    assert device["weights_sha256"] == host["weights_sha256"]
    assert device["loss_history"] == host["loss_history"]
