"""A fresh classifier head for new classes (scheme field "head").

Replaces the output layer's weights (a FULLY_CONNECTED, or a CONV_2D whose
window covers its whole input) with new ones of N classes, before the training graph is built: zeros, which the training
graph either leaves to SGD or overwrites by imprinting on the device
(TFLMTRAIN_IMPRINT, docs/format.md). Every tensor between the output layer
and the model output (RESHAPE, SOFTMAX, DEQUANTIZE) gets N in its last
dimension.
"""
import numpy as np

from . import tflite
from .errors import ConversionError


def replace_head(model, forward, num_classes):
    """Gives `model` (analysed as `forward`) a zero N-class output layer.

    The new weights share one scale: the largest per-channel scale of the
    classifier they replace (the weight range features of this model
    needed), so imprinted rows are equal in real units; the bias scale is
    s_x * s_w as usual. The int8 output keeps its calibrated quantization
    (training tracks the range; export fits it).
    """
    sg = model.subgraphs[0]
    head = forward.output_layer
    op = sg.operators[head.op_index]
    filter_tensor = sg.tensors[head.filter]
    if head.op == "CONV_2D":
        _check_conv_head(sg, op, head)
    weight_scale = float(np.max(head.weight_scales))
    row_shape = [int(d) for d in filter_tensor.shape[1:]]
    _set_constant(model, filter_tensor, np.zeros([num_classes] + row_shape, np.int8),
                  [weight_scale] * num_classes)
    bias_scale = float(np.float32(head.input_scale) * np.float32(weight_scale))
    if head.bias >= 0:
        _set_constant(model, sg.tensors[head.bias], np.zeros(num_classes, np.int32),
                      [bias_scale] * num_classes)
    # The output layer's output and every tensor after it to the model output.
    readers = {}
    for i, reader in enumerate(sg.operators):
        for t in reader.inputs:
            readers.setdefault(int(t), []).append(i)
    tensor = int(op.outputs[0])
    while True:
        _set_last_dim(sg.tensors[tensor], num_classes)
        following = readers.get(tensor, [])
        if not following:
            break
        i = following[0]
        name = forward.ops[i]
        if name == "RESHAPE":
            _set_reshape_target(model, sg.operators[i], num_classes)
        tensor = int(sg.operators[i].outputs[0])


def _check_conv_head(sg, op, head):
    """A CONV_2D output layer can take a fresh head when it is a classifier
    in disguise (a person-detection-style 1x1 conv on a 1x1 map): one output
    pixel whose window covers the whole input, so each class's weights meet
    all of the input once."""
    x = [int(d) for d in sg.tensors[head.input].shape]
    y = [int(d) for d in sg.tensors[head.output].shape]
    kernel = [int(d) for d in sg.tensors[head.filter].shape[1:3]]
    options = op.builtinOptions
    valid = options.padding == 1 or x[1:3] == [1, 1]  # Padding.VALID
    if not (y[1:3] == [1, 1] and kernel == x[1:3] and valid and
            options.dilationHFactor == options.dilationWFactor == 1):
        raise ConversionError(
            f"head: the output layer CONV_2D at operator {head.op_index} maps {x} to {y} with "
            f"a {kernel[0]}x{kernel[1]} kernel; a fresh head replaces a FULLY_CONNECTED or a "
            "CONV_2D whose window covers its whole input (one output pixel)")


def _set_constant(model, tensor, array, scales):
    q = tensor.quantization
    q.scale = scales
    q.zeroPoint = [0] * len(scales)
    q.quantizedDimension = 0
    tensor.shape = np.asarray(array.shape, dtype=np.int32)
    tensor.shapeSignature = None
    tensor.buffer = tflite.new_buffer(model, array)


def _set_last_dim(tensor, n):
    tensor.shape = np.asarray(list(tensor.shape[:-1]) + [n], dtype=np.int32)
    if tensor.shapeSignature is not None and len(tensor.shapeSignature):
        tensor.shapeSignature = np.asarray(list(tensor.shapeSignature[:-1]) + [n],
                                           dtype=np.int32)


def _set_reshape_target(model, op, n):
    """A RESHAPE's target shape (its shape input and option) ends in n."""
    sg = model.subgraphs[0]
    if len(op.inputs) > 1 and op.inputs[1] >= 0:
        shape_tensor = sg.tensors[int(op.inputs[1])]
        data = tflite.tensor_data(model, shape_tensor)
        if data is None:
            raise ConversionError("head: a RESHAPE after the output layer has a computed "
                                  "shape; a fresh head needs a constant one")
        target = data.astype(np.int32).copy()
        if target[-1] != -1:
            target[-1] = n
        shape_tensor.buffer = tflite.new_buffer(model, target)
    options = op.builtinOptions
    if options is not None and getattr(options, "newShape", None) is not None \
            and len(options.newShape):
        options.newShape = [int(d) for d in options.newShape[:-1]] + [
            n if int(options.newShape[-1]) != -1 else -1]
