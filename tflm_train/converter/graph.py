"""Validation and analysis of the inference model's forward graph."""
import dataclasses

import numpy as np

from . import tflite
from .errors import ConversionError

TRAINABLE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Every forward op the standalone runtime has a kernel for (ops_cc/ops/
# forward_ops.cc; tests/test_source_layout.py keeps the two lists equal) ->
# the input slots that carry activations, where a gradient would flow back to.
# An op whose output has no gradient path to a trained tensor runs forward
# only, so any of these may sit in a frozen prefix.
FORWARD_OPS = {
    "CONV_2D": (0,), "DEPTHWISE_CONV_2D": (0,), "FULLY_CONNECTED": (0,),
    "ADD": (0, 1), "AVERAGE_POOL_2D": (0,), "MAX_POOL_2D": (0,), "MEAN": (0,),
    "PAD": (0,), "RESHAPE": (0,), "QUANTIZE": (0,), "SOFTMAX": (), "DEQUANTIZE": (),
    "STRIDED_SLICE": (0,), "TRANSPOSE": (0,), "SQUEEZE": (0,), "EXPAND_DIMS": (0,),
    "RESIZE_NEAREST_NEIGHBOR": (0,), "LOGISTIC": (0,), "TANH": (0,), "HARD_SWISH": (0,),
    "LEAKY_RELU": (0,), "MUL": (0, 1), "SUB": (0, 1), "MAXIMUM": (0, 1), "MINIMUM": (0, 1),
    "CONCATENATION": None,  # every input
    # Its hidden and cell states (inputs 18, 19) are variables; the training
    # graph clears them after every step (build.py, clear_recurrent_states).
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (0,),
}
# Input slots of an op's recurrent state variables.
RECURRENT_STATE_INPUTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": (18, 19)}
# The ops with a gradient kernel (build.py GRAD_OPS), and the fused
# activations those kernels implement.
GRADIENT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
                "MAX_POOL_2D", "MEAN", "PAD", "RESHAPE", "QUANTIZE", "HARD_SWISH", "LOGISTIC",
                "TANH", "LEAKY_RELU", "MUL", "CONCATENATION", "TRANSPOSE", "STRIDED_SLICE",
                "SQUEEZE", "EXPAND_DIMS")
SUPPORTED_ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}
ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                    5: "SIGN_BIT"}
# Dimension of the output channels in each trainable op's filter.
OUTPUT_CHANNEL_DIM = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


@dataclasses.dataclass
class Layer:
    """A trainable forward op (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)."""
    op_index: int  # in the inference model's subgraph 0
    op: str
    name: str  # Keras layer name recovered from tensor names
    input: int
    filter: int
    bias: int  # -1 when the op has no bias
    output: int
    out_channels: int
    weight_scales: np.ndarray  # float32, per output channel or one value
    input_scale: np.float32
    channel_norms: np.ndarray  # L2 of each output channel's real weights


@dataclasses.dataclass
class ForwardGraph:
    ops: list  # operator names, in order
    input: int
    output: int
    logits: int  # int8 tensor before the final SOFTMAX / DEQUANTIZE, if any
    num_classes: int
    layers: list  # trainable layers in forward order
    # The FULLY_CONNECTED / CONV_2D layer whose output reaches `logits` through
    # RESHAPEs only: the loss reads its real-valued output.
    output_layer: Layer
    # int8 tensors from output_layer's output to `logits` (they share one
    # quantization; export rescales them together).
    output_chain: list
    has_softmax: bool
    # Operator index -> why it cannot pass a gradient back (it runs forward
    # only; the training graph refuses a scheme that needs one through it).
    forward_only: dict

    def first_trainable_op(self):
        """The first operator a scheme may train without a gradient through
        a forward-only op (those before the output layer count)."""
        barriers = [i for i in self.forward_only if i <= self.output_layer.op_index]
        return max(barriers) + 1 if barriers else 0


