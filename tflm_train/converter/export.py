"""Reading, patching and exporting training models."""
import numpy as np
from flatbuffers import flexbuffers

from . import build, fusion, graph, tflite, training_info
from .errors import ConversionError
from .training_info import TrainableKind


# Arena for the device checks on the host (plenty for any MCU-class model).
CHECK_ARENA_BYTES = 64 * 1024 * 1024


def read_training_info(training_tflite):
    """The `TrainingInfo` metadata of a training model."""
    return _read_checked(training_tflite)[1]


def check_on_device(training_tflite, problem="invalid training model"):
    """Runs the device's own checks (TrainingSession::Init: reader,
    allocation, every op's Prepare, metadata), so host and device accept and
    refuse the same files, with the same one-line message."""
    from tflm_train import _native  # noqa: PLC0415 - tflm_train imports this package

    try:
        _native.check_training_model(bytes(training_tflite), CHECK_ARENA_BYTES)
    except RuntimeError as e:
        raise ConversionError(f"{problem}: {e}") from None


def _read_checked(training_tflite):
    """(model object, TrainingInfo) of a training model that passed
    check_on_device first."""
    data = bytes(training_tflite)
    check_on_device(data)
    model = tflite.read_model(data)
    # What the host reads beyond the device's subgraph 0.
    if len(model.subgraphs) != 1:
        raise ConversionError(f"invalid training model: {len(model.subgraphs)} subgraphs, "
                              "a training model has one")
    codes = len(model.operatorCodes or [])
    if any(not 0 <= op.opcodeIndex < codes for op in model.subgraphs[0].operators):
        raise ConversionError("invalid training model: an operator's opcode index is out of range")
    buffers = len(model.buffers or [])
    referenced = ([t.buffer for t in model.subgraphs[0].tensors]
                  + [m.buffer for m in model.metadata or []]
                  + [int(b) for b in (model.metadataBuffer if model.metadataBuffer is not None
                                      else [])])
    if any(not 0 <= b < buffers for b in referenced):
        raise ConversionError("invalid training model: a buffer index is out of range")
    return model, _info(model)


def _info(model):
    data = tflite.metadata_bytes(model, training_info.METADATA_NAME)
    if data is None:
        raise ConversionError(f"not a training model (no '{training_info.METADATA_NAME}' "
                              "metadata)")
    return training_info.decode(data)


def _store_info(model, info):
    for entry in model.metadata:
        if tflite.name_of(entry) == training_info.METADATA_NAME:
            tflite.set_buffer_data(model.buffers[entry.buffer],
                                   np.frombuffer(training_info.encode(info), dtype=np.uint8))


def set_trainable_values(training_tflite, values):
    """Writes values into the initialisers of the trained state (trainables,
    the stochastic-rounding state `rng`, the output range, the optimizer
    state: `TrainingInfo.state_variables()`), {variable index: array}, so
    that training continues from it exactly.

    Each array must have the variable's shape and fit its type (integers in
    the int8/int32 range, finite floats; the output range a [min, max]).
    Returns the new training model bytes.
    """
    model, info = _read_checked(training_tflite)
    sg = model.subgraphs[0]
    init_op = sg.operators[0]
    # variable index -> position of its pair in TFLMTRAIN_INIT_VARIABLES
    pairs = {int(t): i for i, t in enumerate(init_op.outputs)}
    state = info.state_variables()
    for index, value in values.items():
        index = int(index)
        if index not in state or index not in pairs:
            raise ConversionError(f"tensor {index} is not a trained-state variable; state "
                                  f"variables: {sorted(state)}")
        tensor = sg.tensors[index]
        name = tflite.name_of(tensor)
        array = np.asarray(value)
        shape = [int(d) for d in tensor.shape]
        if list(array.shape) != shape:
            raise ConversionError(f"value for '{name}' has shape {list(array.shape)}, "
                                  f"expected {shape}")
        dtype = tflite.NUMPY_TYPES[tensor.type]
        if dtype == np.float32:
            if array.dtype.kind not in "fiu" or not np.all(np.isfinite(array)) or (
                    index == info.output_range and array[0] > array[1]):
                raise ConversionError(f"value for '{name}' must be finite"
                                      + (" [min, max]" if index == info.output_range else ""))
        else:
            info_range = np.iinfo(dtype)
            if array.dtype.kind not in "iu" or (array.size and (
                    array.min() < info_range.min or array.max() > info_range.max)):
                raise ConversionError(f"value for '{name}' must be integers in the "
                                      f"{np.dtype(dtype).name} range")
        pair = pairs[index]
        init = sg.tensors[int(init_op.inputs[pair])]
        if [int(d) for d in init.shape] != shape:
            # A one-element zero fill (optimizer state): give the variable an
            # initialiser of its own.
            init = _own_initializer(model, tensor)
            init_op.inputs[pair] = len(sg.tensors) - 1
        tflite.set_buffer_data(model.buffers[init.buffer], array.astype(dtype))
    return tflite.write_model(model)


