"""The backward-pass memory optimisations of the converter (build.py):
1-bit packed activation masks (TFLMTRAIN_PACK_MASK) and the spatial MEAN's
gradient fused into the convolution before it (dy_broadcast_h / _w).

Both must train bit for bit like the unoptimised graph: the reference is the
same model converted with the two optimisations switched off (build's
private _PACK_MASKS / _FUSE_MEAN_GRADS), i.e. the int8 y read by every
gradient op and an explicit TFLMTRAIN_MEAN_GRAD, whose numerics
tests/test_grad_kernels.py checks against TensorFlow autodiff. The packing
itself is checked against numpy.
"""
import copy
import shutil

import numpy as np
import pytest

import models
import tflm_train
from tflm_train import _native
from tflm_train._native import testing as K
from tflm_train.converter import build, read_training_info, tflite
from tflm_train.data import Dataset
from tflm_train.firmware import TOOLS, run_firmware
from tflm_train.training import train

SHAPE, CLASSES = (8, 8, 3), 5
ARENA = 1 << 20
STEPS, SEED = 12, 3
# Weights of a layer whose y another layer reads as its x (so that y must
# stay int8), biases everywhere else; momentum and stochastic rounding.
SCHEME = {"bias_update_layers": 6, "weight_update": {"res_a": 0.5, "head_conv": 0.5},
          "optimizer": {"lr": 0.05, "rounding": "stochastic", "momentum": 0.5}}


def _body(L, x):
    """ReLU / ReLU6 convolutions, a residual ADD (with ReLU), a depthwise
    ReLU6 conv, a ReLU6 1x1 conv -> spatial MEAN -> FC head."""
    stem = L.Conv2D(6, 3, padding="same", activation="relu", name="stem")(x)
    y = L.Conv2D(6, 3, padding="same", name="res_a")(stem)
    y = L.ReLU(6.0, name="res_a_relu")(y)
    y = L.Conv2D(6, 1, name="res_b")(y)
    y = L.Add(name="add")([stem, y])
    y = L.ReLU(name="add_relu")(y)
    y = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(y)
    y = L.ReLU(6.0, name="dw_relu")(y)
    y = L.Conv2D(16, 1, name="head_conv")(y)
    y = L.ReLU(6.0, name="head_relu")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return L.Dense(CLASSES, name="classifier")(y)


@pytest.fixture(scope="module")
def int8_model():
    keras, L = models._layers()
    inputs = L.Input(SHAPE, name="input")
    model = models.randomize_weights(keras.Model(inputs, _body(L, inputs)), seed=4)
    samples = np.random.default_rng(4).normal(0, 1, (32,) + SHAPE).astype(np.float32)
    return models.quantize(model, samples)