def analyze(model):
    """Validates the inference model and describes its forward graph.

    Sets the batch dimension to 1 in place. Raises ConversionError naming
    the first thing the training graph cannot support.
    """
    if len(model.subgraphs) != 1:
        raise ConversionError(f"the model has {len(model.subgraphs)} subgraphs; "
                              "only single-subgraph models are supported")
    sg = model.subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise ConversionError(f"the model has {len(sg.inputs)} inputs and {len(sg.outputs)} "
                              "outputs; exactly one of each is supported")
    _set_batch_one(sg)
    ops = [tflite.op_name(model, op) for op in sg.operators]
    checker = _Checker(model, sg, ops)
    for i in range(len(ops)):
        checker.check_op(i)
    logits, has_softmax = _logits(sg, ops, checker)
    layers = [_layer(model, sg, i, name) for i, name in enumerate(ops) if name in TRAINABLE_OPS]
    output_layer, chain = _output_layer(sg, ops, layers, logits, checker)
    return ForwardGraph(ops=ops, input=int(sg.inputs[0]), output=int(sg.outputs[0]),
                        logits=logits, num_classes=int(sg.tensors[logits].shape[-1]),
                        layers=layers, output_layer=output_layer, output_chain=chain,
                        has_softmax=has_softmax,
                        forward_only={i: why for i in range(len(ops))
                                      if activation_slots(ops[i], sg.operators[i])
                                      and (why := checker.gradient_refusal(i)) is not None})


def activation_slots(name, op):
    """The input slots of operator `op` (named `name`) that carry activations."""
    slots = FORWARD_OPS[name]
    return tuple(range(len(op.inputs))) if slots is None else slots


def depthwise_multiplier(sg, layer):
    """Output channels per input channel of a DEPTHWISE_CONV_2D layer."""
    return layer.out_channels // int(sg.tensors[layer.input].shape[-1])


def reshape_chain(tensor, producer):
    """[t_0, ..., tensor]: `tensor` followed back through the RESHAPEs that
    make it; `producer(t)` gives (operator, name) of t's producer, or None."""
    chain = [tensor]
    while (made := producer(chain[0])) is not None and made[1] == "RESHAPE":
        chain.insert(0, int(made[0].inputs[0]))
    return chain


def producers(sg):
    """Tensor index -> index of the operator that produces it."""
    return {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}


def _set_batch_one(sg):
    """Fixes a dynamic batch to 1; rejects other dynamic or batch sizes."""
    for tensor in sg.tensors:
        signature = tensor.shapeSignature
        if signature is not None and len(signature) and signature[0] == -1:
            signature[0] = 1
            tensor.shape[0] = 1
        if signature is not None and any(d < 0 for d in signature):
            raise ConversionError(f"tensor '{tflite.name_of(tensor)}' has a dynamic dimension "
                                  f"{list(map(int, signature))}; only the batch may be dynamic")
    model_input = sg.tensors[sg.inputs[0]]
    if len(model_input.shape) == 0 or model_input.shape[0] != 1:
        raise ConversionError(
            f"model input '{tflite.name_of(model_input)}' has shape "
            f"{list(map(int, model_input.shape))}; the batch must be 1 or dynamic")


