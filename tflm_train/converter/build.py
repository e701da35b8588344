"""Builds the training graph of docs/format.md from an int8 inference model."""
import collections
import copy
import json
import math
import warnings

import numpy as np
from flatbuffers import flexbuffers

from . import fusion, graph, head, tflite, training_info
from .errors import ConversionError
from .scheme import LayerUpdate
from .training_info import (LossFunction, Rounding, Schedule, StateKind, Trainable,
                            TrainableKind)

INIT_VARIABLES = "TFLMTRAIN_INIT_VARIABLES"
GRAD_SUM = "TFLMTRAIN_GRAD_SUM"
OPTIMIZER_STEP = "TFLMTRAIN_OPTIMIZER_STEP"
IMPRINT = "TFLMTRAIN_IMPRINT"
PACK_MASK = "TFLMTRAIN_PACK_MASK"
# Private switches of two memory optimisations (tests compare training with
# and without them, bit for bit): gradient ops that read an int8 output only
# as their activation mask read a 1-bit packed mask instead (pack_masks); a
# spatial MEAN's gradient is fused into the convolution before it
# (fused_means).
_PACK_MASKS = True
_FUSE_MEAN_GRADS = True
# Layer op -> its forward op when its weights train on a strict subset of
# output channels (docs/format.md, "Channel-sliced weights").
SLICED_OPS = {"CONV_2D": "TFLMTRAIN_CONV_2D_SLICED",
              "FULLY_CONNECTED": "TFLMTRAIN_FULLY_CONNECTED_SLICED"}
# Output layer op -> the op that recomputes its real-valued output.
REAL_OUTPUT_OPS = {"FULLY_CONNECTED": "TFLMTRAIN_FULLY_CONNECTED_REAL_OUTPUT",
                   "CONV_2D": "TFLMTRAIN_CONV_2D_REAL_OUTPUT"}
# Scheme "loss" -> (loss op, metadata LossFunction).
LOSS_OPS = {
    "cross_entropy": ("TFLMTRAIN_SOFTMAX_CROSS_ENTROPY_V2", LossFunction.CROSS_ENTROPY),
    "mse": ("TFLMTRAIN_MEAN_SQUARED_ERROR", LossFunction.MEAN_SQUARED_ERROR),
    "mae": ("TFLMTRAIN_MEAN_ABSOLUTE_ERROR", LossFunction.MEAN_ABSOLUTE_ERROR),
}
FRESH_HEAD_RANGE = [-1.0, 1.0]
# Below this cross-entropy bound of the calibrated int8 output, convert warns.
NARROW_OUTPUT_LOSS_BOUND = 0.05
# Forward op -> its gradient op (SQUEEZE and EXPAND_DIMS move no element:
# their gradient is RESHAPE's).
GRAD_OPS = {op: f"TFLMTRAIN_{op}_GRAD" for op in graph.GRADIENT_OPS} | {
    "SQUEEZE": "TFLMTRAIN_RESHAPE_GRAD", "EXPAND_DIMS": "TFLMTRAIN_RESHAPE_GRAD"}

# Forward ops whose gradient op reads and writes int8 gradients (scheme
# "gradients": "int8", docs/format.md "int8 gradients").
INT8_GRADIENT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "QUANTIZE",
                     "MEAN", "AVERAGE_POOL_2D", "PAD", "RESHAPE", "SQUEEZE", "EXPAND_DIMS")
# Inputs of a layer gradient before the scale of an int8 y/grad (the
# channel-slice slot, -1 when absent, is then listed).
LAYER_GRAD_INPUTS = 14

LABEL, TARGET = "tflm_train/label", "tflm_train/target"
MODE, LOSS = "tflm_train/mode", "tflm_train/loss"
HPARAMS, RNG = "tflm_train/hparams", "tflm_train/rng"
REAL_OUTPUT, OUTPUT_RANGE = "tflm_train/real_output", "tflm_train/output_range"
STEP, STEP_LR = "tflm_train/step", "tflm_train/optimizer_step"
IMPRINTED = "tflm_train/imprinted"
# Fuse frozen 1x1 CONV_2D -> DEPTHWISE_CONV_2D pairs (fusion.py); off only in
# tests that compare against the unfused graph.
_FUSE_EXPAND_DEPTHWISE = True


class ConversionWarning(UserWarning):
    """Something in the model that will likely limit what training reaches."""


