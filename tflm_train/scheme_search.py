"""Automatic sparse-update scheme search under a peak-RAM budget.

`search_scheme(model, data, budget_bytes)` chooses which biases, which
layers' weights and how many of their output channels update, so that one
training step's peak RAM (`plan(...)["peak_ram_bytes"]` of the converted
scheme) fits the budget and the predicted gain is largest. The method is
described in docs/scheme.md ("Automatic search"):

1. Candidates, each on top of the classifier (always trained): the biases of
   the last k layers for a few k, and each of the last `max_layers` layers'
   weights at 1/8, 1/4, 1/2 and all of its output channels. Each candidate is
   converted and its peak RAM measured with the planner.
2. The gain of each candidate, by one of two methods:
   * "contribution" (Lin et al. 2022): train it on a search-train split on the
     host simulator; gain = its search-val accuracy minus classifier-only's.
   * "fisher" (in the spirit of TinyTrain, Kwon et al.): one backward pass per
     sample through a model that trains everything (learning rate 0); the
     Fisher information of each layer's output channels predicts the gain.
3. Combination: gains add up; memory is the cost of the backward pass down
   to the deepest updated layer plus each weight update's own bytes. The
   combinations on the Pareto front of (estimated bytes, gain) are checked
   with the planner in order of decreasing gain; the first whose planned
   peak fits wins.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Union

import numpy as np

from tflm_train.converter import (OptimizerConfig, Scheme, TrainableKind, convert, graph,
                                  read_training_info, tflite, to_int8_tflite)
from tflm_train.data import Dataset, atomic_write, load_npz, validate
from tflm_train.errors import DataError, TflmTrainError
from tflm_train.plan import plan
from tflm_train.runtime import Trainer
from tflm_train.training import evaluate, train

#: Search data: a Dataset, an (x, y) pair or a DATA.npz path.
SearchData = Union[Dataset, tuple, str, os.PathLike]

METHODS = ("contribution", "fisher")
RATIOS = (0.125, 0.25, 0.5, 1.0)
VAL_FRACTION = 0.3
# Combinations whose estimate exceeds the budget by up to this share are
# still checked with the planner (the estimate can be slightly pessimistic).
ESTIMATE_SLACK = 0.03
GAIN_UNITS = {"contribution": "search-val accuracy gain over classifier-only",
              "fisher": "Fisher potential (sum of channel Fisher information)"}


class BudgetError(TflmTrainError):
    """No scheme fits the peak-RAM budget."""


@dataclasses.dataclass
class Candidate:
    """One update, measured on its own on top of the trained classifier."""
    label: str
    scheme: dict  # the scheme fields it sets
    depth: int  # the first trainable layer the backward pass must reach
    peak_ram_bytes: int  # planner peak of classifier + this update
    # What it adds to a combination that already reaches `depth` (biases
    # included): 0 for biases, the weights' bytes for weights.
    own_bytes: int = 0
    channels: list | None = None  # weights: the output channels the converter selects
    gain: float | None = None  # None: not measured (alone it exceeds the budget)
    evidence: dict = dataclasses.field(default_factory=dict)
    training_model: bytes = dataclasses.field(default=b"", repr=False)

    def to_dict(self) -> dict:
        """The candidate as JSON-ready evidence."""
        partial = self.channels is not None and "all" not in self.scheme["weight_update"].values()
        return {"update": self.label, "scheme": self.scheme, "depth": self.depth,
                "peak_ram_bytes": self.peak_ram_bytes, "own_bytes": self.own_bytes,
                "gain": self.gain, **({"channels": self.channels} if partial else {}),
                **self.evidence}


@dataclasses.dataclass
class Analysis:
    """What every candidate costs and buys; `choose` combines them."""
    method: str
    model: bytes = dataclasses.field(repr=False)  # the int8 inference model
    layers: list  # trainable layer names, forward order
    optimizer: dict
    depth_ram: dict  # depth d -> peak RAM of the biases of layers d.. plus the classifier
    bias: list  # Candidates: biases of the last k layers
    weights: list  # Candidates: one layer's weights
    reference: dict  # method-specific baseline figures
    samples: dict  # how much data the analysis used
    gain_seconds: float  # measuring the gains (training runs or Fisher passes)
    seconds: float  # the whole analysis, candidates' conversions and plans included

    @property
    def classifier_ram(self) -> int:
        """Peak RAM of classifier-only training (the smallest scheme)."""
        return self.depth_ram[len(self.layers) - 1]


@dataclasses.dataclass
class SearchResult:
    """The chosen scheme and the evidence for it."""
    scheme: dict  # a complete scheme (Scheme.to_dict()), as the converter reads it
    budget_bytes: int
    peak_ram_bytes: int  # the planner's figure for `scheme`
    estimated_peak_ram_bytes: int
    predicted_gain: float
    chosen: list  # Candidates
    planner_checks: int  # combinations converted and planned to find it
    seconds: float  # whole search, analysis included
    analysis: Analysis

    def evidence(self) -> dict:
        """The scheme, the chosen candidates and how the search got there,
        JSON-ready (what `write_scheme` writes next to the scheme)."""
        a = self.analysis
        return {
            "scheme": self.scheme, "budget_bytes": self.budget_bytes,
            "peak_ram_bytes": self.peak_ram_bytes,
            "estimated_peak_ram_bytes": self.estimated_peak_ram_bytes,
            "predicted_gain": self.predicted_gain, "gain_unit": GAIN_UNITS[a.method],
            "chosen": [c.to_dict() for c in self.chosen],
            "search": {"method": a.method, "seconds": round(self.seconds, 3),
                       "analysis_seconds": round(a.seconds, 3),
                       "gain_seconds": round(a.gain_seconds, 3),
                       "planner_checks": self.planner_checks, "samples": a.samples,
                       "reference": a.reference, "layers": a.layers,
                       "classifier_only_peak_ram_bytes": a.classifier_ram},
            "candidates": [c.to_dict() for c in a.bias + a.weights],
        }

    def summary(self) -> str:
        """A few human-readable lines about the choice."""
        a = self.analysis
        reference = ", ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in a.reference.items())
        lines = [
            f"method {a.method}: {self.seconds:.1f} s, of which {a.gain_seconds:.1f} s measuring "
            f"gains ({_describe(a.samples)}); {self.planner_checks} planner checks",
            f"reference: classifier only {a.classifier_ram:,d} B, {reference}",
            f"chosen: peak RAM {self.peak_ram_bytes:,d} B of {self.budget_bytes:,d} B (estimated "
            f"{self.estimated_peak_ram_bytes:,d} B), predicted gain {self.predicted_gain:.4g} "
            f"({GAIN_UNITS[a.method]})",
        ]
        lines += [f"  {c.label}: gain {c.gain:.4g}, {c.peak_ram_bytes:,d} B alone"
                  for c in self.chosen]
        if not self.chosen:
            lines.append("  classifier only: no other update fits or helps")
        return "\n".join(lines)


def search_scheme(model: Any, data: SearchData, budget_bytes: int, *,
                  method: str = "contribution",
                  seed: int = 0, lr: float | None = None, epochs: int = 2,
                  max_layers: int = 6, fisher_samples: int = 64,
                  representative_data: np.ndarray | None = None) -> SearchResult:
    """The sparse-update scheme with the largest predicted gain whose training
    step fits `budget_bytes` of peak RAM (see the module docstring).

    `model`: anything `convert` accepts; `data`: a Dataset, an (x, y) pair or
    a DATA.npz path. `lr`: the learning rate of the search runs and of the
    result (default: the scheme default). Raises BudgetError when not even
    classifier-only training fits.
    """
    analysis = analyze(model, data, method=method, seed=seed, lr=lr, epochs=epochs,
                       max_layers=max_layers, fisher_samples=fisher_samples,
                       representative_data=representative_data, budget_bytes=budget_bytes)
    return choose(analysis, budget_bytes)


def analyze(model: Any, data: SearchData, *, method: str = "contribution", seed: int = 0,
            lr: float | None = None, epochs: int = 2, max_layers: int = 6,
            fisher_samples: int = 64, representative_data: np.ndarray | None = None,
            budget_bytes: int | None = None) -> Analysis:
    """Measures every candidate's peak RAM and predicted gain (arguments as
    for `search_scheme`). With
    `budget_bytes`, candidates that alone exceed it get no gain measured."""
    if method not in METHODS:
        raise TflmTrainError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    start = time.perf_counter()
    int8 = to_int8_tflite(model, representative_data)
    int8_model = tflite.read_model(int8)
    forward = graph.analyze(int8_model)
    layers = forward.layers
    optimizer = dataclasses.asdict(OptimizerConfig(**({} if lr is None else {"lr": lr})))
    dataset = _dataset(data, int8, optimizer)
    n = len(layers)
    lowest = _first_trainable(forward)
    candidate_layers = range(max(lowest, n - 1 - max_layers), n - 1)
    bias_ks = _bias_counts(n - lowest)
    depths = {n - 1} | {n - k for k in bias_ks} | set(candidate_layers)
    depth_ram, bias = {}, {}
    for d in sorted(depths, reverse=True):
        c = _measure(int8, optimizer, {"bias_update_layers": n - d}, d,
                     f"biases of the last {n - d} layers")
        depth_ram[d] = c.peak_ram_bytes
        if n - d in bias_ks:
            bias[n - d] = c
        if budget_bytes is not None and d == n - 1:
            _check_budget(c.peak_ram_bytes, budget_bytes)
    weights = []
    for i in candidate_layers:
        layer = layers[i]
        for count in sorted({max(1, round(r * layer.out_channels)) for r in RATIOS}):
            amount = "all" if count == layer.out_channels else count
            c = _measure(int8, optimizer, {"weight_update": {str(i): amount}}, i,
                         f"weights of layer {i} ({layer.name}), {count} of "
                         f"{layer.out_channels} output channels")
            c.channels = _updated_channels(c.training_model, layer)
            with_biases = {**c.scheme, "bias_update_layers": n - i}
            c.own_bytes = _peak_ram(int8, _with_optimizer(with_biases, optimizer)) - depth_ram[i]
            weights.append(c)
    bias = [bias[k] for k in sorted(bias)]
    affordable = [c for c in bias + weights
                  if budget_bytes is None or c.peak_ram_bytes <= budget_bytes]
    gain_start = time.perf_counter()
    if method == "contribution":
        reference, samples = _contribution(int8, optimizer, affordable, dataset, seed, epochs)
    else:
        reference, samples = _fisher(int8, int8_model, layers, lowest, affordable, dataset,
                                     seed, fisher_samples)
    gain_seconds = time.perf_counter() - gain_start
    for c in bias + weights:
        c.training_model = b""  # only needed while measuring
    return Analysis(method=method, model=int8, layers=[layer.name for layer in layers],
                    optimizer=optimizer, depth_ram=depth_ram, bias=bias, weights=weights,
                    reference=reference, samples=samples, gain_seconds=gain_seconds,
                    seconds=time.perf_counter() - start)


def choose(analysis: Analysis, budget_bytes: int) -> SearchResult:
    """The best combination of `analysis`'s candidates that fits the budget
    according to the planner (see the module docstring, step 3)."""
    start = time.perf_counter()
    _check_budget(analysis.classifier_ram, budget_bytes)
    front = _pareto_front(analysis)
    checks = 0
    chosen, estimate, peak = [], analysis.classifier_ram, analysis.classifier_ram
    for combo_estimate, _, combo in reversed(front):
        if combo_estimate > budget_bytes * (1 + ESTIMATE_SLACK):
            continue
        if not combo:
            break
        checks += 1
        combo_peak = _peak_ram(analysis.model, _scheme(combo, analysis.optimizer))
        if combo_peak <= budget_bytes:
            chosen, estimate, peak = combo, combo_estimate, combo_peak
            break
    return SearchResult(
        scheme=_scheme(chosen, analysis.optimizer), budget_bytes=budget_bytes,
        peak_ram_bytes=peak, estimated_peak_ram_bytes=estimate,
        predicted_gain=sum(c.gain for c in chosen), chosen=list(chosen),
        planner_checks=checks, seconds=analysis.seconds + time.perf_counter() - start,
        analysis=analysis)


def write_scheme(result: SearchResult, path: str | os.PathLike) -> Path:
    """Writes the scheme (JSON, as the converter reads it) to `path` and the
    evidence to `<path without .json>.evidence.json`; returns the latter."""
    path = Path(path)
    evidence_path = path.with_suffix(".evidence.json")
    atomic_write(path, (json.dumps(result.scheme, indent=2) + "\n").encode())
    atomic_write(evidence_path, (json.dumps(result.evidence(), indent=2) + "\n").encode())
    return evidence_path


# -- candidates -------------------------------------------------------------

def _first_trainable(forward) -> int:
    """Index of the first layer a scheme may train: after the last operator
    that runs forward only (no gradient may pass through it)."""
    first_op = forward.first_trainable_op()
    return next((k for k, layer in enumerate(forward.layers) if layer.op_index >= first_op),
                len(forward.layers))


def _bias_counts(n: int) -> list[int]:
    """A few k for "biases of the last k layers": 2, 3, then growing by half,
    and n (k = 1 is the classifier's bias, always trained)."""
    counts, k = {n}, 2
    while k < n:
        counts.add(k)
        k = max(k + 1, round(k * 1.5))
    return sorted(c for c in counts if c >= 2)


def _measure(int8, optimizer, part, depth, label) -> Candidate:
    training = convert(int8, _with_optimizer(part, optimizer))
    return Candidate(label=label, scheme=part, depth=depth,
                     peak_ram_bytes=plan(training)["peak_ram_bytes"], training_model=training)


def _peak_ram(int8, scheme) -> int:
    return plan(convert(int8, scheme))["peak_ram_bytes"]


def _with_optimizer(part, optimizer) -> dict:
    return {**part, "optimizer": optimizer}


def _updated_channels(training_model, layer) -> list[int]:
    """The output channels the converter selected for `layer` (its filter, or
    a slice of it, became the trained variable)."""
    info = read_training_info(training_model)
    (weights,) = [t for t in info.trainables
                  if t.layer_name == layer.name and t.kind == TrainableKind.WEIGHT]
    return [int(c) for c in weights.channels] or list(range(layer.out_channels))


def _scheme(combo, optimizer) -> dict:
    """The complete scheme of a combination of candidates."""
    scheme = {"bias_update_layers": 0, "weight_update": {}, "train_classifier": True}
    for c in combo:
        scheme["bias_update_layers"] = max(scheme["bias_update_layers"],
                                           c.scheme.get("bias_update_layers", 0))
        scheme["weight_update"].update(c.scheme.get("weight_update", {}))
    return Scheme.from_dict(_with_optimizer(scheme, optimizer)).to_dict()


# -- combination ------------------------------------------------------------

def _pareto_front(analysis: Analysis) -> list[tuple[int, float, tuple]]:
    """(estimated bytes, gain, candidates) of every combination — at most one
    bias choice and one channel count per layer, only candidates with a
    positive gain — that no cheaper combination beats, by increasing bytes.

    Estimate: a single candidate's measured peak; for several, the peak of
    the biases down to the deepest updated layer plus each weight update's
    own bytes measured on top of those biases (so biases a combination does
    not train are counted: slightly pessimistic).
    """
    useful = [c for c in analysis.bias + analysis.weights if c.gain is not None and c.gain > 0]
    groups = {}
    for c in useful:
        groups.setdefault("bias" if "bias_update_layers" in c.scheme else c.depth, []).append(c)
    shallowest = len(analysis.layers) - 1
    combos = []
    for choice in itertools.product(*([None] + g for g in groups.values())):
        combo = tuple(c for c in choice if c is not None)
        depth = min([shallowest] + [c.depth for c in combo])
        estimate = combo[0].peak_ram_bytes if len(combo) == 1 else (
            analysis.depth_ram[depth] + sum(c.own_bytes for c in combo))
        combos.append((estimate, sum(c.gain for c in combo), combo))
    combos.sort(key=lambda e: (e[0], -e[1], len(e[2])))
    front, best = [], -math.inf
    for entry in combos:
        if entry[1] > best:
            front.append(entry)
            best = entry[1]
    return front


# -- gains ------------------------------------------------------------------

def _dataset(data, int8, optimizer) -> Dataset:
    trainer = Trainer(convert(int8, _with_optimizer({"preset": "classifier"}, optimizer)))
    shape, classes = trainer.input_shape[1:], trainer.num_classes
    if isinstance(data, Dataset):
        return validate(data, sample_shape=shape, num_classes=classes)
    if isinstance(data, tuple):
        return validate(Dataset(*data), sample_shape=shape, num_classes=classes)
    return load_npz(data, sample_shape=shape, num_classes=classes)


def _split(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Seeded search-train / search-val split (VAL_FRACTION for val)."""
    if len(data) < 2:
        raise DataError(f"the search needs at least 2 samples, got {len(data)}")
    order = np.random.default_rng(seed).permutation(len(data))
    cut = len(data) - max(1, round(VAL_FRACTION * len(data)))
    return (Dataset(data.x[order[:cut]], data.y[order[:cut]]),
            Dataset(data.x[order[cut:]], data.y[order[cut:]]))


def _contribution(int8, optimizer, candidates, data, seed, epochs):
    """Gain = search-val accuracy after training classifier + candidate
    minus after training the classifier alone."""
    fit, val = _split(data, seed)

    def accuracy(training_model):
        trainer = Trainer(training_model)
        train(trainer, fit, epochs=epochs, seed=seed, progress=False, log=lambda *_: None)
        return evaluate(trainer, val)["accuracy"]

    classifier = convert(int8, _with_optimizer({"preset": "classifier"}, optimizer))
    base = accuracy(classifier)
    for c in candidates:
        c.evidence["accuracy"] = accuracy(c.training_model)
        c.gain = c.evidence["accuracy"] - base
    reference = {"accuracy_untrained": evaluate(Trainer(classifier), val)["accuracy"],
                 "accuracy_classifier_only": base}
    samples = {"search_train": len(fit), "search_val": len(val), "epochs": epochs,
               "training_runs": len(candidates) + 1,
               "training_steps": (len(candidates) + 1) * epochs * len(fit)}
    return reference, samples


def _output_gradient(trainer, int8_model, layer):
    """(tensor, spread) holding dL/d(layer's output): its own "/grad" tensor
    (spread 1), or, when the spatial MEAN after the layer had its gradient
    fused into the layer's gradient op (no [H, W, C] gradient exists), the
    MEAN's [C] gradient, which spreads evenly over its H*W positions."""
    name = trainer.tensor_info(layer.output)["name"]
    try:
        return trainer.tensor_index(name + "/grad"), 1
    except KeyError:
        pass
    sg = int8_model.subgraphs[0]
    (mean,) = [op for op in sg.operators
               if tflite.op_name(int8_model, op) == "MEAN" and int(op.inputs[0]) == layer.output]
    shape = sg.tensors[layer.output].shape
    mean_output = trainer.tensor_info(int(mean.outputs[0]))["name"]
    return trainer.tensor_index(mean_output + "/grad"), int(shape[1]) * int(shape[2])


def _fisher(int8, int8_model, layers, lowest, candidates, data, seed, count):
    """Per output channel c of each layer from `lowest` on (earlier ones
    stay 0), over `count` samples n:
    weights  F_w[c] = sum_n (sum_p a[p, c] g[p, c])^2  (a channel rescaling),
    bias     F_b[c] = rms(a[:, c])^2 sum_n (sum_p g[p, c])^2  (a shift by one rms),
    with a the layer's real output, g = dL/da, p the spatial positions, from
    one train step with learning rate 0 of a model that trains every layer
    from `lowest` on. A candidate's gain is the sum over what it updates (the
    classifier, always trained, excluded)."""
    n = len(layers)
    model = convert(int8, {"preset": f"last-k:{n - lowest}",
                           "optimizer": {"lr": 0.0, "bias_lr": 0.0, "rounding": "nearest"}})
    trainer = Trainer(model, preserve_all_tensors=True)
    outputs = {}
    for i in range(lowest, n - 1):
        out = trainer.tensor_info(layers[i].output)
        outputs[i] = (layers[i].output, *_output_gradient(trainer, int8_model, layers[i]),
                      np.float32(out["scales"][0]), out["zero_points"][0])
    order = np.random.default_rng(seed).permutation(len(data))[:count]
    f_w = [np.zeros(layer.out_channels) for layer in layers[:-1]]
    f_g = [np.zeros(layer.out_channels) for layer in layers[:-1]]
    square = [np.zeros(layer.out_channels) for layer in layers[:-1]]
    positions = [0] * (n - 1)
    for s in order:
        trainer.step(data.x[s], data.y[s])  # learning rate 0: the weights stay
        for i, (a_index, g_index, spread, scale, zero_point) in outputs.items():
            channels = layers[i].out_channels
            a = (scale * (trainer.tensor(a_index).astype(np.float32) - zero_point))
            a = a.reshape(-1, channels).astype(np.float64)
            g = trainer.tensor(g_index).reshape(-1, channels).astype(np.float64)
            g = np.broadcast_to(g / spread, a.shape)
            f_w[i] += np.sum(a * g, axis=0) ** 2
            f_g[i] += np.sum(g, axis=0) ** 2
            square[i] += np.sum(a * a, axis=0)
            positions[i] += a.shape[0]
    f_b = [f_g[i] * square[i] / max(positions[i], 1) for i in range(n - 1)]
    for c in candidates:
        if "weight_update" in c.scheme:
            c.evidence["fisher_per_channel"] = [float(v) for v in f_w[c.depth][c.channels]]
            c.gain = float(np.sum(f_w[c.depth][c.channels]))
        else:
            c.gain = float(sum(np.sum(f_b[i]) for i in range(c.depth, n - 1)))
    reference = {"fisher_weights_per_layer": [float(np.sum(v)) for v in f_w],
                 "fisher_bias_per_layer": [float(np.sum(v)) for v in f_b]}
    return reference, {"fisher_samples": len(order)}


def _check_budget(classifier_ram: int, budget_bytes: int) -> None:
    """BudgetError unless classifier-only training (the smallest scheme the
    search makes) fits; the message gives the minimum in KB rounded up."""
    if classifier_ram > budget_bytes:
        minimum = math.ceil(classifier_ram / 102.4) / 10
        raise BudgetError(f"budget {budget_bytes / 1024:.1f} KB ({budget_bytes} B) is below the "
                          f"smallest training step of this model: classifier only needs "
                          f"{minimum:.1f} KB ({classifier_ram} B)")


def _number(value) -> str:
    """A float or a list of floats with 4 significant digits."""
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return f"{value:.4g}"


def _describe(samples: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in samples.items())