class _Checker:
    """Per-operator checks of types, quantization and supported options."""

    def __init__(self, model, sg, ops):
        self.model, self.sg, self.ops = model, sg, ops

    def tensor(self, index):
        return self.sg.tensors[index]

    def name(self, index):
        return tflite.name_of(self.tensor(index))

    def where(self, i):
        return f"{self.ops[i]} at operator {i}"

    def expect_type(self, i, index, role, tensor_type):
        actual = self.tensor(index).type
        if actual == tflite.INT16 and tensor_type == tflite.INT8:
            raise ConversionError(
                f"tensor '{self.name(index)}' ({role} of {self.where(i)}) is int16: 16x8 "
                "quantization (int16 activations) is not supported; convert with int8 "
                "activations (the TFLite converter's full-int8 default)")
        if actual != tensor_type:
            raise ConversionError(
                f"tensor '{self.name(index)}' ({role} of {self.where(i)}) is "
                f"{tflite.TYPE_NAMES.get(actual, actual)}, expected "
                f"{tflite.TYPE_NAMES[tensor_type]}; the model must be fully int8-quantized")

    def expect_constant(self, i, index, role):
        if tflite.tensor_data(self.model, self.tensor(index)) is None:
            raise ConversionError(f"tensor '{self.name(index)}' ({role} of {self.where(i)}) "
                                  "must be a constant")

    def expect_per_tensor_quantization(self, i, index, role):
        q = self.tensor(index).quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            raise ConversionError(f"tensor '{self.name(index)}' ({role} of {self.where(i)}) "
                                  "needs per-tensor int8 quantization")

    def check_op(self, i):
        name = self.ops[i]
        if name not in FORWARD_OPS:
            raise ConversionError(f"unsupported operator {name} at operator {i}; the runtime "
                                  f"runs: {', '.join(sorted(FORWARD_OPS))}")
        op = self.sg.operators[i]
        inputs, outputs = [int(t) for t in op.inputs], [int(t) for t in op.outputs]
        slots = activation_slots(name, op)
        if name == "QUANTIZE":  # float -> int8 at the model input, or an int8 requantize
            if self.tensor(inputs[0]).type == tflite.FLOAT32:
                if inputs[0] != self.sg.inputs[0]:
                    raise ConversionError(f"{self.where(i)} quantizes a float tensor that is "
                                          "not the model input")
                slots = ()
        elif name == "DEQUANTIZE":
            if outputs[0] != self.sg.outputs[0]:
                raise ConversionError(f"{self.where(i)} is not at the model output; "
                                      "DEQUANTIZE is supported only there")
        # int8 activation inputs: those gradients flow to, and those of the output ops.
        int8_inputs = (0,) if name in ("SOFTMAX", "DEQUANTIZE") else slots
        for slot in int8_inputs:
            self.expect_type(i, inputs[slot], f"input {slot}", tflite.INT8)
            self.expect_per_tensor_quantization(i, inputs[slot], f"input {slot}")
        if name != "DEQUANTIZE":
            self.expect_type(i, outputs[0], "output", tflite.INT8)
            self.expect_per_tensor_quantization(i, outputs[0], "output")
        if name in TRAINABLE_OPS:
            self.check_layer(i, inputs, outputs)
        elif name == "MEAN":
            self.expect_type(i, inputs[1], "axes", tflite.INT32)
            self.expect_constant(i, inputs[1], "axes")
        elif name == "PAD":
            self.expect_type(i, inputs[1], "paddings", tflite.INT32)
            self.expect_constant(i, inputs[1], "paddings")

    def gradient_refusal(self, i):
        """Why operator i cannot pass a gradient back (it then runs forward
        only, in a frozen prefix), or None."""
        name, op = self.ops[i], self.sg.operators[i]
        if name not in GRADIENT_OPS:
            return "has no gradient kernel"
        activation = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        if activation not in SUPPORTED_ACTIVATIONS:
            return (f"has fused activation {ACTIVATION_NAMES.get(activation, activation)} "
                    "(gradients exist for NONE, RELU, RELU6)")
        inputs = [int(t) for t in op.inputs]
        if name == "MEAN":
            axes = sorted(int(a) % 4 for a in
                          tflite.tensor_data(self.model, self.tensor(inputs[1])).ravel())
            if len(self.tensor(inputs[0]).shape) != 4 or axes != [1, 2]:
                return (f"reduces axes {axes} (the gradient exists for the spatial mean, "
                        "axes 1, 2 of an NHWC tensor)")
        return None

    def check_layer(self, i, inputs, outputs):
        name = self.ops[i]
        filter_index = inputs[1]
        self.expect_type(i, filter_index, "filter", tflite.INT8)
        self.expect_constant(i, filter_index, "filter")
        filter_tensor = self.tensor(filter_index)
        dim = OUTPUT_CHANNEL_DIM[name]
        q = filter_tensor.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise ConversionError(f"tensor '{self.name(filter_index)}' (filter of "
                                  f"{self.where(i)}) is not quantized")
        out_channels = int(filter_tensor.shape[dim])
        if len(q.scale) > 1 and (q.quantizedDimension != dim or len(q.scale) != out_channels):
            raise ConversionError(
                f"tensor '{self.name(filter_index)}' (filter of {self.where(i)}) is quantized "
                f"per axis along dimension {q.quantizedDimension} with {len(q.scale)} scales; "
                f"expected dimension {dim} (output channels, {out_channels})")
        if len(inputs) > 2 and inputs[2] >= 0:
            self.expect_type(i, inputs[2], "bias", tflite.INT32)
            self.expect_constant(i, inputs[2], "bias")
        if name == "DEPTHWISE_CONV_2D":
            in_channels = int(self.tensor(inputs[0]).shape[-1])
            if in_channels < 1 or out_channels % in_channels != 0:
                raise ConversionError(
                    f"{self.where(i)} has {out_channels} output channels for {in_channels} "
                    "input channels; a depthwise convolution needs a whole multiple")
        if name == "FULLY_CONNECTED":
            options = self.sg.operators[i].builtinOptions
            if options is not None and options.weightsFormat != 0:
                raise ConversionError(f"{self.where(i)} uses a shuffled weights format; "
                                      "only the default is supported")