def build_training_model(int8_tflite, scheme):
    """Inference .tflite bytes + a validated Scheme -> training .tflite bytes."""
    model = tflite.read_model(int8_tflite)
    if tflite.metadata_bytes(model, training_info.METADATA_NAME) is not None:
        raise ConversionError("the model is already a training model; "
                              "convert its export_inference_model() output instead")
    forward = graph.analyze(model)
    if scheme.head is not None:
        head.replace_head(model, forward, scheme.head.num_classes)
        forward = graph.analyze(model)
    _check_loss(model.subgraphs[0], forward, scheme.loss)
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
        self.int8_gradients = scheme.gradients == "int8"
        # Quantizing int8 gradient ops round stochastically (option
        # grad_rounding, drawing from the rng).
        self.stochastic_gradients = scheme.gradient_rounding == "stochastic"
        self.grad_scales = {}  # int8 gradient tensor -> its scale tensor
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
        """A gradient tensor shaped like tensor `of`: float32, or int8 with a
        float32 [1] scale tensor (`grad_scales`)."""
        tensor = self.sg.tensors[of]
        name = tflite.name_of(tensor) + suffix
        if not self.int8_gradients:
            return self.add_tensor(name, tflite.FLOAT32, tensor.shape)
        grad = self.add_tensor(name, tflite.INT8, tensor.shape)
        self.grad_scales[grad] = self.add_tensor(name + "/scale", tflite.FLOAT32, [1])
        return grad

    def with_grad_scales(self, op):
        """Lists the scale of each int8 gradient the op reads (writes) after
        its inputs (outputs), in their order."""
        for field in ("inputs", "outputs"):
            tensors = [int(t) for t in getattr(op, field)]
            scales = [self.grad_scales[t] for t in tensors if t in self.grad_scales]
            setattr(op, field, np.asarray(tensors + scales, dtype=np.int32))
        return op

    def check_int8_gradient(self, i):
        """Raises unless forward op i's gradient op has an int8 version."""
        name = self.forward.ops[i]
        op = self.forward_ops[i]
        if name == "ADD":
            shapes = {tuple(int(d) for d in self.sg.tensors[int(t)].shape)
                      for t in list(op.inputs) + list(op.outputs)}
            if len(shapes) == 1:
                return
        elif name in INT8_GRADIENT_OPS:
            return
        why = "a broadcasting ADD" if name == "ADD" else name
        raise ConversionError(
            f"scheme \"gradients\": \"int8\": the gradient of {why} at operator {i} has no "
            f"int8 version (int8 gradients pass {', '.join(INT8_GRADIENT_OPS)}); use "
            "\"gradients\": \"float32\", or train only layers after operator "
            f"{i}")

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
        head = forward.output_layer
        opt = self.scheme.optimizer
        loss_op, loss_function = LOSS_OPS[self.scheme.loss]
        if loss_function == LossFunction.CROSS_ENTROPY:
            self.label = self.add_tensor(LABEL, tflite.INT32, [1])
        else:
            self.label = self.add_tensor(TARGET, tflite.FLOAT32, sg.tensors[forward.output].shape)
        self.mode = self.add_tensor(MODE, tflite.INT32, [1])
        self.hparams = self.add_tensor(HPARAMS, tflite.FLOAT32, [2],
                                       data=[opt.lr, opt.effective_bias_lr])
        self.updates = {layer.op_index: update
                        for layer, update in zip(forward.layers, updates, strict=True)
                        if update.bias or update.channels is not None}
        self.layers = {layer.op_index: layer for layer in forward.layers}
        # op index -> (slice variable, channels tensor) of channel-sliced layers
        self.slices = {}
        wanted = self.wanted_tensors()
        self.fused = fusion.fusable_pairs(
            self.model, forward.ops, self.forward_ops,
            lambda i: int(self.forward_ops[i].outputs[0]) not in wanted
            and i != forward.output_layer.op_index,
        ) if _FUSE_EXPAND_DEPTHWISE else []
        trainables = self.make_trainables()
        pairs = [(t.initializer, t.variable) for t in trainables]
        self.rng = -1
        if self.rounding == Rounding.STOCHASTIC or self.stochastic_gradients:
            self.rng = self.add_tensor(RNG, tflite.INT32, [1], variable=True)
            seed = np.array([opt.seed], dtype=np.uint32).view(np.int32)
            pairs.append((self.add_tensor(RNG + "/init", tflite.INT32, [1], data=seed), self.rng))
        self.output_range = self.add_tensor(OUTPUT_RANGE, tflite.FLOAT32, [2], variable=True)
        # A fresh head starts at [-1, 1] (its calibrated range was the old
        # classifier's); training and imprinting widen it.
        initial_range = (FRESH_HEAD_RANGE if self.scheme.head is not None
                         else _int8_range(sg.tensors[head.output]))
        range_init = self.add_tensor(OUTPUT_RANGE + "/init", tflite.FLOAT32, [2],
                                     data=initial_range)
        pairs.append((range_init, self.output_range))
        # Optimizer state, zero-initialised from one-element constants.
        self.state = []  # (variable, StateKind)
        self.zeros = {}
        self.step = self.add_state(STEP, tflite.INT32, [1], StateKind.STEP_COUNTER)
        self.slots = self.make_optimizer_slots(trainables)
        self.imprint = None
        if self.scheme.head is not None and self.scheme.head.init == "imprint":
            filter_shape = [int(d) for d in sg.tensors[head.filter].shape]
            n, depth = filter_shape[0], int(np.prod(filter_shape[1:]))
            self.imprint = (
                self.add_state("tflm_train/imprint/counts", tflite.INT32, [n],
                               StateKind.IMPRINT_COUNTS),
                self.add_state("tflm_train/imprint/sums", tflite.FLOAT32, [n, depth],
                               StateKind.IMPRINT_SUMS))
        pairs += [(self.zero(sg.tensors[v].type), v) for v, _ in self.state]
        self.loss = self.add_tensor(LOSS, tflite.FLOAT32, [1])
        head_shape = sg.tensors[head.output].shape
        self.real_output = self.add_tensor(REAL_OUTPUT, tflite.FLOAT32, head_shape)
        real_grad = self.add_tensor(REAL_OUTPUT + "/grad", tflite.FLOAT32, head_shape)

        operators = [self.custom_op(INIT_VARIABLES, [i for i, _ in pairs], [v for _, v in pairs])]
        operators += fusion.fuse(
            self.model, [self.sliced_op(i) if i in self.slices else op
                         for i, op in enumerate(self.forward_ops)], self.fused)
        num_forward_ops = len(operators) - 1  # after fusion: fewer ops than self.forward_ops
        operators.append(self.real_output_op(head))
        operators.append(self.custom_op(loss_op, [self.real_output, self.label, self.mode],
                                        [self.loss, real_grad]))
        operators += self.optimizer_ops(head)
        self.mask_reads = []
        operators += self.backward(real_grad)
        operators += self.clear_recurrent_states()
        if _PACK_MASKS:
            operators, moved = self.pack_masks(operators)
            num_forward_ops = moved[num_forward_ops + 1] - 1
            for t in trainables:
                t.op_index = moved[t.op_index]
        sg.operators = operators
        sg.inputs = np.asarray([forward.input, self.label, self.mode], dtype=np.int32)
        # The trained state after the loss, so firmware reads it as graph outputs
        # (TFLM exposes outputs without preserve_all_tensors); then the
        # real-valued output, which as a graph output stays readable after the
        # backward pass (it costs its few bytes until the end of the step).
        state = [t.variable for t in trainables] + ([self.rng] if self.rng >= 0 else [])
        state.append(self.output_range)
        state += [v for v, _ in self.state]
        sg.outputs = np.asarray([forward.output, self.loss] + state + [self.real_output],
                                dtype=np.int32)

        info = training_info.TrainingInfo(
            trainables=trainables,
            optimizer=training_info.Optimizer(
                type=opt.type, lr=opt.lr, bias_lr=opt.effective_bias_lr,
                rounding=self.rounding, qas=self.scheme.qas, seed=opt.seed,
                schedule=Schedule[opt.schedule.upper()], warmup_steps=opt.warmup_steps,
                decay_steps=opt.decay_steps, alpha=opt.alpha, decay_rate=opt.decay_rate,
                momentum=opt.momentum, batch_size=opt.batch_size),
            input=forward.input, label=self.label, mode=self.mode, logits=forward.logits,
            loss=self.loss, hparams=self.hparams, rng=self.rng,
            num_classes=forward.num_classes if loss_function == LossFunction.CROSS_ENTROPY else 0,
            scheme_json=json.dumps(self.scheme.to_dict(), sort_keys=True),
            first_forward_op=1, num_forward_ops=num_forward_ops,
            loss_function=loss_function, real_output=self.real_output,
            output_range=self.output_range, output_range_initializer=range_init,
            step=self.step, optimizer_state=[v for v, _ in self.state],
            optimizer_state_kinds=[k for _, k in self.state])
        entry = tflite.schema().MetadataT()
        entry.name = training_info.METADATA_NAME
        entry.buffer = tflite.new_buffer(
            self.model, np.frombuffer(training_info.encode(info), dtype=np.uint8))
        self.model.metadata = (self.model.metadata or []) + [entry]
        tflite.drop_unused_buffers(self.model)
        return tflite.write_model(self.model)

    def training_op_index(self, i):
        """Index in the training graph of forward operator i (after
        INIT_VARIABLES; each fused pair takes its depthwise's place)."""
        return 1 + i - sum(e < i for e, _ in self.fused)

    def wanted_tensors(self):
        """Tensors whose gradient some update upstream of them needs."""
        ops, wanted = self.forward.ops, set()
        for i, op in enumerate(self.forward_ops):
            if i in self.updates or any(int(op.inputs[s]) in wanted
                                        for s in graph.activation_slots(ops[i], op)):
                wanted.add(int(op.outputs[0]))
        return wanted

    def refuse_backward(self, i):
        """Raises: op i runs forward only (graph.ForwardGraph.forward_only),
        but the scheme trains it or a layer before it."""
        update = self.updates.get(i, LayerUpdate())
        why = ("the scheme trains it" if update.bias or update.channels is not None else
               f"the layer trained at operator {min(self.updates)} is before it, so the "
               "gradient must pass through it")
        raise ConversionError(
            f"{self.forward.ops[i]} at operator {i} {self.forward.forward_only[i]}: it runs "
            f"forward only, but {why}; train only layers after operator {i} (e.g. "
            "\"preset\": \"classifier\", or bias_update_layers / weight_update on later "
            "layers)")

    def optimizer_ops(self, head):
        """IMPRINT (an imprinted fresh head), then OPTIMIZER_STEP, whose
        output `step_lr` the update ops read."""
        ops, imprinted = [], -1
        if self.imprint is not None:
            imprinted = self.add_tensor(IMPRINTED, tflite.INT32, [1])
            counts, sums = self.imprint
            ops.append(self.custom_op(
                IMPRINT, [self.mode, self.label, head.input, head.filter, head.bias, counts, sums,
                          self.output_range],
                [imprinted], {"shots": self.scheme.head.shots}))
        opt = self.scheme.optimizer
        self.step_lr = self.add_tensor(STEP_LR, tflite.FLOAT32, [3])
        ops.append(self.custom_op(
            OPTIMIZER_STEP, [self.mode, self.hparams, self.step, imprinted], [self.step_lr],
            {"schedule": int(Schedule[opt.schedule.upper()]), "warmup_steps": opt.warmup_steps,
             "decay_steps": opt.decay_steps, "alpha": float(opt.alpha),
             "decay_rate": float(opt.decay_rate), "batch_size": opt.batch_size}))
        return ops

    def real_output_op(self, head):
        """Recomputes the output layer's value in real arithmetic for the loss."""
        options = self.forward_ops[head.op_index].builtinOptions
        attrs = {"activation": getattr(options, "fusedActivationFunction", 0)}
        if head.op == "CONV_2D":
            attrs.update(stride_h=options.strideH, stride_w=options.strideW,
                         dilation_h=options.dilationHFactor, dilation_w=options.dilationWFactor,
                         padding=options.padding)
        inputs = [self.mode, head.input, head.filter, head.bias, self.output_range]
        return self.custom_op(REAL_OUTPUT_OPS[head.op], inputs, [self.real_output], attrs)

    def clear_recurrent_states(self):
        """[INIT_VARIABLES every_invoke] refilling every recurrent state
        variable (LSTM hidden and cell state) with its zero point after each
        step, so each sample starts from the zero state, as Keras's
        non-stateful LSTM does; [] when the model has none. (TFLM clears
        them only on reset, which would also reset the trained weights.)"""
        states = [int(op.inputs[slot]) for op, name in zip(self.forward_ops, self.forward.ops)
                  for slot in graph.RECURRENT_STATE_INPUTS.get(name, ())]
        if not states:
            return []
        fills, sources = {}, []
        for state in states:
            tensor = self.sg.tensors[state]
            q = tensor.quantization
            zero_point = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None \
                and len(q.zeroPoint) else 0
            key = (tensor.type, zero_point)
            if key not in fills:
                fills[key] = self.add_tensor(
                    f"tflm_train/state_zero_{tflite.TYPE_NAMES[tensor.type]}_{zero_point}",
                    tensor.type, [1], data=[zero_point])
            sources.append(fills[key])
        return [self.custom_op(INIT_VARIABLES, sources, states, {"every_invoke": 1})]

    def zero(self, tensor_type):
        """The one-element zero constant INIT_VARIABLES fills state with."""
        if tensor_type not in self.zeros:
            self.zeros[tensor_type] = self.add_tensor(
                f"tflm_train/zero_{tflite.TYPE_NAMES[tensor_type].lower()}", tensor_type, [1],
                data=[0])
        return self.zeros[tensor_type]

    def add_state(self, name, tensor_type, shape, kind):
        """A zero-initialised optimizer-state variable."""
        index = self.add_tensor(name, tensor_type, shape, variable=True)
        self.state.append((index, kind))
        return index

    def make_optimizer_slots(self, trainables):
        """Per trained tensor (variable index), its [accumulator, velocity]
        (-1 when not kept): one float per trained element."""
        opt = self.scheme.optimizer
        slots = {}
        sliced = {v for v, _ in self.slices.values()}
        for t in trainables:
            tensor = self.sg.tensors[t.variable]
            elements = int(np.prod(tensor.shape))
            if t.channels and t.variable not in sliced:
                out_channels = self.layers[t.op_index - 1].out_channels
                elements = elements // out_channels * len(t.channels)
            name = tflite.name_of(tensor)
            slots[t.variable] = [
                self.add_state(f"{name}/accumulator", tflite.FLOAT32, [elements],
                               StateKind.ACCUMULATOR) if opt.batch_size > 1 else -1,
                self.add_state(f"{name}/velocity", tflite.FLOAT32, [elements],
                               StateKind.VELOCITY) if opt.momentum > 0 else -1]
        return slots

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
                if kind == TrainableKind.WEIGHT and not all_channels and self.sliceable(layer):
                    variable, initializer = self.make_slice(layer, channels)
                else:
                    variable, initializer = index, self.make_variable(index)
                trainables.append(Trainable(
                    variable=variable, initializer=initializer, kind=kind,
                    op_index=self.training_op_index(op_index), layer_name=layer.name,
                    channels=[] if all_channels else list(channels),
                    scales=[float(s) for s in scales]))
        return trainables

    def sliceable(self, layer):
        """Whether a partial weight update of `layer` keeps only the trained
        channels in RAM: CONV_2D / FULLY_CONNECTED except the output layer
        (its real-valued output and imprinting read the whole filter) and
        grouped convolutions; DEPTHWISE_CONV_2D keeps the whole variable."""
        if layer.op not in SLICED_OPS or layer is self.forward.output_layer:
            return False
        filter_shape = self.sg.tensors[layer.filter].shape
        return layer.op != "CONV_2D" or \
            int(filter_shape[3]) == int(self.sg.tensors[layer.input].shape[3])

    def make_slice(self, layer, channels):
        """The variable [k, ...] holding the trained output channels of
        `layer`'s filter (which stays a constant), its initialiser and the
        channels tensor; returns (variable, initializer)."""
        tensor = self.sg.tensors[layer.filter]
        name = tflite.name_of(tensor)
        rows = tflite.tensor_data(self.model, tensor)[np.asarray(channels)]
        q = tflite.schema().QuantizationParametersT()
        scales = np.asarray(tensor.quantization.scale, np.float32)
        q.scale = (scales if len(scales) == 1 else scales[np.asarray(channels)]).tolist()
        q.zeroPoint = [0] * len(q.scale)
        q.quantizedDimension = 0
        shape = [len(channels)] + [int(d) for d in tensor.shape[1:]]
        variable = self.add_tensor(name + "/slice", tflite.INT8, shape,
                                   quantization=q, variable=True)
        initializer = self.add_tensor(name + "/slice/init", tflite.INT8, shape, data=rows,
                                      quantization=copy.deepcopy(q))
        channel_list = self.add_tensor(name + "/channels", tflite.INT32, [len(channels)],
                                       data=channels)
        self.slices[layer.op_index] = (variable, channel_list)
        return variable, initializer

    def sliced_op(self, i):
        """The forward op of channel-sliced layer i: the builtin's options,
        inputs [x, filter, bias, slice, channels]."""
        op, layer = self.forward_ops[i], self.layers[i]
        options = op.builtinOptions
        attrs = {"activation": getattr(options, "fusedActivationFunction", 0)}
        if layer.op == "CONV_2D":
            attrs.update(stride_h=options.strideH, stride_w=options.strideW,
                         dilation_h=options.dilationHFactor,
                         dilation_w=options.dilationWFactor, padding=options.padding)
        else:
            attrs["keep_num_dims"] = int(bool(getattr(options, "keepNumDims", False)))
        inputs = [int(t) for t in op.inputs[:3]] + [-1] * (3 - len(op.inputs))
        return self.custom_op(SLICED_OPS[layer.op], inputs + list(self.slices[i]),
                              [int(op.outputs[0])], attrs)

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

    def backward(self, real_grad):
        """The pruned backward operators, in reverse forward order, from the
        gradient of the output layer's real-valued output."""
        ops, forward_ops = self.forward.ops, self.forward_ops
        wanted = self.wanted_tensors()
        # Which ops emit a gradient op, and for which of their inputs.
        head_output = self.forward.output_layer.output
        has_grad = {head_output}
        contributors = collections.defaultdict(list)
        emitted = []
        for i in reversed(range(len(ops))):
            op = forward_ops[i]
            if int(op.outputs[0]) not in has_grad:
                continue
            # Only wanted tensors get gradients, so this op updates or passes one on.
            needed = [(s, int(op.inputs[s])) for s in graph.activation_slots(ops[i], op)
                      if int(op.inputs[s]) in wanted]
            if i in self.forward.forward_only:
                self.refuse_backward(i)
            if self.int8_gradients:
                self.check_int8_gradient(i)
            emitted.append((i, needed))
            for _, x in needed:
                contributors[x].append(i)
                has_grad.add(x)
        self.fused_means = self.fused_means_of(emitted, contributors)
        # Emit, summing the partial gradients of tensors feeding several ops.
        grads = {head_output: real_grad}
        partials = collections.defaultdict(list)
        operators = []
        for i, needed in emitted:
            if i in self.fused_means:  # the convolution reads the MEAN's y/grad
                grads[needed[0][1]] = grads[int(forward_ops[i].outputs[0])]
                continue
            input_grads = {}
            for slot, x in needed:
                if len(contributors[x]) == 1:
                    grads[x] = input_grads[slot] = self.add_grad_tensor(x)
                else:
                    input_grads[slot] = self.add_grad_tensor(x, f"/grad/{len(partials[x])}")
                    partials[x].append(input_grads[slot])
            grad = self.with_grad_scales(
                self.grad_op(i, grads[int(forward_ops[i].outputs[0])], input_grads))
            if ops[i] == "AVERAGE_POOL_2D":
                grad = self.with_grad_rng(grad)
            operators.append(grad)
            for _, x in needed:
                if x not in grads and len(partials[x]) == len(contributors[x]):
                    grads[x] = self.add_grad_tensor(x)
                    operators.append(self.with_grad_rng(self.with_grad_scales(
                        self.custom_op(GRAD_SUM, [self.mode] + partials[x], [grads[x]]))))
        return operators

    def with_grad_rng(self, op):
        """With stochastic int8 gradient rounding, an op that quantizes its
        int8 gradient (GRAD_SUM, AVERAGE_POOL_2D's gradient) takes option
        grad_rounding 1 and the rng as its last input (after the scales)."""
        if self.stochastic_gradients:
            op.inputs = np.append(op.inputs, np.int32(self.rng)).astype(np.int32)
            options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, dtype=np.uint8)))
            options["grad_rounding"] = 1
            op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), dtype=np.uint8)
        return op

    def fused_means_of(self, emitted, contributors):
        """{MEAN operator: its input's (H, W)} for the spatial MEANs whose
        gradient the convolution before them computes (options
        dy_broadcast_h / _w): the MEAN is the only reader of the
        convolution's output, which is not the output layer's. The [N, C]
        gradient then never spreads to a [N, H, W, C] tensor."""
        if not _FUSE_MEAN_GRADS:
            return {}
        made_by = graph.producers(self.sg)
        readers = collections.Counter(int(t) for op in self.forward_ops for t in op.inputs)
        fused = {}
        for i, needed in emitted:
            if self.forward.ops[i] != "MEAN" or not needed:
                continue
            x = needed[0][1]
            layer = self.layers.get(made_by.get(x))
            if (layer is not None and layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D")
                    and layer is not self.forward.output_layer and readers[x] == 1
                    and x != self.forward.output and contributors[x] == [i]):
                shape = self.sg.tensors[x].shape
                fused[i] = (int(shape[1]), int(shape[2]))
        return fused

    def pack_masks(self, operators):
        """Frees the int8 outputs the backward pass reads only as activation
        masks: each such y is packed (TFLMTRAIN_PACK_MASK, 1 bit an element)
        right after its last other reader, inside the forward pass when that
        is a forward op (the forward range first_forward_op / num_forward_ops
        then counts the PACK_MASK ops in it; export drops them), and its mask
        readers read the bits instead. Returns the operators and, for each
        old operator index (and the end), its new index. A y
        that a later operator reads for its values (a weight gradient's x,
        HARD_SWISH, MUL...), or that is a graph output, stays int8. Each y
        has one mask reader, its producer's gradient (masks of different
        ranges would each need their own packing: a y with mask reads of
        different ranges stays int8)."""
        by_y = collections.defaultdict(list)
        for op, slot, y, bounds in self.mask_reads:
            by_y[y].append((op, slot, bounds))
        outputs = {int(t) for t in self.sg.outputs}
        inserts = collections.defaultdict(list)  # position -> PACK_MASK ops
        for y, reads in by_y.items():
            if y in outputs or len({bounds for _, _, bounds in reads}) != 1:
                continue
            mask_slots = {(id(op), slot) for op, slot, _ in reads}
            mask_at, value_at = [], []
            for k, op in enumerate(operators):
                for slot, t in enumerate(op.inputs):
                    if int(t) == y:
                        (mask_at if (id(op), slot) in mask_slots else value_at).append(k)
            if max(value_at, default=-1) > min(mask_at):
                continue
            elements = int(np.prod(self.sg.tensors[y].shape))
            bits = self.add_tensor(tflite.name_of(self.sg.tensors[y]) + "/mask",
                                   tflite.UINT8, [(elements + 7) // 8])
            act_min, act_max = reads[0][2]
            inserts[max(value_at, default=-1) + 1].append(
                self.custom_op(PACK_MASK, [self.mode, y], [bits],
                               {"act_min": act_min, "act_max": act_max}))
            for op, slot, _ in reads:
                op.inputs[slot] = bits
        packed, moved = [], []
        for k, op in enumerate(operators):
            packed += inserts.get(k, [])
            moved.append(len(packed))
            packed.append(op)
        moved.append(len(packed))
        return packed, moved

    def mask_read(self, op, slot, i):
        """Records that gradient op `op` reads forward op i's int8 output at
        input `slot` only as its activation mask (pack_masks)."""
        forward = self.forward_ops[i]
        y = int(op.inputs[slot])
        activation = getattr(forward.builtinOptions, "fusedActivationFunction", 0)
        self.mask_reads.append(
            (op, slot, y, _activation_range(activation, self.sg.tensors[y])))
        return op

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
        elif name in ("QUANTIZE", "LOGISTIC", "TANH"):
            # QUANTIZE (an int8 requantize) is masked by its clamp; LOGISTIC
            # and TANH also read their derivative from the int8 output.
            inputs = [y_grad, y]
        elif name in ("HARD_SWISH", "LEAKY_RELU"):  # the derivative reads x
            inputs = [y_grad, x, y]
            if name == "LEAKY_RELU":
                attrs = {"alpha": float(options.alpha)}
        elif name == "MUL":
            # Each operand's gradient reads the other operand; an operand no
            # gradient reads is -1 (it need not stay alive).
            a_grad, b_grad = x_grad, input_grads.get(1, -1)
            a, b = int(op.inputs[0]), int(op.inputs[1])
            inputs = [y_grad, y, a if b_grad >= 0 else -1, b if a_grad >= 0 else -1]
            outputs = [g for g in (a_grad, b_grad) if g >= 0]
            attrs = {"activation": activation, "grad_a": int(a_grad >= 0),
                     "grad_b": int(b_grad >= 0)}
        elif name == "CONCATENATION":
            inputs, outputs, attrs = self.concatenation_grad(op, y_grad, input_grads)
        elif name == "TRANSPOSE":
            inputs = [y_grad, int(op.inputs[1])]
        elif name == "STRIDED_SLICE":
            inputs = [y_grad] + [int(t) for t in op.inputs[1:4]]
            attrs = {"begin_mask": options.beginMask, "end_mask": options.endMask,
                     "shrink_axis_mask": options.shrinkAxisMask}
        else:  # MEAN, RESHAPE, SQUEEZE, EXPAND_DIMS
            inputs = [y_grad]
        grad = self.custom_op(GRAD_OPS[name], [self.mode] + inputs, outputs, attrs)
        # These read y (input 2) only as their activation mask.
        if name in ("ADD", "QUANTIZE", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
            self.mask_read(grad, 2, i)
        return grad

    def concatenation_grad(self, op, y_grad, input_grads):
        """(inputs, outputs, options) of CONCATENATION's gradient: one output
        per input that needs a gradient, each at its offset along the axis."""
        shapes = [self.sg.tensors[int(t)].shape for t in op.inputs]
        axis = int(op.builtinOptions.axis) % len(shapes[0])
        starts = np.cumsum([0] + [int(s[axis]) for s in shapes[:-1]])
        slots = sorted(input_grads)
        y = self.sg.tensors[int(op.outputs[0])]
        offsets = self.add_tensor(tflite.name_of(y) + "/grad_offsets", tflite.INT32,
                                  [len(slots)], data=[int(starts[s]) for s in slots])
        return ([y_grad, offsets], [input_grads[s] for s in slots], {"axis": axis})

    def layer_grad_op(self, i, y_grad, x_grad):
        """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED gradient + update."""
        name = self.forward.ops[i]
        op = self.forward_ops[i]
        layer = self.layers[i]
        update = self.updates.get(i, LayerUpdate())
        update_weights = update.channels is not None
        channels, weight_slice = -1, []
        if i in self.slices:
            weight_slice = [self.slices[i][0]]
            channels = self.slices[i][1]
        elif update_weights and len(update.channels) < layer.out_channels:
            channels = self.add_tensor(
                tflite.name_of(self.sg.tensors[layer.filter]) + "/channels",
                tflite.INT32, [len(update.channels)], data=update.channels)
        # The rng: for stochastic rounding of the update and / or of an int8
        # x/grad; else -1.
        stochastic_dx = self.stochastic_gradients and x_grad >= 0
        rng = self.rng if ((self.rounding == Rounding.STOCHASTIC
                            and (update_weights or update.bias)) or stochastic_dx) else -1
        options = op.builtinOptions
        attrs = {}
        if name != "FULLY_CONNECTED":
            attrs = {"stride_h": options.strideH, "stride_w": options.strideW,
                     "dilation_h": options.dilationHFactor, "dilation_w": options.dilationWFactor,
                     "padding": options.padding}
        if name == "DEPTHWISE_CONV_2D":
            attrs["depth_multiplier"] = graph.depthwise_multiplier(self.sg, layer)
        opt = self.scheme.optimizer
        fused_mean = [hw for m, hw in self.fused_means.items()
                      if int(self.forward_ops[m].inputs[0]) == layer.output]
        if fused_mean:
            attrs["dy_broadcast_h"], attrs["dy_broadcast_w"] = fused_mean[0]
        if stochastic_dx:
            attrs["grad_rounding"] = 1
        attrs.update(activation=getattr(options, "fusedActivationFunction", 0),
                     update_weights=update_weights, update_bias=update.bias,
                     qas=self.scheme.qas, rounding=int(self.rounding),
                     batch_size=opt.batch_size, momentum=float(opt.momentum))
        # x only for the weight gradient, so it need not stay alive for a bias
        # update; that needs only x's scale.
        x = layer.input if update_weights else -1
        if x < 0 and update.bias:
            attrs["input_scale"] = float(self.sg.tensors[layer.input].quantization.scale[0])
        # The output layer's gradient is masked by its real-valued output
        # (never by the saturated int8 one).
        y = self.real_output if layer is self.forward.output_layer else layer.output
        weight_variable = self.slices[i][0] if i in self.slices else layer.filter
        weight_slots = self.slots.get(weight_variable, [-1, -1]) if update_weights else [-1, -1]
        bias_slots = self.slots.get(layer.bias, [-1, -1]) if update.bias else [-1, -1]
        inputs = [self.mode, self.step_lr, y_grad, y, x, layer.filter, layer.bias, channels,
                  rng] + weight_slots + bias_slots + weight_slice
        if self.int8_gradients:
            inputs += [-1] * (LAYER_GRAD_INPUTS - len(inputs))
        grad = self.custom_op(GRAD_OPS[name], inputs, [x_grad] if x_grad >= 0 else [], attrs)
        if layer is not self.forward.output_layer:
            self.mask_read(grad, 3, i)  # y (input 3) is only the mask
        return grad


def _activation_range(activation, tensor):
    """(act_min, act_max) of a fused activation on int8 `tensor`, as the
    runtime's MaskFor forms it (CalculateActivationRangeInt8): bounds
    zero_point + round(bound / scale), the division in single precision and
    rounding half away from zero, clamped to int8."""
    q = tensor.quantization
    scale, zero_point = np.float32(q.scale[0]), int(q.zeroPoint[0])

    def bound(value):
        v = float(np.float32(value) / scale)  # exact in double
        return zero_point + int(math.copysign(math.floor(abs(v) + 0.5), v))

    lo, hi = -128, 127
    if activation in (1, 2, 3):  # RELU, RELU_N1_TO_1, RELU6
        lo = max(lo, bound(-1.0 if activation == 2 else 0.0))
    if activation in (2, 3):
        hi = min(hi, bound(1.0 if activation == 2 else 6.0))
    return lo, hi


def _int8_range(tensor):
    """[min, max] real values an int8 tensor can hold."""
    q = tensor.quantization
    scale, zero_point = float(q.scale[0]), int(q.zeroPoint[0])
    return [scale * (-128 - zero_point), scale * (127 - zero_point)]


def _check_loss(sg, forward, loss):
    """Refuses a loss that cannot fit the model's output; warns about a
    calibrated output range that bounds the int8 model's cross-entropy."""
    output = sg.tensors[forward.output]
    shape = [int(d) for d in output.shape]
    name = tflite.name_of(output)
    if loss != "cross_entropy":
        return
    if forward.num_classes < 2 or int(np.prod(shape)) != forward.num_classes:
        raise ConversionError(
            f"model output '{name}' has shape {shape}; the cross-entropy loss needs [1, C] "
            "class logits with C >= 2: for a regression model set \"loss\": \"mse\" "
            "(or \"mae\") in the scheme")
    if shape == [int(d) for d in sg.tensors[forward.input].shape]:
        raise ConversionError(
            f"model output '{name}' has the shape of the model input {shape} (an "
            "autoencoder?); cross-entropy over its outputs is not meaningful: set "
            "\"loss\": \"mse\" (or \"mae\") in the scheme")
    low, high = _int8_range(sg.tensors[forward.output_layer.output])
    # Best case of the int8 output: the label's logit at the top of the range,
    # every other one at the bottom.
    bound = math.log1p((forward.num_classes - 1) * math.exp(-(high - low)))
    if bound > NARROW_OUTPUT_LOSS_BOUND:
        warnings.warn(
            f"the output layer's calibrated int8 range [{low:.3g}, {high:.3g}] bounds the "
            f"int8 model's cross-entropy at >= {bound:.3g} (confidence <= "
            f"{math.exp(-bound):.1%}); training reads the real-valued output, and export "
            "sets the output range from the trained outputs", ConversionWarning, stacklevel=3)


def _has_data(buffer):
    return buffer.data is not None and len(buffer.data) > 0
