"""The `TrainingInfo` metadata table (schema/training_info.fbs) in Python.

Encoder and decoder write and read the flatbuffer by field slot: slot ids
are the fields' declaration order in the .fbs and must stay in step with it
(tests/test_converter.py checks them against `flatc`).
"""
import dataclasses
import enum
import struct

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from .errors import ConversionError

FORMAT_VERSION = 3
FILE_IDENTIFIER = b"TFTR"
METADATA_NAME = "tflm_train.training_info"


class TrainableKind(enum.IntEnum):
    WEIGHT = 0
    BIAS = 1


class Rounding(enum.IntEnum):
    NEAREST = 0
    STOCHASTIC = 1


class Schedule(enum.IntEnum):
    CONSTANT = 0
    COSINE = 1
    STEP = 2


class StateKind(enum.IntEnum):
    STEP_COUNTER = 0
    ACCUMULATOR = 1
    VELOCITY = 2
    IMPRINT_COUNTS = 3
    IMPRINT_SUMS = 4


class LossFunction(enum.IntEnum):
    CROSS_ENTROPY = 0
    MEAN_SQUARED_ERROR = 1
    MEAN_ABSOLUTE_ERROR = 2


@dataclasses.dataclass
class Trainable:
    variable: int
    initializer: int
    kind: TrainableKind
    op_index: int
    layer_name: str
    channels: list = dataclasses.field(default_factory=list)
    scales: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Optimizer:
    type: str = "sgd"
    lr: float = 0.0
    bias_lr: float = 0.0
    rounding: Rounding = Rounding.NEAREST
    qas: bool = True
    seed: int = 0
    schedule: Schedule = Schedule.CONSTANT
    warmup_steps: int = 0
    decay_steps: int = 1
    alpha: float = 0.0
    decay_rate: float = 0.1
    momentum: float = 0.0
    batch_size: int = 1


@dataclasses.dataclass
class TrainingInfo:
    format_version: int = FORMAT_VERSION
    trainables: list = dataclasses.field(default_factory=list)
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    input: int = 0
    label: int = 0
    mode: int = 0
    logits: int = 0
    loss: int = 0
    hparams: int = 0
    rng: int = -1
    num_classes: int = 0
    scheme_json: str = ""
    first_forward_op: int = 0
    num_forward_ops: int = 0
    loss_function: LossFunction = LossFunction.CROSS_ENTROPY
    real_output: int = 0
    output_range: int = 0
    output_range_initializer: int = 0
    step: int = -1
    optimizer_state: list = dataclasses.field(default_factory=list)
    optimizer_state_kinds: list = dataclasses.field(default_factory=list)

    def state_variables(self):
        """Variable tensors a device persists, in order (the device's
        TrainingSession::state_tensor): trainables, rng (stochastic
        rounding), output range, optimizer state."""
        return ([t.variable for t in self.trainables] + ([self.rng] if self.rng >= 0 else [])
                + [self.output_range] + list(self.optimizer_state))


# Field slots, in .fbs declaration order.
_TRAINABLE_FIELDS = ("variable", "initializer", "kind", "op_index", "layer_name",
                     "channels", "scales")
_OPTIMIZER_FIELDS = ("type", "lr", "bias_lr", "rounding", "qas", "seed", "schedule",
                     "warmup_steps", "decay_steps", "alpha", "decay_rate", "momentum",
                     "batch_size")
_INFO_FIELDS = ("format_version", "trainables", "optimizer", "input", "label", "mode",
                "logits", "loss", "hparams", "rng", "num_classes", "scheme_json",
                "first_forward_op", "num_forward_ops", "loss_function", "real_output",
                "output_range", "output_range_initializer", "step", "optimizer_state",
                "optimizer_state_kinds")
_INFO_INTS = ("input", "label", "mode", "logits", "loss", "hparams", "rng",
              "num_classes", "first_forward_op", "num_forward_ops", "real_output",
              "output_range", "output_range_initializer", "step")


def _slot(fields, name):
    return fields.index(name)


