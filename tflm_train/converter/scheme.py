"""The sparse-update scheme: which biases and weight channels train, and how.

See docs/scheme.md for the user-facing description of every field.
"""
import dataclasses
import json
import math
import os
import re

from .errors import ConversionError

ROUNDINGS = ("nearest", "stochastic")
# Scheme "loss" -> what the training graph computes on the real-valued output.
LOSSES = ("cross_entropy", "mse", "mae")
CHANNEL_SELECTIONS = ("l2",)
FIXED_PRESETS = ("bias-only", "classifier")  # and "last-k:K"
# Marsaglia's xorshift32 example seed; xorshift32 needs a non-zero state.
DEFAULT_SEED = 2463534242


SCHEDULES = ("constant", "cosine", "step")
# Storage of the gradient tensors between backward operators (docs/scheme.md).
GRADIENT_TYPES = ("float32", "int8")
# Rounding of int8 gradients (docs/format.md "int8 gradients").
GRADIENT_ROUNDINGS = ("nearest", "stochastic")
HEAD_INITS = ("zeros", "imprint")


@dataclasses.dataclass
class OptimizerConfig:
    type: str = "sgd"
    lr: float = 0.01
    bias_lr: float | None = None  # None: same as lr
    rounding: str = "stochastic"
    seed: int = DEFAULT_SEED
    # Learning-rate schedule over optimizer updates (docs/scheme.md).
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int = 1
    alpha: float = 0.0  # cosine: final learning-rate fraction
    decay_rate: float = 0.1  # step: factor every decay_steps
    momentum: float = 0.0
    batch_size: int = 1  # samples whose gradients are averaged per update

    @property
    def effective_bias_lr(self):
        return self.lr if self.bias_lr is None else self.bias_lr


@dataclasses.dataclass
class HeadConfig:
    """A fresh classifier head replacing the output layer (docs/scheme.md)."""
    num_classes: int = 0
    init: str = "zeros"
    shots: int = 1  # samples per class imprinted (init "imprint")


@dataclasses.dataclass
class LayerUpdate:
    """What trains in one trainable layer."""
    bias: bool = False
    # Sorted output channels whose weights update; None: weights frozen.
    channels: list | None = None