def _own_initializer(model, variable):
    s = tflite.schema()
    init = s.TensorT()
    init.name = tflite.name_of(variable) + "/init"
    init.type = variable.type
    init.shape = np.asarray(variable.shape, dtype=np.int32)
    init.buffer = tflite.new_buffer(model)
    model.subgraphs[0].tensors.append(init)
    return init


def set_hparams(training_tflite, lr=None, bias_lr=None):
    """Sets the weight and/or bias learning rate (hparams tensor and metadata)."""
    model, info = _read_checked(training_tflite)
    for name, value in (("lr", lr), ("bias_lr", bias_lr)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ConversionError(f"{name} must be a finite number >= 0, got {value!r}")
    if lr is not None:
        info.optimizer.lr = float(lr)
    if bias_lr is not None:
        info.optimizer.bias_lr = float(bias_lr)
    hparams = model.subgraphs[0].tensors[info.hparams]
    tflite.set_buffer_data(model.buffers[hparams.buffer],
                           np.array([info.optimizer.lr, info.optimizer.bias_lr], np.float32))
    _store_info(model, info)
    return tflite.write_model(model)


def export_inference_model(training_tflite):
    """The plain inference .tflite with the current initialiser values.

    Keeps the forward operators (a fused expand -> depthwise pair back as
    its two builtins, fusion.py; the mask packing among them dropped); every trainable variable becomes a constant
    holding its initialiser's data (a channel slice is merged into its
    layer's filter and the sliced op becomes the builtin again); the
    training ops, tensors and metadata go.
    After training, the output layer's int8 output is requantized to the
    output range training recorded (`_fit_output_range`).
    """
    model, info = _read_checked(training_tflite)
    sg = model.subgraphs[0]
    _fit_output_range(model, info)
    first = info.first_forward_op
    sliced = {int(op.inputs[3]): op for op in sg.operators[first:first + info.num_forward_ops]
              if tflite.op_name(model, op) in _SLICED_BUILTINS}
    for trainable in info.trainables:
        if trainable.variable in sliced:
            _merge_slice(model, sliced[trainable.variable], trainable)
            continue
        variable = sg.tensors[trainable.variable]
        variable.isVariable = False
        variable.buffer = sg.tensors[trainable.initializer].buffer
    sg.operators = fusion.unfuse(model, [
        op for op in sg.operators[first:first + info.num_forward_ops]
        if tflite.op_name(model, op) != build.PACK_MASK])
    sg.inputs = sg.inputs[:1]
    sg.outputs = sg.outputs[:1]
    _drop_unused_tensors(model)
    _drop_unused_operator_codes(model)
    model.metadata = [m for m in model.metadata
                      if tflite.name_of(m) != training_info.METADATA_NAME] or None
    tflite.drop_unused_buffers(model)
    return tflite.write_model(model)


# Channel-sliced forward op (build.SLICED_OPS) -> its builtin.
_SLICED_BUILTINS = {"TFLMTRAIN_CONV_2D_SLICED": "CONV_2D",
                    "TFLMTRAIN_FULLY_CONNECTED_SLICED": "FULLY_CONNECTED"}


def _merge_slice(model, op, trainable):
    """Writes the slice's initialiser rows into a copy of the frozen filter
    (row channels[j] = slice row j) and turns the sliced op back into its
    builtin with the same options."""
    sg = model.subgraphs[0]
    filter_tensor = sg.tensors[int(op.inputs[1])]
    merged = np.array(tflite.tensor_data(model, filter_tensor))
    merged[np.asarray(trainable.channels)] = tflite.tensor_data(
        model, sg.tensors[trainable.initializer])
    filter_tensor.buffer = tflite.new_buffer(model, merged)
    s = tflite.schema()
    name = _SLICED_BUILTINS[tflite.op_name(model, op)]
    attrs = flexbuffers.Loads(bytes(op.customOptions))
    if name == "CONV_2D":
        options = s.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = (
            attrs["padding"], attrs["stride_h"], attrs["stride_w"])
        options.dilationHFactor, options.dilationWFactor = attrs["dilation_h"], attrs["dilation_w"]
        op.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
    else:
        options = s.FullyConnectedOptionsT()
        options.keepNumDims = bool(attrs["keep_num_dims"])
        op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    options.fusedActivationFunction = attrs["activation"]
    op.builtinOptions = options
    op.customOptions = None
    op.customOptionsFormat = 0
    op.opcodeIndex = _builtin_opcode(model, getattr(s.BuiltinOperator, name))
    inputs = [int(t) for t in op.inputs[:3]]
    op.inputs = np.asarray(inputs if inputs[2] >= 0 else inputs[:2], dtype=np.int32)


def _builtin_opcode(model, code):
    """Index of the operator code of builtin `code` (the inference model's,
    kept in the training model), added if missing."""
    for i, entry in enumerate(model.operatorCodes):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return i
    entry = tflite.schema().OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = min(code, 127)
    entry.version = 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _fit_output_range(model, info):
    """Requantizes the output layer's int8 output (and the RESHAPEs between
    it and the logits, which share its quantization) to the output range
    recorded by training; a range still at its calibrated value (no train
    step) leaves the model as it was."""
    sg = model.subgraphs[0]
    recorded = tflite.tensor_data(model, sg.tensors[info.output_range_initializer])
    low, high = (float(v) for v in recorded)
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ConversionError(f"the recorded output range [{low}, {high}] is invalid")
    chain = _output_chain(model, info)
    q = sg.tensors[chain[0]].quantization
    scale, zero_point = np.float32(q.scale[0]), int(q.zeroPoint[0])
    # As the converter wrote the calibrated range (build._int8_range).
    calibrated = np.float32([float(scale) * (-128 - zero_point), float(scale) * (127 - zero_point)])
    if np.array_equal(np.float32([low, high]), calibrated):
        return
    # An int8 range must hold 0 exactly (asymmetric quantization).
    low, high = min(low, 0.0), max(high, 0.0)
    new_scale = np.float32((high - low) / 255.0)
    new_zero_point = int(np.clip(np.round(-128 - low / float(new_scale)), -128, 127))
    for index in chain:
        q = sg.tensors[index].quantization
        q.scale = [float(new_scale)]
        q.zeroPoint = [new_zero_point]


def _output_chain(model, info):
    """Tensors from the output layer's int8 output to the logits."""
    sg = model.subgraphs[0]
    first = info.first_forward_op
    forward = sg.operators[first:first + info.num_forward_ops]
    made_by = {int(op.outputs[0]): op for op in forward}
    return graph.reshape_chain(
        info.logits,
        lambda t: (made_by[t], tflite.op_name(model, made_by[t])) if t in made_by else None)


def _drop_unused_tensors(model):
    """Removes tensors no operator or subgraph input/output refers to."""
    sg = model.subgraphs[0]
    used = {int(t) for t in list(sg.inputs) + list(sg.outputs)}
    for op in sg.operators:
        for field in (op.inputs, op.outputs, op.intermediates):
            used.update(int(t) for t in (field if field is not None else []) if t >= 0)
    order = sorted(used)
    new_index = {old: new for new, old in enumerate(order)}
    new_index[-1] = -1

    def remap(indices):
        return None if indices is None else np.asarray([new_index[int(t)] for t in indices],
                                                       dtype=np.int32)

    sg.tensors = [sg.tensors[i] for i in order]
    sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
    for op in sg.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        op.intermediates = remap(op.intermediates)
    for signature in model.signatureDefs or []:
        signature.inputs = [m for m in signature.inputs or [] if m.tensorIndex in new_index]
        signature.outputs = [m for m in signature.outputs or [] if m.tensorIndex in new_index]
        for entry in signature.inputs + signature.outputs:
            entry.tensorIndex = new_index[entry.tensorIndex]


def _drop_unused_operator_codes(model):
    used = sorted({op.opcodeIndex for sg in model.subgraphs for op in sg.operators})
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for sg in model.subgraphs:
        for op in sg.operators:
            op.opcodeIndex = new_index[op.opcodeIndex]