def _vector_of_offsets(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _encode_trainable(builder, t):
    name = builder.CreateString(t.layer_name)
    channels = builder.CreateNumpyVector(np.asarray(t.channels, dtype="<i4"))
    scales = builder.CreateNumpyVector(np.asarray(t.scales, dtype="<f4"))
    s = lambda field: _slot(_TRAINABLE_FIELDS, field)  # noqa: E731
    builder.StartObject(len(_TRAINABLE_FIELDS))
    builder.PrependInt32Slot(s("variable"), t.variable, 0)
    builder.PrependInt32Slot(s("initializer"), t.initializer, 0)
    builder.PrependInt8Slot(s("kind"), int(t.kind), 0)
    builder.PrependInt32Slot(s("op_index"), t.op_index, 0)
    builder.PrependUOffsetTRelativeSlot(s("layer_name"), name, 0)
    builder.PrependUOffsetTRelativeSlot(s("channels"), channels, 0)
    builder.PrependUOffsetTRelativeSlot(s("scales"), scales, 0)
    return builder.EndObject()


def _encode_optimizer(builder, o):
    type_name = builder.CreateString(o.type)
    s = lambda field: _slot(_OPTIMIZER_FIELDS, field)  # noqa: E731
    builder.StartObject(len(_OPTIMIZER_FIELDS))
    builder.PrependUOffsetTRelativeSlot(s("type"), type_name, 0)
    builder.PrependFloat32Slot(s("lr"), o.lr, 0.0)
    builder.PrependFloat32Slot(s("bias_lr"), o.bias_lr, 0.0)
    builder.PrependInt8Slot(s("rounding"), int(o.rounding), 0)
    builder.PrependBoolSlot(s("qas"), bool(o.qas), True)
    builder.PrependUint32Slot(s("seed"), o.seed, 0)
    builder.PrependInt8Slot(s("schedule"), int(o.schedule), 0)
    builder.PrependInt32Slot(s("warmup_steps"), o.warmup_steps, 0)
    builder.PrependInt32Slot(s("decay_steps"), o.decay_steps, 1)
    builder.PrependFloat32Slot(s("alpha"), o.alpha, 0.0)
    builder.PrependFloat32Slot(s("decay_rate"), o.decay_rate, 0.1)
    builder.PrependFloat32Slot(s("momentum"), o.momentum, 0.0)
    builder.PrependInt32Slot(s("batch_size"), o.batch_size, 1)
    return builder.EndObject()


def encode(info):
    """`TrainingInfo` -> flatbuffer bytes (file identifier TFTR)."""
    builder = flatbuffers.Builder(1024)
    trainables = _vector_of_offsets(
        builder, [_encode_trainable(builder, t) for t in info.trainables])
    optimizer = _encode_optimizer(builder, info.optimizer)
    scheme_json = builder.CreateString(info.scheme_json)
    state = builder.CreateNumpyVector(np.asarray(info.optimizer_state, dtype="<i4"))
    state_kinds = builder.CreateNumpyVector(
        np.asarray([int(k) for k in info.optimizer_state_kinds], dtype="<i1"))
    s = lambda field: _slot(_INFO_FIELDS, field)  # noqa: E731
    builder.StartObject(len(_INFO_FIELDS))
    builder.PrependUint32Slot(s("format_version"), info.format_version, 0)
    builder.PrependUOffsetTRelativeSlot(s("trainables"), trainables, 0)
    builder.PrependUOffsetTRelativeSlot(s("optimizer"), optimizer, 0)
    for field in _INFO_INTS:
        builder.PrependInt32Slot(s(field), getattr(info, field), 0)
    builder.PrependInt8Slot(s("loss_function"), int(info.loss_function), 0)
    builder.PrependUOffsetTRelativeSlot(s("scheme_json"), scheme_json, 0)
    builder.PrependUOffsetTRelativeSlot(s("optimizer_state"), state, 0)
    builder.PrependUOffsetTRelativeSlot(s("optimizer_state_kinds"), state_kinds, 0)
    builder.Finish(builder.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


class _Reader:
    """Reads fields of one table by slot."""

    def __init__(self, buf, pos, fields):
        self.tab = Table(buf, pos)
        self.fields = fields

    def _offset(self, name):
        return self.tab.Offset(4 + 2 * _slot(self.fields, name))

    def scalar(self, name, flags, default):
        o = self._offset(name)
        return self.tab.Get(flags, o + self.tab.Pos) if o else default

    def string(self, name):
        o = self._offset(name)
        return self.tab.String(o + self.tab.Pos).decode("utf-8") if o else ""

    def numbers(self, name, flags):
        o = self._offset(name)
        return self.tab.GetVectorAsNumpy(flags, o).tolist() if o else []

    def table(self, name):
        o = self._offset(name)
        return self.tab.Indirect(o + self.tab.Pos) if o else None

    def tables(self, name):
        o = self._offset(name)
        if not o:
            return []
        start = self.tab.Vector(o)
        return [self.tab.Indirect(start + 4 * i) for i in range(self.tab.VectorLen(o))]


def _decode_trainable(buf, pos):
    r = _Reader(buf, pos, _TRAINABLE_FIELDS)
    return Trainable(
        variable=r.scalar("variable", N.Int32Flags, 0),
        initializer=r.scalar("initializer", N.Int32Flags, 0),
        kind=TrainableKind(r.scalar("kind", N.Int8Flags, 0)),
        op_index=r.scalar("op_index", N.Int32Flags, 0),
        layer_name=r.string("layer_name"),
        channels=r.numbers("channels", N.Int32Flags),
        scales=r.numbers("scales", N.Float32Flags))


def _decode_optimizer(buf, pos):
    if pos is None:
        return Optimizer()
    r = _Reader(buf, pos, _OPTIMIZER_FIELDS)
    return Optimizer(
        type=r.string("type"),
        lr=r.scalar("lr", N.Float32Flags, 0.0),
        bias_lr=r.scalar("bias_lr", N.Float32Flags, 0.0),
        rounding=Rounding(r.scalar("rounding", N.Int8Flags, 0)),
        qas=bool(r.scalar("qas", N.BoolFlags, True)),
        seed=r.scalar("seed", N.Uint32Flags, 0),
        schedule=_enum(Schedule, "optimizer.schedule", r.scalar("schedule", N.Int8Flags, 0)),
        warmup_steps=r.scalar("warmup_steps", N.Int32Flags, 0),
        decay_steps=r.scalar("decay_steps", N.Int32Flags, 1),
        alpha=r.scalar("alpha", N.Float32Flags, 0.0),
        decay_rate=r.scalar("decay_rate", N.Float32Flags, 0.1),
        momentum=r.scalar("momentum", N.Float32Flags, 0.0),
        batch_size=r.scalar("batch_size", N.Int32Flags, 1))


def decode(data):
    """Flatbuffer bytes -> `TrainingInfo`; rejects unknown format versions."""
    buf = bytearray(data)
    if len(buf) < 8 or bytes(buf[4:8]) != FILE_IDENTIFIER:
        raise ConversionError("training info metadata has no TFTR file identifier")
    try:
        info = _decode_info(buf)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as e:
        # Fields the device never reads (optimizer, names, scheme) are only
        # checked here: flatbuffers' reader does not verify offsets.
        raise ConversionError(f"training info metadata is corrupt ({e})") from None
    if info.format_version != FORMAT_VERSION:
        raise ConversionError(
            f"training model has format version {info.format_version}; this version of "
            f"tflm-train reads version {FORMAT_VERSION}: convert the inference model again")
    return info


def _decode_info(buf):
    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
    r = _Reader(buf, root, _INFO_FIELDS)
    return TrainingInfo(
        format_version=r.scalar("format_version", N.Uint32Flags, 0),
        trainables=[_decode_trainable(buf, p) for p in r.tables("trainables")],
        optimizer=_decode_optimizer(buf, r.table("optimizer")),
        scheme_json=r.string("scheme_json"),
        loss_function=_enum(LossFunction, "loss_function",
                            r.scalar("loss_function", N.Int8Flags, 0)),
        optimizer_state=r.numbers("optimizer_state", N.Int32Flags),
        optimizer_state_kinds=[_enum(StateKind, "optimizer_state_kinds", k)
                               for k in r.numbers("optimizer_state_kinds", N.Int8Flags)],
        **{field: r.scalar(field, N.Int32Flags, 0) for field in _INFO_INTS})


def _enum(kind, field, value):
    try:
        return kind(value)
    except ValueError:
        raise ConversionError(f"training info: unknown {field} {value}") from None
