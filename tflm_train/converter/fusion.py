"""Band execution of frozen expand -> depthwise pairs (docs/format.md,
TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D).

A 1x1 CONV_2D (stride 1, dilation 1) whose output only a DEPTHWISE_CONV_2D
reads becomes one operator that computes the expanded tensor a few rows at
a time, so that tensor (MobileNetV2's largest) never exists whole. Only
frozen pairs fuse: no gradient op reads either op's tensors. The expanded
tensor stays in the model as a one-element int8 constant carrying its
quantization; export turns the operator back into the two builtins.
"""
import collections

import numpy as np
from flatbuffers import flexbuffers

from . import tflite
from .errors import ConversionError

EXPAND_DEPTHWISE = "TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D"


def fusable_pairs(model, names, operators, frozen):
    """[(expand, depthwise)] operator indices into `operators` (named
    `names`) that may fuse; `frozen(i)` tells whether operator i gets no
    gradient op."""
    sg = model.subgraphs[0]
    readers = collections.Counter(int(t) for op in operators for t in op.inputs)
    made_by = {int(op.outputs[0]): i for i, op in enumerate(operators)}
    outputs = {int(t) for t in sg.outputs}
    pairs = []
    for d, op in enumerate(operators):
        if names[d] != "DEPTHWISE_CONV_2D":
            continue
        expanded = int(op.inputs[0])
        e = made_by.get(expanded)
        if e is None or names[e] != "CONV_2D":
            continue
        expand = operators[e]
        o = expand.builtinOptions
        filter_shape = [int(d) for d in sg.tensors[int(expand.inputs[1])].shape]
        if (filter_shape[1:3] != [1, 1] or (o.strideH, o.strideW) != (1, 1)
                or (o.dilationHFactor, o.dilationWFactor) != (1, 1)
                or len(expand.outputs) != 1 or readers[expanded] != 1
                or expanded in outputs or not (frozen(e) and frozen(d))):
            continue
        pairs.append((e, d))
    return pairs


def fuse(model, operators, pairs):
    """`operators` with each pair's depthwise replaced by the fused operator
    and its expand dropped; the expanded tensors become their quantization
    carriers."""
    sg = model.subgraphs[0]
    fused = {d: e for e, d in pairs}
    dropped = set(fused.values())
    opcode = _opcode(model, EXPAND_DEPTHWISE)
    buffer_users = collections.Counter(t.buffer for t in sg.tensors)
    result = []
    for i, op in enumerate(operators):
        if i in dropped:
            continue
        if i not in fused:
            result.append(op)
            continue
        expand = operators[fused[i]]
        e, d = expand.builtinOptions, op.builtinOptions
        expanded = int(expand.outputs[0])
        _make_carrier(model, sg.tensors[expanded], buffer_users)
        options = {"expand_padding": e.padding, "expand_activation": e.fusedActivationFunction,
                   "padding": d.padding, "stride_h": d.strideH, "stride_w": d.strideW,
                   "dilation_h": d.dilationHFactor, "dilation_w": d.dilationWFactor,
                   "depth_multiplier": d.depthMultiplier,
                   "activation": d.fusedActivationFunction}
        s = tflite.schema()
        fused_op = s.OperatorT()
        fused_op.opcodeIndex = opcode
        fused_op.inputs = np.asarray([expand.inputs[0], expand.inputs[1], _bias(expand),
                                      expanded, op.inputs[1], _bias(op)], dtype=np.int32)
        fused_op.outputs = np.asarray(op.outputs, dtype=np.int32)
        fused_op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)),
                                               dtype=np.uint8)
        fused_op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
        result.append(fused_op)
    return result


def unfuse(model, operators):
    """`operators` with each fused operator replaced by its 1x1 CONV_2D and
    DEPTHWISE_CONV_2D; the expanded tensors get their shape back."""
    s = tflite.schema()
    sg = model.subgraphs[0]
    result = []
    for op in operators:
        if tflite.op_name(model, op) != EXPAND_DEPTHWISE:
            result.append(op)
            continue
        o = flexbuffers.Loads(bytes(np.asarray(op.customOptions, dtype=np.uint8)))
        x, expand_filter, expand_bias, expanded, dw_filter, dw_bias = (int(t) for t in op.inputs)
        _restore_expanded(model, sg.tensors[expanded], sg.tensors[x],
                          int(sg.tensors[expand_filter].shape[0]))
        conv = s.Conv2DOptionsT()
        conv.padding, conv.fusedActivationFunction = o["expand_padding"], o["expand_activation"]
        conv.strideH = conv.strideW = conv.dilationHFactor = conv.dilationWFactor = 1
        dw = s.DepthwiseConv2DOptionsT()
        dw.padding, dw.strideH, dw.strideW = o["padding"], o["stride_h"], o["stride_w"]
        dw.dilationHFactor, dw.dilationWFactor = o["dilation_h"], o["dilation_w"]
        dw.depthMultiplier, dw.fusedActivationFunction = o["depth_multiplier"], o["activation"]
        result.append(_builtin(model, "CONV_2D", s.BuiltinOptions.Conv2DOptions, conv,
                               [x, expand_filter] + ([expand_bias] if expand_bias >= 0 else []),
                               [expanded]))
        result.append(_builtin(model, "DEPTHWISE_CONV_2D",
                               s.BuiltinOptions.DepthwiseConv2DOptions, dw,
                               [expanded, dw_filter] + ([dw_bias] if dw_bias >= 0 else []),
                               [int(t) for t in op.outputs]))
    return result


def _bias(op):
    return int(op.inputs[2]) if len(op.inputs) > 2 else -1


def _make_carrier(model, tensor, buffer_users):
    """The expanded tensor as a one-element int8 constant holding its zero
    point (the value is not read: only the quantization is). Its own empty
    buffer gets the byte, so export can empty it again."""
    zero_point = np.int8(tensor.quantization.zeroPoint[0])
    if tensor.buffer == 0 or buffer_users[tensor.buffer] > 1:
        tensor.buffer = tflite.new_buffer(model, np.array([zero_point]))
    else:
        tflite.set_buffer_data(model.buffers[tensor.buffer], np.array([zero_point]))
    tensor.shape = np.asarray([1], dtype=np.int32)
    tensor.shapeSignature = None


def _restore_expanded(model, tensor, x, channels):
    """The carrier back as the [N, H, W, Cmid] activation tensor."""
    shape = [int(d) for d in x.shape[:3]] + [channels]
    tensor.shape = np.asarray(shape, dtype=np.int32)
    if x.shapeSignature is not None:
        tensor.shapeSignature = np.asarray(shape, dtype=np.int32)
    model.buffers[tensor.buffer].data = None


def _opcode(model, custom_name):
    """Index of the operator code of custom op `custom_name`, added if missing."""
    s = tflite.schema()
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == s.BuiltinOperator.CUSTOM \
                and code.customCode in (custom_name, custom_name.encode()):
            return i
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    code.customCode = custom_name
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _builtin(model, name, options_type, options, inputs, outputs):
    s = tflite.schema()
    builtin = getattr(s.BuiltinOperator, name)
    codes = [i for i, code in enumerate(model.operatorCodes)
             if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin]
    if not codes:
        raise ConversionError(f"the training model has no {name} operator code to export "
                              f"{EXPAND_DEPTHWISE} with")
    op = s.OperatorT()
    op.opcodeIndex = codes[0]
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    op.inputs = np.asarray(inputs, dtype=np.int32)
    op.outputs = np.asarray(outputs, dtype=np.int32)
    return op
