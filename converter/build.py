"""Builds the training graph of docs/format.md from an int8 inference model."""
import collections
import copy
import json

import numpy as np
from flatbuffers import flexbuffers

from . import graph, tflite, training_info
from .errors import ConversionError
from .scheme import LayerUpdate
from .training_info import Rounding, Trainable, TrainableKind

INIT_VARIABLES = "TFLMTRAIN_INIT_VARIABLES"
SOFTMAX_CROSS_ENTROPY = "TFLMTRAIN_SOFTMAX_CROSS_ENTROPY"
GRAD_SUM = "TFLMTRAIN_GRAD_SUM"
# Forward op -> its gradient op.
GRAD_OPS = {op: f"TFLMTRAIN_{op}_GRAD" for op in (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "MEAN", "PAD", "RESHAPE")}

LABEL, MODE, LOSS = "tflm_train/label", "tflm_train/mode", "tflm_train/loss"
HPARAMS, RNG = "tflm_train/hparams", "tflm_train/rng"


def build_training_model(int8_tflite, scheme):
    """Inference .tflite bytes + a validated Scheme -> training .tflite bytes."""
    model = tflite.read_model(int8_tflite)
    if tflite.metadata_bytes(model, training_info.METADATA_NAME) is not None:
        raise ConversionError("the model is already a training model; "
                              "convert its export_inference_model() output instead")
    forward = graph.analyze(model)
    updates = scheme.resolve(forward.layers)
    return _TrainingGraph(model, forward, scheme).build(updates)