@dataclasses.dataclass
class Scheme:
    """A sparse-update scheme (see docs/scheme.md)."""
    preset: str | None = None
    bias_update_layers: int = 0
    # layer (index among trainable layers, or Keras layer name) ->
    # fraction in (0, 1], channel count >= 1, or "all".
    weight_update: dict = dataclasses.field(default_factory=dict)
    channel_selection: str = "l2"
    train_classifier: bool = True
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    qas: bool = True
    loss: str = "cross_entropy"
    head: HeadConfig | None = None
    ram_budget: int | None = None  # bytes; convert refuses a step that needs more
    gradients: str = "float32"
    gradient_rounding: str = "nearest"  # of int8 gradients only

    @classmethod
    def from_dict(cls, data, source="scheme"):
        """Builds a Scheme from a dict; `source` names it in error messages."""
        if not isinstance(data, dict):
            raise ConversionError(
                f"{source}: a scheme must be a mapping, got {type(data).__name__}")
        _check_fields(data, cls, source, "")
        fields = dict(data)
        optimizer = fields.pop("optimizer", None) or {}
        if not isinstance(optimizer, dict):
            raise ConversionError(f"{source}: field 'optimizer' must be a mapping")
        _check_fields(optimizer, OptimizerConfig, source, "optimizer.")
        if fields.get("weight_update") is None:
            fields.pop("weight_update", None)
        head = fields.pop("head", None)
        if head is not None:
            if not isinstance(head, dict):
                raise ConversionError(f"{source}: field 'head' must be a mapping")
            _check_fields(head, HeadConfig, source, "head.")
            head = HeadConfig(**head)
        scheme = cls(optimizer=OptimizerConfig(**optimizer), head=head, **fields)
        scheme.validate(source)
        return scheme

    @classmethod
    def from_file(cls, path):
        """Reads a scheme from a JSON or YAML (.yaml/.yml) file."""
        name = os.fspath(path)
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConversionError(f"{name}: cannot read scheme file ({e.strerror})") from e
        if name.endswith((".yaml", ".yml")):
            import yaml  # noqa: PLC0415 - only YAML schemes need it
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConversionError(f"{name}: invalid YAML: {_one_line(e)}") from e
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConversionError(f"{name}: invalid JSON: {_one_line(e)}") from e
        return cls.from_dict(data, source=name)

    def to_dict(self):
        """The scheme as a JSON-compatible dict; `from_dict` inverts it."""
        data = {"preset": self.preset} if self.preset else {
            "bias_update_layers": self.bias_update_layers,
            "weight_update": {str(k): v for k, v in self.weight_update.items()},
            "train_classifier": self.train_classifier,
        }
        data["channel_selection"] = self.channel_selection
        data["optimizer"] = dataclasses.asdict(self.optimizer)
        data["qas"] = self.qas
        data["loss"] = self.loss
        if self.head is not None:
            data["head"] = dataclasses.asdict(self.head)
        if self.ram_budget is not None:
            data["ram_budget"] = self.ram_budget
        if self.gradients != "float32":
            data["gradients"] = self.gradients
        if self.gradient_rounding != "nearest":
            data["gradient_rounding"] = self.gradient_rounding
        return data

    def validate(self, source="scheme"):
        """Raises ConversionError naming the first malformed field."""
        def fail(field, message):
            raise ConversionError(f"{source}: field '{field}' {message}")

        if self.preset is not None:
            if self.preset not in FIXED_PRESETS and _preset_k(self.preset) is None:
                fail("preset", f"must be one of {', '.join(FIXED_PRESETS)}, last-k:K, "
                               f"got {self.preset!r}")
            default = Scheme()
            customised = [f for f in ("bias_update_layers", "weight_update", "train_classifier")
                          if getattr(self, f) != getattr(default, f)]
            if customised:
                fail(customised[0], f"cannot be combined with preset {self.preset!r}")
        if not _is_int(self.bias_update_layers) or self.bias_update_layers < 0:
            fail("bias_update_layers", f"must be an integer >= 0, got {self.bias_update_layers!r}")
        if not isinstance(self.weight_update, dict):
            fail("weight_update", "must be a mapping of layer -> fraction, count or \"all\"")
        for key, amount in self.weight_update.items():
            if not isinstance(key, (int, str)) or isinstance(key, bool):
                fail("weight_update", f"has key {key!r}; use a layer index or layer name")
            if not _valid_amount(amount):
                fail(f"weight_update.{key}", "must be a fraction in (0, 1], a channel count "
                                             f">= 1 or \"all\", got {amount!r}")
        if self.channel_selection not in CHANNEL_SELECTIONS:
            fail("channel_selection", f"must be one of {', '.join(CHANNEL_SELECTIONS)}, "
                                      f"got {self.channel_selection!r}")
        for field in ("train_classifier", "qas"):
            if not isinstance(getattr(self, field), bool):
                fail(field, f"must be true or false, got {getattr(self, field)!r}")
        if self.loss not in LOSSES:
            fail("loss", f"must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.gradients not in GRADIENT_TYPES:
            fail("gradients", f"must be one of {', '.join(GRADIENT_TYPES)}, "
                              f"got {self.gradients!r}")
        if self.gradient_rounding not in GRADIENT_ROUNDINGS:
            fail("gradient_rounding", f"must be one of {', '.join(GRADIENT_ROUNDINGS)}, "
                                      f"got {self.gradient_rounding!r}")
        if self.gradient_rounding != "nearest" and self.gradients != "int8":
            fail("gradient_rounding", f"{self.gradient_rounding!r} needs \"gradients\": "
                                      f"\"int8\", got {self.gradients!r}")
        opt = self.optimizer
        if opt.type != "sgd":
            fail("optimizer.type", f"must be \"sgd\", got {opt.type!r}")
        for field in ("lr", "bias_lr"):
            value = getattr(opt, field)
            if field == "bias_lr" and value is None:
                continue
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                fail(f"optimizer.{field}", f"must be a finite number >= 0, got {value!r}")
        if opt.rounding not in ROUNDINGS:
            fail("optimizer.rounding",
                 f"must be one of {', '.join(ROUNDINGS)}, got {opt.rounding!r}")
        if not _is_int(opt.seed) or not 0 < opt.seed < 2**32:
            fail("optimizer.seed", f"must be an integer in [1, 2^32), got {opt.seed!r}")
        if opt.schedule not in SCHEDULES:
            fail("optimizer.schedule",
                 f"must be one of {', '.join(SCHEDULES)}, got {opt.schedule!r}")
        for field, low in (("warmup_steps", 0), ("decay_steps", 1), ("batch_size", 1)):
            value = getattr(opt, field)
            if not _is_int(value) or not low <= value < 2**31:
                fail(f"optimizer.{field}", f"must be an integer >= {low}, got {value!r}")
        for field, low, high, closed in (("alpha", 0.0, 1.0, True),
                                         ("decay_rate", 0.0, 1.0, True),
                                         ("momentum", 0.0, 1.0, False)):
            value = getattr(opt, field)
            ok = _is_number(value) and math.isfinite(value) and (
                (low <= value <= high) if field == "alpha" else
                (low < value <= high) if field == "decay_rate" else (low <= value < high))
            if not ok:
                interval = {"alpha": "[0, 1]", "decay_rate": "(0, 1]", "momentum": "[0, 1)"}
                fail(f"optimizer.{field}", f"must be a number in {interval[field]}, "
                                           f"got {value!r}")
        if self.head is not None:
            head = self.head
            if not _is_int(head.num_classes) or head.num_classes < 2:
                fail("head.num_classes", f"must be an integer >= 2, got {head.num_classes!r}")
            if head.init not in HEAD_INITS:
                fail("head.init", f"must be one of {', '.join(HEAD_INITS)}, got {head.init!r}")
            if not _is_int(head.shots) or head.shots < 1:
                fail("head.shots", f"must be an integer >= 1, got {head.shots!r}")
            if self.loss != "cross_entropy":
                fail("head", f"needs the cross_entropy loss, got {self.loss!r}")
            if self.preset is None and not self.train_classifier:
                fail("train_classifier", "cannot be false with a fresh head (the head always "
                                         "trains)")
        if self.ram_budget is not None and (not _is_int(self.ram_budget)
                                            or self.ram_budget < 1):
            fail("ram_budget", f"must be a number of bytes >= 1, got {self.ram_budget!r}")

    def resolve(self, layers):
        """Per trainable layer, what updates: a list of `LayerUpdate`.

        `layers` are the model's trainable layers in forward order; each has
        `name`, `out_channels` and `channel_norms` (the selection criterion
        per output channel).
        """
        n = len(layers)
        if n == 0:
            raise ConversionError("the model has no trainable layer "
                                  "(CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED)")
        updates = [LayerUpdate() for _ in layers]

        def train_fully(i):
            updates[i].bias = True
            updates[i].channels = list(range(layers[i].out_channels))

        k = _preset_k(self.preset) if self.preset else None
        if self.preset == "bias-only":
            for update in updates:
                update.bias = True
        elif self.preset == "classifier":
            train_fully(n - 1)
        elif k is not None:
            if k > n:
                raise ConversionError(f"scheme: preset {self.preset!r} needs {k} trainable layers; "
                                      f"the model has {n} ({_layer_list(layers)})")
            for i in range(n - k, n):
                train_fully(i)
        else:
            if self.bias_update_layers > n:
                raise ConversionError(
                    f"scheme: bias_update_layers is {self.bias_update_layers} but the model has "
                    f"{n} trainable layers ({_layer_list(layers)})")
            for i in range(n - self.bias_update_layers, n):
                updates[i].bias = True
            named = {}
            for key, amount in self.weight_update.items():
                i = _layer_index(key, layers)
                if i in named:
                    raise ConversionError(f"scheme: weight_update names layer {i} "
                                          f"({layers[i].name}) twice: {named[i]!r} and {key!r}")
                named[i] = key
                count = _channel_count(amount, layers[i], key)
                updates[i].channels = _top_channels(layers[i].channel_norms, count)
            if self.train_classifier:
                updates[-1].bias = True
                if updates[-1].channels is None:
                    train_fully(n - 1)
        if self.head is not None:
            i = n - 1
            if updates[i].channels is not None and len(updates[i].channels) < \
                    layers[i].out_channels:
                raise ConversionError("scheme: weight_update trains part of the classifier; "
                                      "a fresh head always trains all of it")
            train_fully(i)
        if not any(u.bias or u.channels for u in updates):
            raise ConversionError("scheme: trains nothing (no bias, no weights; "
                                  "the classifier is excluded by train_classifier: false)")
        return updates


def _check_fields(data, config, source, prefix):
    """Raises ConversionError naming the first key of `data` that is not a
    field of dataclass `config`."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConversionError(f"{source}: unknown field '{prefix}{unknown[0]}' "
                              f"(fields: {', '.join(sorted(known))})")


def as_scheme(scheme):
    """A Scheme from a Scheme, a dict, or a path to a JSON/YAML file."""
    if isinstance(scheme, Scheme):
        scheme.validate()
        return scheme
    if isinstance(scheme, dict):
        return Scheme.from_dict(scheme)
    if isinstance(scheme, (str, os.PathLike)):
        return Scheme.from_file(scheme)
    raise ConversionError(f"scheme must be a Scheme, a dict or a file path, "
                          f"got {type(scheme).__name__}")


def _preset_k(preset):
    """K of a "last-k:K" preset, or None."""
    match = re.fullmatch(r"last-k:([1-9][0-9]*)", str(preset))
    return int(match.group(1)) if match else None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_amount(amount):
    if amount == "all":
        return True
    if _is_int(amount):
        return amount >= 1
    return isinstance(amount, float) and 0 < amount <= 1


def _channel_count(amount, layer, key):
    """Number of output channels of `layer` an amount stands for."""
    total = layer.out_channels
    if amount == "all":
        return total
    if _is_int(amount):
        if amount > total:
            raise ConversionError(f"scheme: weight_update.{key} asks for {amount} channels but "
                                  f"layer {layer.name} has {total} output channels")
        return amount
    return max(1, math.floor(amount * total + 0.5))


def _top_channels(norms, count):
    """The `count` channels of largest norm (ties: lower index), sorted."""
    order = sorted(range(len(norms)), key=lambda c: (-float(norms[c]), c))
    return sorted(order[:count])


def _layer_list(layers):
    return ", ".join(f"{i} {layer.name}" for i, layer in enumerate(layers))


def _layer_index(key, layers):
    """Index of the trainable layer a weight_update key names.

    Integers (or strings of integers) index the trainable layers in forward
    order, negative from the end. Other strings match the Keras layer name;
    "dense" also matches the QAT wrapper "quant_dense".
    """
    n = len(layers)
    if _is_int(key) or re.fullmatch(r"\s*-?[0-9]+\s*", key):
        i = int(key)
        if -n <= i < n:
            return i % n
        raise ConversionError(f"scheme: weight_update names layer {key!r}, out of range for "
                              f"{n} trainable layers ({_layer_list(layers)})")
    for candidate in (key, "quant_" + key):
        matches = [i for i, layer in enumerate(layers) if layer.name == candidate]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConversionError(f"scheme: weight_update names layer {key!r}, which is ambiguous "
                                  f"(layers {matches}); use an index ({_layer_list(layers)})")
    raise ConversionError(f"scheme: weight_update names layer {key!r}, which is not a trainable "
                          f"layer; trainable layers: {_layer_list(layers)}")


def _one_line(error):
    return " ".join(str(error).split())