def _logits(sg, ops, checker):
    """(the int8 tensor before SOFTMAX/DEQUANTIZE, whether there is a SOFTMAX),
    after checking SOFTMAX is last."""
    made_by = producers(sg)
    output = int(sg.outputs[0])
    logits = output
    if output in made_by and ops[made_by[output]] == "DEQUANTIZE":
        logits = int(sg.operators[made_by[output]].inputs[0])
    if logits in made_by and ops[made_by[logits]] == "SOFTMAX":
        softmax = made_by[logits]
        logits = int(sg.operators[softmax].inputs[0])
    else:
        softmax = None
    for i, name in enumerate(ops):
        if name == "SOFTMAX" and i != softmax:
            raise ConversionError(f"SOFTMAX at operator {i} is not at the model output; "
                                  "SOFTMAX is supported only as the last operator")
    if logits not in made_by or ops[made_by[logits]] in ("QUANTIZE", "DEQUANTIZE"):
        raise ConversionError(f"the logits tensor '{checker.name(logits)}' is not computed "
                              "by a trainable path")
    return logits, softmax is not None


def _output_layer(sg, ops, layers, logits, checker):
    """The layer whose real-valued output the loss reads, and the int8 chain."""
    made_by = producers(sg)
    readers = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(i)
    chain = reshape_chain(logits, lambda t: (sg.operators[made_by[t]], ops[made_by[t]])
                          if t in made_by else None)
    i = made_by.get(chain[0])
    if i is None or ops[i] not in ("FULLY_CONNECTED", "CONV_2D"):
        what = "the model input" if i is None else f"{ops[i]} at operator {i}"
        raise ConversionError(
            f"the output tensor '{checker.name(chain[0])}' is computed by {what}; the loss "
            "reads the real-valued output of a FULLY_CONNECTED or CONV_2D output layer, "
            "optionally followed by RESHAPE, SOFTMAX and DEQUANTIZE")
    for t in chain[:-1]:
        if len(readers.get(t, [])) != 1:
            raise ConversionError(f"tensor '{checker.name(t)}' between the output layer and "
                                  "the model output is read by several operators")
    return next(layer for layer in layers if layer.op_index == i), chain


def _layer(model, sg, i, op_name):
    op = sg.operators[i]
    inputs = [int(t) for t in op.inputs]
    filter_tensor = sg.tensors[inputs[1]]
    dim = OUTPUT_CHANNEL_DIM[op_name]
    q = filter_tensor.quantization
    scales = np.asarray(q.scale, dtype=np.float32)
    weights = tflite.tensor_data(model, filter_tensor).astype(np.float64)
    zero_points = np.zeros(1) if q.zeroPoint is None else np.asarray(q.zeroPoint, np.float64)
    per_channel = np.moveaxis(weights, dim, 0).reshape(weights.shape[dim], -1)
    centred = per_channel - zero_points.reshape(-1, 1)
    norms = np.broadcast_to(scales.astype(np.float64), (weights.shape[dim],)) * np.sqrt(
        np.sum(centred * centred, axis=1))
    input_q = sg.tensors[inputs[0]].quantization
    return Layer(
        op_index=i, op=op_name, name=_layer_name(sg, inputs, op),
        input=inputs[0], filter=inputs[1], bias=inputs[2] if len(inputs) > 2 else -1,
        output=int(op.outputs[0]), out_channels=int(weights.shape[dim]),
        weight_scales=scales, input_scale=np.float32(input_q.scale[0]), channel_norms=norms)


def _layer_name(sg, inputs, op):
    """The Keras layer name embedded in TFLite tensor names.

    The TFLite converter names tensors '<model>/<layer>/<TF op>' (fused
    tensors join several such names with ';'), so the layer is the component
    before the last. The filter's name is tried first, then the output's and
    the bias's; a layer with no such name is named after its filter tensor.
    """
    candidates = [inputs[1], int(op.outputs[0])] + ([inputs[2]] if len(inputs) > 2 else [])
    for index in candidates:
        if index < 0:
            continue
        for part in tflite.name_of(sg.tensors[index]).split(";"):
            components = part.split("/")
            if len(components) >= 3 and components[-2]:
                return components[-2]
    return tflite.name_of(sg.tensors[inputs[1]])