class _TrainingGraph:
    """Adds the training tensors and operators to a model in place."""

    def __init__(self, model, forward, scheme):
        self.model, self.forward, self.scheme = model, forward, scheme
        self.sg = model.subgraphs[0]
        self.forward_ops = list(self.sg.operators)  # the inference model's operators
        self.opcodes = {}
        self.rounding = Rounding[scheme.optimizer.rounding.upper()]
        buffers = model.buffers
        self.empty_buffer = 0 if buffers and not _has_data(buffers[0]) else tflite.new_buffer(model)

    # Tensors and operators.

    def add_tensor(self, name, tensor_type, shape, data=None, quantization=None, variable=False):
        s = tflite.schema()
        tensor = s.TensorT()
        tensor.name = name
        tensor.type = tensor_type
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.quantization = quantization
        tensor.isVariable = variable
        if data is None:
            tensor.buffer = self.empty_buffer
        else:
            array = np.asarray(data, tflite.NUMPY_TYPES[tensor_type])
            tensor.buffer = tflite.new_buffer(self.model, array)
        self.sg.tensors.append(tensor)
        return len(self.sg.tensors) - 1

    def add_grad_tensor(self, of, suffix="/grad"):
        """A float32 gradient tensor shaped like tensor `of`."""
        tensor = self.sg.tensors[of]
        return self.add_tensor(tflite.name_of(tensor) + suffix, tflite.FLOAT32, tensor.shape)

    def custom_op(self, name, inputs, outputs, options=None):
        s = tflite.schema()
        if name not in self.opcodes:
            code = s.OperatorCodeT()
            code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
            code.customCode = name
            code.version = 1
            self.model.operatorCodes.append(code)
            self.opcodes[name] = len(self.model.operatorCodes) - 1
        op = s.OperatorT()
        op.opcodeIndex = self.opcodes[name]
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options or {})), dtype=np.uint8)
        op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
        return op

    # The graph.

    def build(self, updates):
        forward, sg = self.forward, self.sg
        opt = self.scheme.optimizer
        self.label = self.add_tensor(LABEL, tflite.INT32, [1])
        self.mode = self.add_tensor(MODE, tflite.INT32, [1])
        self.hparams = self.add_tensor(HPARAMS, tflite.FLOAT32, [2],
                                       data=[opt.lr, opt.effective_bias_lr])
        self.updates = {layer.op_index: update
                        for layer, update in zip(forward.layers, updates, strict=True)
                        if update.bias or update.channels is not None}
        self.layers = {layer.op_index: layer for layer in forward.layers}
        trainables = self.make_trainables()
        pairs = [(t.initializer, t.variable) for t in trainables]
        self.rng = -1
        if self.rounding == Rounding.STOCHASTIC:
            self.rng = self.add_tensor(RNG, tflite.INT32, [1], variable=True)
            seed = np.array([opt.seed], dtype=np.uint32).view(np.int32)
            pairs.append((self.add_tensor(RNG + "/init", tflite.INT32, [1], data=seed), self.rng))
        self.loss = self.add_tensor(LOSS, tflite.FLOAT32, [1])
        logits_grad = self.add_grad_tensor(forward.logits)

        operators = [self.custom_op(INIT_VARIABLES, [i for i, _ in pairs], [v for _, v in pairs])]
        operators += self.forward_ops
        operators.append(self.custom_op(SOFTMAX_CROSS_ENTROPY,
                                        [forward.logits, self.label, self.mode],
                                        [self.loss, logits_grad]))
        operators += self.backward(logits_grad)
        sg.operators = operators
        sg.inputs = np.asarray([forward.input, self.label, self.mode], dtype=np.int32)
        # The trained state after the loss, so firmware reads it as graph outputs
        # (TFLM exposes outputs without preserve_all_tensors).
        state = [t.variable for t in trainables] + ([self.rng] if self.rng >= 0 else [])
        sg.outputs = np.asarray([forward.output, self.loss] + state, dtype=np.int32)

        info = training_info.TrainingInfo(
            trainables=trainables,
            optimizer=training_info.Optimizer(
                type=opt.type, lr=opt.lr, bias_lr=opt.effective_bias_lr,
                rounding=self.rounding, qas=self.scheme.qas, seed=opt.seed),
            input=forward.input, label=self.label, mode=self.mode, logits=forward.logits,
            loss=self.loss, hparams=self.hparams, rng=self.rng,
            num_classes=forward.num_classes,
            scheme_json=json.dumps(self.scheme.to_dict(), sort_keys=True),
            first_forward_op=1, num_forward_ops=len(forward.ops))
        entry = tflite.schema().MetadataT()
        entry.name = training_info.METADATA_NAME
        entry.buffer = tflite.new_buffer(
            self.model, np.frombuffer(training_info.encode(info), dtype=np.uint8))
        self.model.metadata = (self.model.metadata or []) + [entry]
        tflite.drop_unused_buffers(self.model)
        return tflite.write_model(self.model)

    def make_trainables(self):
        """Turns every trained weight/bias into a variable with an initialiser."""
        uses = collections.Counter(int(t) for op in self.forward_ops for t in op.inputs)
        trainables = []
        for op_index, update in self.updates.items():
            layer = self.layers[op_index]
            bias_scales = (layer.input_scale * layer.weight_scales).astype(np.float32)
            if update.bias and layer.bias < 0:
                self.add_zero_bias(layer, bias_scales)
            parts = []
            if update.channels is not None:
                parts.append((TrainableKind.WEIGHT, layer.filter, layer.weight_scales,
                              update.channels))
            if update.bias:
                parts.append((TrainableKind.BIAS, layer.bias, bias_scales, []))
            for kind, index, scales, channels in parts:
                if uses[index] > 1:
                    raise ConversionError(
                        f"tensor '{tflite.name_of(self.sg.tensors[index])}' of "
                        f"{layer.op} at operator {op_index} is shared with another operator; "
                        "shared weights cannot be trained")
                all_channels = len(channels) == layer.out_channels
                trainables.append(Trainable(
                    variable=index, initializer=self.make_variable(index), kind=kind,
                    op_index=op_index + 1, layer_name=layer.name,
                    channels=[] if all_channels else list(channels),
                    scales=[float(s) for s in scales]))
        return trainables

    def add_zero_bias(self, layer, scales):
        """Gives a bias-less layer a zero int32 bias so that it can train."""
        q = tflite.schema().QuantizationParametersT()
        q.scale = scales.tolist()
        q.zeroPoint = [0] * len(scales)
        q.quantizedDimension = 0
        name = tflite.name_of(self.sg.tensors[layer.filter]) + "/bias"
        layer.bias = self.add_tensor(name, tflite.INT32, [layer.out_channels],
                                     data=np.zeros(layer.out_channels), quantization=q)
        op = self.forward_ops[layer.op_index]
        op.inputs = np.asarray(list(op.inputs[:2]) + [layer.bias], dtype=np.int32)

    def make_variable(self, index):
        """Makes constant tensor `index` a variable; returns its `/init` tensor."""
        tensor = self.sg.tensors[index]
        data = tflite.tensor_data(self.model, tensor)
        init = self.add_tensor(tflite.name_of(tensor) + "/init", tensor.type, tensor.shape,
                               data=data, quantization=copy.deepcopy(tensor.quantization))
        tensor.isVariable = True
        tensor.buffer = self.empty_buffer
        return init

    # Backward.

    def backward(self, logits_grad):
        """The pruned backward operators, in reverse forward order."""
        ops, forward_ops = self.forward.ops, self.forward_ops
        # Tensors whose gradient some update upstream of them needs.
        wanted = set()
        for i, op in enumerate(forward_ops):
            if i in self.updates or any(int(op.inputs[s]) in wanted
                                        for s in graph.ACTIVATION_INPUTS[ops[i]]):
                wanted.add(int(op.outputs[0]))
        # Which ops emit a gradient op, and for which of their inputs.
        has_grad = {self.forward.logits}
        contributors = collections.defaultdict(list)
        emitted = []
        for i in reversed(range(len(ops))):
            op = forward_ops[i]
            if int(op.outputs[0]) not in has_grad:
                continue
            # Only wanted tensors get gradients, so this op updates or passes one on.
            needed = [(s, int(op.inputs[s])) for s in graph.ACTIVATION_INPUTS[ops[i]]
                      if int(op.inputs[s]) in wanted]
            emitted.append((i, needed))
            for _, x in needed:
                contributors[x].append(i)
                has_grad.add(x)
        # Emit, summing the partial gradients of tensors feeding several ops.
        grads = {self.forward.logits: logits_grad}
        partials = collections.defaultdict(list)
        operators = []
        for i, needed in emitted:
            input_grads = {}
            for slot, x in needed:
                if len(contributors[x]) == 1:
                    grads[x] = input_grads[slot] = self.add_grad_tensor(x)
                else:
                    input_grads[slot] = self.add_grad_tensor(x, f"/grad/{len(partials[x])}")
                    partials[x].append(input_grads[slot])
            operators.append(self.grad_op(i, grads[int(forward_ops[i].outputs[0])], input_grads))
            for _, x in needed:
                if x not in grads and len(partials[x]) == len(contributors[x]):
                    grads[x] = self.add_grad_tensor(x)
                    operators.append(
                        self.custom_op(GRAD_SUM, [self.mode] + partials[x], [grads[x]]))
        return operators

    def grad_op(self, i, y_grad, input_grads):
        """The gradient op of forward op `i`; `input_grads` maps input slots to tensors."""
        name = self.forward.ops[i]
        x_grad = input_grads.get(0, -1)
        if name in graph.TRAINABLE_OPS:
            return self.layer_grad_op(i, y_grad, x_grad)
        op = self.forward_ops[i]
        x, y = int(op.inputs[0]), int(op.outputs[0])
        options = op.builtinOptions
        activation = getattr(options, "fusedActivationFunction", 0)
        outputs, attrs = [x_grad], {}
        if name == "ADD":
            # Both operands get the same gradient: one output per operand
            # that needs it (absent outputs are omitted, never -1).
            inputs, attrs = [y_grad, y], {"activation": activation}
            outputs = [g for g in (x_grad, input_grads.get(1, -1)) if g >= 0]
        elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            inputs = [y_grad, y] + ([x] if name == "MAX_POOL_2D" else [])
            attrs = {"padding": options.padding, "stride_h": options.strideH,
                     "stride_w": options.strideW, "filter_h": options.filterHeight,
                     "filter_w": options.filterWidth, "activation": activation}
        elif name == "PAD":
            inputs = [y_grad, int(op.inputs[1])]
        else:  # MEAN, RESHAPE
            inputs = [y_grad]
        return self.custom_op(GRAD_OPS[name], [self.mode] + inputs, outputs, attrs)

    def layer_grad_op(self, i, y_grad, x_grad):
        """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED gradient + update."""
        name = self.forward.ops[i]
        op = self.forward_ops[i]
        layer = self.layers[i]
        update = self.updates.get(i, LayerUpdate())
        update_weights = update.channels is not None
        channels = -1
        if update_weights and len(update.channels) < layer.out_channels:
            channels = self.add_tensor(
                tflite.name_of(self.sg.tensors[layer.filter]) + "/channels",
                tflite.INT32, [len(update.channels)], data=update.channels)
        rng = self.rng if update_weights or update.bias else -1  # -1 with nearest rounding
        options = op.builtinOptions
        attrs = {}
        if name != "FULLY_CONNECTED":
            attrs = {"stride_h": options.strideH, "stride_w": options.strideW,
                     "dilation_h": options.dilationHFactor, "dilation_w": options.dilationWFactor,
                     "padding": options.padding}
        if name == "DEPTHWISE_CONV_2D":
            attrs["depth_multiplier"] = 1
        attrs.update(activation=getattr(options, "fusedActivationFunction", 0),
                     update_weights=update_weights, update_bias=update.bias,
                     qas=self.scheme.qas, rounding=int(self.rounding))
        # x only for the weight gradient, so it need not stay alive for a bias
        # update; that needs only x's scale.
        x = layer.input if update_weights else -1
        if x < 0 and update.bias:
            attrs["input_scale"] = float(self.sg.tensors[layer.input].quantization.scale[0])
        inputs = [self.mode, self.hparams, y_grad, layer.output, x, layer.filter,
                  layer.bias, channels, rng]
        return self.custom_op(GRAD_OPS[name], inputs, [x_grad] if x_grad >= 0 else [], attrs)


def _has_data(buffer):
    return buffer.data is not None and len(buffer.data) > 0