def _convert(int8, optimised, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(build, "_PACK_MASKS", optimised)
        m.setattr(build, "_FUSE_MEAN_GRADS", optimised)
        return tflm_train.convert(int8, SCHEME)


@pytest.fixture(scope="module")
def converted(int8_model):
    with pytest.MonkeyPatch.context() as m:
        return {flag: _convert(int8_model, flag, m) for flag in (False, True)}


def _data(count=STEPS):
    rng = np.random.default_rng(9)
    return Dataset(rng.normal(0, 1, (count,) + SHAPE).astype(np.float32),
                   rng.integers(0, CLASSES, count))


def _op_names(model_bytes):
    m = tflite.read_model(model_bytes)
    return [tflite.op_name(m, op) for op in m.subgraphs[0].operators]


def test_optimised_graph_trains_bit_identically(converted):
    names = {flag: _op_names(model) for flag, model in converted.items()}
    assert "TFLMTRAIN_PACK_MASK" not in names[False]
    assert names[False].count("TFLMTRAIN_MEAN_GRAD") == 1
    # Masks of stem (ReLU, read by ADD and res_a's weight gradient: stays
    # int8), res_a's y (read by res_b's bias-only gradient: packed), ...
    assert names[True].count("TFLMTRAIN_PACK_MASK") >= 4
    assert "TFLMTRAIN_MEAN_GRAD" not in names[True]

    data = _data()
    trainers = {flag: tflm_train.Trainer(model) for flag, model in converted.items()}
    results = {flag: train(t, data, steps=STEPS, seed=SEED, progress=False,
                           log=lambda *_: None) for flag, t in trainers.items()}
    assert results[True]["loss_history"] == results[False]["loss_history"]
    assert results[True]["weights_sha256"] == results[False]["weights_sha256"]
    before = trainers[False].trainable_weights()
    after = trainers[True].trainable_weights()
    assert before.keys() == after.keys() and len(before) >= 8
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # Training moved the weights (the comparison is not of untouched tensors).
    initial = tflm_train.Trainer(converted[True]).trainable_weights()
    assert any(not np.array_equal(initial[n], after[n]) for n in after)

    plans = {flag: tflm_train.plan(model) for flag, model in converted.items()}
    assert plans[True]["peak_arena_bytes"] < plans[False]["peak_arena_bytes"]


def test_no_operator_reads_a_packed_int8_output_after_its_packing(converted):
    """Each PACK_MASK comes after every reader of y's values (a y that a
    weight gradient reads as its x, like stem's for res_a, is packed only
    after that gradient), and its bits are read by gradient ops only."""
    m = tflite.read_model(converted[True])
    sg = m.subgraphs[0]
    names = [tflite.op_name(m, op) for op in sg.operators]
    stem_y = int(sg.operators[1].outputs[0])  # operator 0 is INIT_VARIABLES
    res_a_grad = next(k for k, op in enumerate(sg.operators)
                      if names[k] == "TFLMTRAIN_CONV_2D_GRAD" and int(op.inputs[4]) == stem_y)
    packs = 0
    for k, op in enumerate(sg.operators):
        if names[k] != "TFLMTRAIN_PACK_MASK":
            continue
        packs += 1
        y, bits = int(op.inputs[1]), int(op.outputs[0])
        assert all(y not in [int(t) for t in later.inputs] for later in sg.operators[k + 1:])
        readers = [names[j] for j, later in enumerate(sg.operators)
                   if bits in [int(t) for t in later.inputs]]
        assert len(readers) == 1 and readers[0].endswith("_GRAD"), readers
        if y == stem_y:
            assert k > res_a_grad
    assert packs == names.count("TFLMTRAIN_PACK_MASK") >= 4


def test_masks_are_packed_inside_the_forward_pass(converted):
    """A y no backward op reads for its values is packed right after its last
    forward reader, so its int8 buffer is free for the rest of the forward
    pass; the forward range counts those PACK_MASK ops, every trainable's
    op_index still names its layer's op, and export drops the packing (the
    inference model equals the unoptimised graph's export byte for byte)."""
    m = tflite.read_model(converted[True])
    sg = m.subgraphs[0]
    info = read_training_info(converted[True])
    forward = range(info.first_forward_op, info.first_forward_op + info.num_forward_ops)
    names = [tflite.op_name(m, op) for op in sg.operators]
    inside = [k for k in forward if names[k] == "TFLMTRAIN_PACK_MASK"]
    assert inside and names[forward[-1] + 1] == "TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT"
    for k in inside:  # right after the forward op that last reads y
        y = int(sg.operators[k].inputs[1])
        last_reader = max(j for j in forward if y in [int(t) for t in sg.operators[j].inputs]
                          and j != k)
        assert all(names[j] == "TFLMTRAIN_PACK_MASK" for j in range(last_reader + 1, k))
    for t in info.trainables:
        assert t.variable in [int(v) for v in sg.operators[t.op_index].inputs], t.layer_name
    exported = {flag: tflm_train.export_inference_model(model)
                for flag, model in converted.items()}
    assert "TFLMTRAIN_PACK_MASK" not in _op_names(exported[True])
    assert exported[True] == exported[False]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
@pytest.mark.parametrize("act", [(-128, 127), (-5, 127), (-20, 40)])
def test_pack_mask_against_numpy(n, act):
    rng = np.random.default_rng(n)
    y = rng.integers(-128, 128, n).astype(np.int8)
    y[rng.integers(0, n, max(1, n // 4))] = act[0]  # saturated cells
    mask = (y > act[0]) & (y < act[1])
    want = np.packbits(mask, bitorder="little")
    got = K.pack_mask(y, act[0], act[1])
    assert got.dtype == np.uint8 and got.shape == ((n + 7) // 8,)
    np.testing.assert_array_equal(got, want)
    # A gradient read through the packed bits equals the one read through y.
    dy = rng.normal(0, 1, n).astype(np.float32)
    np.testing.assert_array_equal(K.add_grad(dy, y, act[0], act[1], mask_bits=got),
                                  np.where(mask, dy, 0).astype(np.float32))


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                    reason="Cortex-M toolchain / QEMU not installed")
def test_firmware_runs_packed_masks_and_fused_mean_like_the_host(converted):
    model, data = converted[True], _data()
    device = run_firmware(model, data, steps=STEPS, seed=SEED)
    host = train(tflm_train.Trainer(model), data, steps=STEPS, seed=SEED, progress=False,
                 log=lambda *_: None)
    assert device["loss_history"] == host["loss_history"]
    assert device["weights_sha256"] == host["weights_sha256"]
    assert device["peak_arena_bytes"] == tflm_train.plan(model)["peak_arena_bytes"]


def _with_other_mask(model_bytes, reader):
    """The model with the first op named `reader` that reads a packed mask
    reading instead another PACK_MASK's output of a different size (written
    before it): a malformed mask size."""
    m = tflite.read_model(model_bytes)
    sg = m.subgraphs[0]
    written = []  # (bytes, tensor) of the packs so far
    for op in sg.operators:
        name = tflite.op_name(m, op)
        if name == "TFLMTRAIN_PACK_MASK":
            out = int(op.outputs[0])
            written.append((int(sg.tensors[out].shape[0]), out))
            continue
        if name != reader:
            continue
        for slot, t in enumerate(op.inputs):
            if sg.tensors[int(t)].type != tflite.UINT8:
                continue
            size = int(sg.tensors[int(t)].shape[0])
            other = next((o for n, o in written if n != size), None)
            if other is not None:
                op.inputs[slot] = other
                return tflite.write_model(m)
    raise AssertionError(f"no {reader} reads a packed mask after a differently sized one")


@pytest.mark.parametrize("reader", ["TFLMTRAIN_CONV_2D_GRAD", "TFLMTRAIN_ADD_GRAD",
                                    "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD"])
def test_malformed_mask_size_is_an_error(converted, reader):
    bad = _with_other_mask(converted[True], reader)
    with pytest.raises(RuntimeError,
                       match=rf"\({reader}\): {reader}: packed mask .* bytes, expected"):
        _native.Interpreter(bad, ARENA)


def test_malformed_pack_mask_output_is_an_error(converted):
    m = tflite.read_model(converted[True])
    sg = m.subgraphs[0]
    pack = next(op for op in sg.operators if tflite.op_name(m, op) == "TFLMTRAIN_PACK_MASK")
    out = sg.tensors[int(pack.outputs[0])]
    out.shape = np.asarray([int(out.shape[0]) + 1], np.int32)
    with pytest.raises(RuntimeError, match=r"\(TFLMTRAIN_PACK_MASK\): TFLMTRAIN_PACK_MASK: mask"):
        _native.Interpreter(tflite.write_model(m), ARENA)
    out.type = tflite.INT8
    out.shape = np.asarray([int(out.shape[0]) - 1], np.int32)
    with pytest.raises(RuntimeError, match=r"\(TFLMTRAIN_PACK_MASK\): TFLMTRAIN_PACK_MASK: mask"):
        _native.Interpreter(tflite.write_model(m), ARENA)


def test_masks_after_fused_expand_depthwise_ops():
    """The three passes together (fused frozen expand -> depthwise pairs
    shorten the forward ops; PACK_MASK goes after the fused forward): the
    model converts, every mask is written before its gradient reads it, and
    training equals the graph without masks and fused MEAN gradient. (The
    forward end was once taken from the unfused op count: a gradient read a
    mask not yet written.)"""
    int8 = models.inverted_residual()
    scheme = {"bias_update_layers": 3, "optimizer": {"momentum": 0.9}}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(build, "_PACK_MASKS", False)
        m.setattr(build, "_FUSE_MEAN_GRADS", False)
        plain = tflm_train.convert(int8, scheme)
    packed = tflm_train.convert(int8, scheme)
    names = _op_names(packed)
    assert "TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D" in names
    assert "TFLMTRAIN_PACK_MASK" in names
    shape = tuple(int(d) for d in tflite.read_model(int8).subgraphs[0].tensors[
        int(tflite.read_model(int8).subgraphs[0].inputs[0])].shape[1:])
    rng = np.random.default_rng(4)
    classes = int(tflite.read_model(int8).subgraphs[0].tensors[
        int(tflite.read_model(int8).subgraphs[0].outputs[0])].shape[-1])
    data = Dataset(rng.normal(0, 1, (8,) + shape).astype(np.float32),
                   rng.integers(0, classes, 8))
    runs = [train(tflm_train.Trainer(t), data, steps=8, seed=1, progress=False,
                  log=lambda *_: None) for t in (plain, packed)]
    assert runs[0]["loss_history"] == runs[1]["loss_history"]
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]


def test_plan_itemises_the_masks_and_the_fused_mean(converted):
    """`tflm-train plan` lists each packed mask (the int8 y it replaces, its
    bits) and the fused MEAN gradient (the [N, H, W, C] float gradient the
    unoptimised graph's TFLMTRAIN_MEAN_GRAD writes, now absent)."""
    savings = tflm_train.plan(converted[True])["memory_savings"]
    m = tflite.read_model(converted[True])
    sg = m.subgraphs[0]
    names = _op_names(converted[True])
    masks = [s for s in savings if s["name"] == "TFLMTRAIN_PACK_MASK"]
    assert [s["op"] for s in masks] == [k for k, n in enumerate(names)
                                       if n == "TFLMTRAIN_PACK_MASK"]
    for s in masks:
        y = int(sg.operators[s["op"]].inputs[1])
        elements = int(np.prod(sg.tensors[y].shape))
        assert (s["was_bytes"], s["now_bytes"]) == (elements, -(-elements // 8))
    (mean,) = [s for s in savings if "MEAN" in s["what"]]
    assert names[mean["op"]] == "TFLMTRAIN_CONV_2D_GRAD" and mean["now_bytes"] == 0
    plain = tflite.read_model(converted[False])
    (mean_grad,) = [op for op in plain.subgraphs[0].operators
                    if tflite.op_name(plain, op) == "TFLMTRAIN_MEAN_GRAD"]
    dy = plain.subgraphs[0].tensors[int(mean_grad.outputs[0])]
    assert mean["was_bytes"] == 4 * int(np.prod(dy.shape))
