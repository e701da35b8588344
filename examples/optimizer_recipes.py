"""Optimizer recipes: learning-rate schedule, momentum and mini-batches on
the device, side by side with tf_keras SGD on the same QAT model.

The protocol of examples/lr_grid.py: the "digits" CNN (post-training int8)
and the "residual" CNN (tfmot QAT, converted from the QAT model) adapt to the
shifted digits domain of examples/digits_adaptation.py with the scheme
SCHEME_NAME, 3 epochs over the target training split in the order of
`tflm_train.training.sample_order`, seeds 0, 1, 2. Variants (the optimizer
fields of the scheme; docs/scheme.md):

* plain SGD: constant lr, batch 1, no momentum;
* warm-up + cosine: "schedule": "cosine", warm-up WARMUP_FRACTION of the
  run's updates (at least 1), decay over the rest to alpha = 0;
* momentum 0.9;
* mini-batch 4 and mini-batch 16: "batch_size": B (the mean gradient of B
  consecutive samples of the sample stream; the trailing partial batch of a
  run is never applied);
* best combination: built from the others' validation results by
  `choose_combo` (the rule is written there).

Learning rate. Every variant has a 4-point grid, BASE_LRS times a factor
(`Recipe.lr_grid`): x2 with the cosine schedule (its mean lr is about half
its peak), x(1 - momentum) with momentum (the effective step of SGD with
momentum is lr / (1 - m)), x sqrt(B) with mini-batch B (square-root
scaling: the batch-mean gradient's noise falls by sqrt(B)), multiplied for
a combination. Each side picks, per variant, the grid lr with the best
validation accuracy averaged over the seeds (ties: the smaller lr): train on
80 % of the target training split, score on the other 20 %
(digits_adaptation.split_validation). The reported run then trains on the
whole target training split with that lr and is scored on the target test
split.

* tflm-train: `tflm_train.convert(int8_model, scheme + "optimizer")`, the
  host simulator (`Trainer`, `train`), accuracy of the exported int8 model
  under the tflite-micro wheel; RAM from `tflm_train.plan` of the training
  model. Where TF's lr differs, tflm-train also runs at TF's lr.
* reference: the same pretrained model as a tfmot QAT model, fine-tuned on
  the same parameters with tf.keras.optimizers.SGD(learning_rate=<the
  spec's f(t) as a LearningRateSchedule>, momentum=m) on batches of B
  consecutive samples of the same stream (examples/_recipe_reference.py);
  accuracy of the fake-quant model. Cached in --reference-cache.

  python examples/optimizer_recipes.py --quick            # smoke test, 1-2 min
  python examples/optimizer_recipes.py --results docs/results.md --raw recipes.json

A full run without a reference cache took 13 minutes on 2 shared cores;
with a complete cache only the pretraining and tflm-train runs remain (about
5 minutes for the 3-point grid).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lr_grid  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import _qat_reference as ref  # noqa: E402
import _recipe_reference as rr  # noqa: E402
import digits_adaptation as da  # noqa: E402
import tflm_train  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.training import sample_order, train  # noqa: E402

SCHEME_NAME = "sparse"  # lr_grid.SCHEMES: biases of the last 3 layers, half of layer -2, classifier
SCHEME = lr_grid.SCHEMES[SCHEME_NAME]
MODELS = {"digits": lr_grid.MODELS["digits"], "residual": lr_grid.MODELS["residual"]}
EPOCHS = lr_grid.EPOCHS
SEEDS = (0, 1, 2)
# 0.3 brackets tflm-train's optimum: with 0.1 on top it chose the top lr in
# 11 of the 12 model x variant cells.
BASE_LRS = (0.01, 0.03, 0.1, 0.3)
MOMENTUM = 0.9
WARMUP_FRACTION = 0.05
SCHEDULE_LR_FACTOR = 2.0
QUICK = {"models": ("digits",), "seeds": (0,), "grid": slice(0, 2)}  # the 2 smaller lrs
HEADING = "## Optimizer recipes: schedule, momentum, mini-batch vs tf_keras"
WITHIN_POINTS = 1.0
# Everything the cached reference results depend on besides the run key.
REFERENCE_PROTOCOL = {"epochs": EPOCHS, "scheme": SCHEME, "warmup_fraction": WARMUP_FRACTION,
                      "validation": "digits_adaptation.split_validation",
                      "calibration_steps": ref.CALIBRATION_STEPS,
                      "calibration_batch": ref.CALIBRATION_BATCH, "version": 1}
SIDES = ("tflm", "reference")


@dataclass(frozen=True)
class Recipe:
    """One optimizer configuration (the learning rate aside)."""
    schedule: str = "constant"  # "constant" or "cosine" (warm-up + cosine)
    momentum: float = 0.0
    batch_size: int = 1

    def tag(self) -> str:
        """Short stable name, part of the reference cache keys."""
        schedule = f"cosine-w{WARMUP_FRACTION}" if self.schedule == "cosine" else "constant"
        return f"{schedule}|m{self.momentum}|B{self.batch_size}"

    def describe(self) -> str:
        parts = []
        if self.schedule == "cosine":
            parts.append(f"warm-up {WARMUP_FRACTION:.0%} + cosine")
        if self.momentum:
            parts.append(f"momentum {self.momentum}")
        if self.batch_size > 1:
            parts.append(f"B={self.batch_size}")
        return " + ".join(parts) or "constant lr, B=1, no momentum"

    def lr_grid(self) -> tuple[float, ...]:
        factor = SCHEDULE_LR_FACTOR if self.schedule == "cosine" else 1.0
        factor *= 1.0 - self.momentum
        factor *= self.batch_size ** 0.5
        return tuple(float(f"{lr * factor:.2g}") for lr in BASE_LRS)

    def updates(self, samples: int) -> int:
        """Optimizer updates of a run over `samples` training samples."""
        return samples * EPOCHS // self.batch_size

    def schedule_steps(self, samples: int) -> tuple[int, int]:
        """(warmup_steps, decay_steps) of a run over `samples` samples."""
        if self.schedule == "constant":
            return 0, 1
        total = self.updates(samples)
        warmup = max(1, round(WARMUP_FRACTION * total))
        return warmup, max(1, total - warmup)

    def optimizer(self, samples: int, lr: float, seed: int) -> dict:
        """The scheme's "optimizer" field; plain SGD sets no new field. The
        seed varies the stochastic rounding, as in lr_grid."""
        fields = {"seed": seed + 1, "lr": lr, "bias_lr": lr}
        if self.schedule != "constant":
            warmup, decay = self.schedule_steps(samples)
            fields.update(schedule=self.schedule, warmup_steps=warmup, decay_steps=decay,
                          alpha=0.0)
        if self.momentum:
            fields["momentum"] = self.momentum
        if self.batch_size > 1:
            fields["batch_size"] = self.batch_size
        return fields


PLAIN = "plain SGD"
COMBO = "best combination"
VARIANTS = {
    PLAIN: Recipe(),
    "warm-up + cosine": Recipe(schedule="cosine"),
    "momentum 0.9": Recipe(momentum=MOMENTUM),
    "mini-batch 4": Recipe(batch_size=4),
    "mini-batch 16": Recipe(batch_size=16),
}
COMPONENTS = ("schedule", "momentum", "mini-batch")


def choose_combo(scores: dict[str, float]) -> tuple[Recipe, dict[str, float], list[str]]:
    """The combination, from the validation scores (best grid lr's mean
    validation accuracy over the seeds) of the single variants:

    * a component's gain is its variant's score minus plain SGD's; the
      mini-batch component is the better of B=4 and B=16 (ties: B=4);
    * the combination holds every component with a positive gain; if fewer
      than two have one, the two with the largest gains (ties in the order
      schedule, momentum, mini-batch), so it is always a real combination.

    Returns (recipe, gain per component in points, chosen components)."""
    batch = max((4, 16), key=lambda b: (scores[f"mini-batch {b}"], -b))
    gains = {"schedule": scores["warm-up + cosine"] - scores[PLAIN],
             "momentum": scores["momentum 0.9"] - scores[PLAIN],
             "mini-batch": scores[f"mini-batch {batch}"] - scores[PLAIN]}
    chosen = [c for c in COMPONENTS if gains[c] > 0]
    if len(chosen) < 2:
        chosen = sorted(COMPONENTS, key=lambda c: (-gains[c], COMPONENTS.index(c)))[:2]
    recipe = Recipe(schedule="cosine" if "schedule" in chosen else "constant",
                    momentum=MOMENTUM if "momentum" in chosen else 0.0,
                    batch_size=batch if "mini-batch" in chosen else 1)
    points = {c if c != "mini-batch" else f"mini-batch {batch}": round(100 * g, 2)
              for c, g in gains.items()}
    return recipe, points, [c for c in COMPONENTS if c in chosen]


def parse_combo(names: list[str]) -> Recipe:
    """--combo cosine momentum B4 -> Recipe."""
    recipe = Recipe()
    for name in names:
        if name == "cosine":
            recipe = Recipe("cosine", recipe.momentum, recipe.batch_size)
        elif name == "momentum":
            recipe = Recipe(recipe.schedule, MOMENTUM, recipe.batch_size)
        elif name.startswith("B") and name[1:].isdigit():
            recipe = Recipe(recipe.schedule, recipe.momentum, int(name[1:]))
        else:
            raise SystemExit(f"--combo: unknown component {name!r} (cosine, momentum, B<n>)")
    return recipe


def feature_missing() -> str | None:
    """None if tflm-train accepts the new optimizer fields, else its refusal."""
    try:
        tflm_train.Scheme.from_dict({"optimizer": {
            "schedule": "cosine", "warmup_steps": 1, "decay_steps": 1, "alpha": 0.0,
            "momentum": 0.9, "batch_size": 2}})
    except Exception as e:  # noqa: BLE001 - whatever the refusal is, report it
        return f"{type(e).__name__}: {e}"
    return None


# -- one run per side -------------------------------------------------------------
def tflm_run(int8_model: bytes, recipe: Recipe, lr: float, seed: int,
             train_data: Dataset, eval_data: Dataset) -> tuple[dict, bytes]:
    """Trains on the host simulator; the exported int8 model's outcome on
    eval_data, and the training model (for the planner)."""
    scheme = dict(SCHEME, optimizer=recipe.optimizer(len(train_data), lr, seed))
    training_model = tflm_train.convert(int8_model, scheme)
    trainer = tflm_train.Trainer(training_model)
    history = train(trainer, train_data, epochs=EPOCHS, seed=seed, progress=False,
                    log=lambda *_: None)
    outputs = lr_grid.tflm_outputs(trainer.export_inference_model(), eval_data.x)
    return lr_grid.outcome(history["loss_history"], np.argmax(outputs, axis=1),
                           eval_data.y), training_model


def reference_run(tuner: rr.RecipeTuner, recipe: Recipe, lr: float, seed: int,
                  train_data: Dataset, eval_data: Dataset) -> dict:
    """tf_keras SGD with the same recipe, order and batches; the fake-quant
    model's outcome on eval_data (losses: one per update)."""
    order = [sample_order(len(train_data), seed, epoch) for epoch in range(EPOCHS)]
    warmup, decay = recipe.schedule_steps(len(train_data))
    losses = tuner.run(train_data.x, train_data.y, order, lr, schedule=recipe.schedule,
                       warmup_steps=warmup, decay_steps=decay, alpha=0.0,
                       momentum=recipe.momentum, batch_size=recipe.batch_size)
    return lr_grid.outcome(losses, ref.predict_classes(tuner.model, eval_data.x), eval_data.y)


class Prepared:
    """One model pretrained for one seed, its splits, and the reference
    tuner (built only when a reference run is not cached)."""

    def __init__(self, model: str, seed: int):
        self.model, self.seed = model, seed
        self.setup = lr_grid.PREPARE[model](seed)
        self.fit, self.val = da.split_validation(self.setup.target_train, seed)
        self._tuner = None
        self._qat_before = None

    def split(self, name: str) -> tuple[Dataset, Dataset]:
        """(training data, evaluation data) of the validation or final runs."""
        if name == "val":
            return self.fit, self.val
        return self.setup.target_train, self.setup.target_test

    def tuner(self) -> rr.RecipeTuner:
        if self._tuner is None:
            qat_model = self.setup.qat_model()
            test = self.setup.target_test
            self._qat_before = float(np.mean(ref.predict_classes(qat_model, test.x) == test.y))
            self._tuner = rr.RecipeTuner(qat_model, SCHEME_NAME)
        return self._tuner


# -- the experiment -----------------------------------------------------------------
class Experiment:
    """Every run of one model: validation grids, the combination, final runs."""

    def __init__(self, model: str, seeds, grid: slice, sides, cache: dict, cache_path: Path,
                 combo: Recipe | None):
        self.model, self.seeds, self.grid, self.sides = model, tuple(seeds), grid, sides
        self.cache, self.cache_path, self.combo_override = cache, cache_path, combo
        self.variants = dict(VARIANTS)
        self.prepared: dict[int, Prepared] = {}
        self.runs: list[dict] = []
        self.ram: dict[str, dict] = {}
        self.before: dict[str, list[float]] = {side: [] for side in SIDES}
        self.combo_gains: dict[str, float] = {}
        self.combo_components: list[str] = []
        self.combo_decided_by = ""

    def lrs(self, recipe: Recipe) -> tuple[float, ...]:
        return recipe.lr_grid()[self.grid]

    # One run of one side; reference runs come from the cache where present.
    def run(self, side: str, variant: str, recipe: Recipe, lr: float, seed: int,
            split: str) -> dict:
        prepared = self.prepared[seed]
        train_data, eval_data = prepared.split(split)
        t0 = time.time()
        if side == "tflm":
            result, training_model = tflm_run(prepared.setup.int8_model, recipe, lr, seed,
                                              train_data, eval_data)
            if split == "test" and variant not in self.ram:
                self.ram[variant] = {k: v for k, v in tflm_train.plan(training_model).items()
                                     if k != "timeline"}
        else:
            key = f"{self.model}/{seed}/{split}/{recipe.tag()}/{lr}"
            if key not in self.cache:
                self.cache[key] = reference_run(prepared.tuner(), recipe, lr, seed,
                                                train_data, eval_data)
            result = self.cache[key]
        record = {"model": self.model, "seed": seed, "side": side, "split": split,
                  "variant": variant, "recipe": asdict(recipe), "lr": lr,
                  "seconds": round(time.time() - t0, 2), **result}
        self.runs.append(record)
        return record

    def validate(self, variant: str, seed: int) -> None:
        recipe = self.variants[variant]
        for side in self.sides:
            for lr in self.lrs(recipe):
                self.run(side, variant, recipe, lr, seed, "val")

    def validation_scores(self, side: str) -> dict[str, dict[float, float]]:
        """variant -> lr -> mean validation accuracy over the seeds."""
        scores: dict[str, dict[float, list]] = {}
        for r in self.runs:
            if r["side"] == side and r["split"] == "val":
                scores.setdefault(r["variant"], {}).setdefault(r["lr"], []).append(r["accuracy"])
        return {v: {lr: float(np.mean(a)) for lr, a in by_lr.items()}
                for v, by_lr in scores.items()}

    def chosen_lr(self, side: str, variant: str) -> float:
        by_lr = self.validation_scores(side)[variant]
        return max(by_lr, key=lambda lr: (by_lr[lr], -lr))

    def execute(self, log=print) -> None:
        for seed in self.seeds:
            t0 = time.time()
            self.prepared[seed] = prepared = Prepared(self.model, seed)
            test = prepared.setup.target_test
            outputs = lr_grid.tflm_outputs(prepared.setup.int8_model, test.x)
            self.before["tflm"].append(float(np.mean(np.argmax(outputs, axis=1) == test.y)))
            for variant in VARIANTS:
                self.validate(variant, seed)
            lr_grid.save_cache(self.cache_path, self.cache, REFERENCE_PROTOCOL)
            log(f"{MODELS[self.model]}, seed {seed}: pretraining and validation grids "
                f"{time.time() - t0:.0f} s")
        self.decide_combo()
        for seed in self.seeds:
            t0 = time.time()
            self.validate(COMBO, seed)
            for variant, recipe in self.variants.items():
                lrs = {side: self.chosen_lr(side, variant) for side in self.sides}
                for side in self.sides:
                    self.run(side, variant, recipe, lrs[side], seed, "test")
                if "tflm" in self.sides and "reference" in self.sides \
                        and lrs["reference"] != lrs["tflm"]:
                    self.run("tflm", variant, recipe, lrs["reference"], seed, "test")
            prepared = self.prepared[seed]
            if prepared._qat_before is not None:
                self.cache[f"{self.model}/{seed}/before"] = prepared._qat_before
            if f"{self.model}/{seed}/before" in self.cache:
                self.before["reference"].append(self.cache[f"{self.model}/{seed}/before"])
            lr_grid.save_cache(self.cache_path, self.cache, REFERENCE_PROTOCOL)
            log(f"{MODELS[self.model]}, seed {seed}: combination grid and final runs "
                f"{time.time() - t0:.0f} s")

    def decide_combo(self) -> None:
        side = "tflm" if "tflm" in self.sides else "reference"
        scores = {v: max(by_lr.values()) for v, by_lr in self.validation_scores(side).items()}
        recipe, self.combo_gains, self.combo_components = choose_combo(scores)
        self.combo_decided_by = "tflm-train" if side == "tflm" else "TF reference"
        if self.combo_override is not None:
            recipe, self.combo_decided_by = self.combo_override, "--combo"
        self.variants[COMBO] = recipe

    # -- results -----------------------------------------------------------------
    def finals(self, side: str, variant: str, lr: float) -> list[dict]:
        return [r for r in self.runs if r["side"] == side and r["split"] == "test"
                and r["variant"] == variant and r["lr"] == lr]

    def summary(self) -> dict:
        """Per variant: chosen lrs, accuracies, difference, RAM."""
        rows = {}
        plain_ram = self.ram.get(PLAIN, {}).get("peak_ram_bytes")
        for variant, recipe in self.variants.items():
            row = {"recipe": asdict(recipe), "describe": recipe.describe(),
                   "lr_grid": list(self.lrs(recipe))}
            for side in self.sides:
                lr = self.chosen_lr(side, variant)
                finals = self.finals(side, variant, lr)
                acc = [r["accuracy"] for r in finals]
                row[side] = {"lr": lr, "accuracy": acc, "mean": float(np.mean(acc)),
                             "std": float(np.std(acc)),
                             "collapsed": sum(r["collapsed"] for r in finals)}
            if len(self.sides) == 2:
                row["difference_points"] = 100 * (row["tflm"]["mean"] - row["reference"]["mean"])
                row["within"] = round(row["difference_points"], 6) >= -WITHIN_POINTS
                at_ref = self.finals("tflm", variant, row["reference"]["lr"])
                row["tflm_at_reference_lr"] = float(np.mean([r["accuracy"] for r in at_ref]))
            if variant in self.ram:
                ram = self.ram[variant]
                row["ram"] = ram
                if plain_ram is not None:
                    row["ram_vs_plain"] = ram["peak_ram_bytes"] - plain_ram
            rows[variant] = row
        return rows

    def to_json(self) -> dict:
        return {"runs": self.runs, "ram": self.ram, "before": self.before,
                "combo": {"recipe": asdict(self.variants[COMBO]),
                          "components": self.combo_components,
                          "gains_points": self.combo_gains, "decided_by": self.combo_decided_by},
                "validation": {side: {v: {str(lr): a for lr, a in by_lr.items()}
                                      for v, by_lr in self.validation_scores(side).items()}
                               for side in self.sides},
                "summary": self.summary()}


# -- markdown ------------------------------------------------------------------------------
def fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def ram_cells(row: dict) -> str:
    ram = row.get("ram")
    if ram is None:
        return "n/a | n/a | n/a"
    breakdown = ram.get("state_breakdown")
    if isinstance(breakdown, dict):
        # The trainables have their own column.
        parts = ", ".join(f"{k} {v}" for k, v in breakdown.items() if v and k != "trainables")
        state = f"{ram.get('optimizer_state_bytes', 'n/a')} ({parts or 'none'})"
    else:
        state = str(ram.get("optimizer_state_bytes", "n/a"))
    delta = row.get("ram_vs_plain")
    delta = "" if delta is None or delta == 0 else f" ({delta:+d})"
    return f"{ram['peak_ram_bytes']}{delta} | {state} | {ram.get('trainable_bytes', 'n/a')}"


def model_section(exp: Experiment) -> str:
    rows = exp.summary()
    both = len(exp.sides) == 2
    parts = [f"### {MODELS[exp.model]}"]
    before = [f"{name} {fmt(np.mean(exp.before[side]), np.std(exp.before[side]))}"
              for side, name in (("tflm", "tflm-train int8"), ("reference", "TF QAT"))
              if exp.before[side]]
    parts.append("Accuracy before training: " + ", ".join(before) + ".")
    combo = exp.variants[COMBO]
    gains = ", ".join(f"{c} {g:+.1f}" for c, g in exp.combo_gains.items())
    parts.append(f"Best combination: **{combo.describe()}** (decided by {exp.combo_decided_by}"
                 f" validation accuracy; gain over plain SGD in points: {gains}).")
    header = "| variant | recipe | lr grid |"
    rule = "|---|---|---|"
    if "tflm" in exp.sides:
        header += " tflm-train lr | tflm-train int8 accuracy |"
        rule += "---|---|"
    if "reference" in exp.sides:
        header += " TF lr | TF QAT accuracy |"
        rule += "---|---|"
    if both:
        header += " int8 − TF (points) | within 1 point | tflm-train at TF's lr |"
        rule += "---|---|---|"
    header += " peak RAM (bytes, vs plain) | optimizer state (bytes) | trainable (bytes) |"
    rule += "---|---|---|"
    lines = [header, rule]
    for variant, row in rows.items():
        line = f"| {variant} | {row['describe']} | {', '.join(map(str, row['lr_grid']))} |"
        for side in exp.sides:
            s = row[side]
            collapsed = (f" ({s['collapsed']}/{len(s['accuracy'])} collapsed)"
                         if s["collapsed"] else "")
            line += f" {s['lr']} | {fmt(s['mean'], s['std'])}{collapsed} |"
        if both:
            same = "same lr" if row["tflm"]["lr"] == row["reference"]["lr"] else \
                f"{row['tflm_at_reference_lr']:.3f}"
            line += (f" {row['difference_points']:+.1f} | {'yes' if row['within'] else '**no**'} |"
                     f" {same} |")
        lines.append(line + f" {ram_cells(row)} |")
    parts.append("\n".join(lines))
    if both:
        verdicts = "; ".join(f"{v} {'yes' if r['within'] else 'NO'} ({r['difference_points']:+.1f})"
                             for v, r in rows.items())
        parts.append(f"int8 within {WITHIN_POINTS:g} point of the TF reference "
                     f"(tflm-train ≥ TF − {WITHIN_POINTS:g}): {verdicts}.")
    parts.append(validation_table(exp))
    return "\n\n".join(parts)


def validation_table(exp: Experiment) -> str:
    """Mean validation accuracy over the seeds per grid lr (what chose the lrs)."""
    scores = {side: exp.validation_scores(side) for side in exp.sides}
    names = " / ".join("tflm-train" if s == "tflm" else "TF" for s in exp.sides)
    width = max(len(exp.lrs(r)) for r in exp.variants.values())
    lines = [f"Validation accuracy, mean over seeds ({names}), per grid lr:", "",
             "| variant | " + " | ".join(f"lr {i + 1}" for i in range(width)) + " |",
             "|---|" + "---|" * width]
    for variant, recipe in exp.variants.items():
        cells = [f"{lr}: " + " / ".join(f"{scores[s][variant][lr]:.3f}" for s in exp.sides)
                 for lr in exp.lrs(recipe)]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(experiments: list[Experiment], seeds, grid: slice) -> str:
    intro = (
        f"Pretrained models adapted to the shifted digits domain of "
        f"`examples/digits_adaptation.py` with the `{SCHEME_NAME}` scheme "
        f"({json.dumps(SCHEME)}): {EPOCHS} epochs over the target training split in the order "
        f"of `tflm_train.training.sample_order`, mean ± std over seeds "
        f"{', '.join(map(str, seeds))} (`python examples/optimizer_recipes.py --results "
        f"docs/results.md`). "
        f"Variants are the scheme's `optimizer` fields: warm-up + cosine has `warmup_steps` = "
        f"{WARMUP_FRACTION:.0%} of the run's updates (at least 1) and `decay_steps` the rest, "
        f"`alpha` 0; momentum is {MOMENTUM}; mini-batch B averages the gradients of B "
        f"consecutive samples of the 3-epoch sample stream and drops the trailing partial "
        f"batch. The best combination is built from the single variants' validation accuracy: "
        f"every component (schedule, momentum, the better mini-batch size) that beats plain "
        f"SGD, or the best two if fewer do. Learning rate = bias learning rate, from a "
        f"{len(BASE_LRS)}-point grid per variant: {list(BASE_LRS)} × 2 with the cosine "
        f"schedule (peak vs mean lr), × (1 − m) with momentum (effective step "
        f"lr / (1 − m)), × √B with mini-batch B (square-root scaling), multiplied in a "
        f"combination; each side "
        f"takes the grid lr with the best validation accuracy averaged over the seeds "
        f"(training on 80 % of the target training split, scoring on the other 20 %), then "
        f"trains on the whole split and is scored on the target test split. tflm-train: host "
        f"simulator, stochastic rounding, accuracy of the exported int8 model under the "
        f"tflite-micro wheel; RAM from `tflm_train.plan` (x86-64 host layout; \"optimizer "
        f"state\" is its `optimizer_state_bytes`, with `state_breakdown` where reported, "
        f"trainables aside). TF QAT: the same pretrained model as a tfmot fake-quant model "
        f"(ranges and BN statistics frozen at the source domain), the same parameters trained "
        f"through gradient masks with `tf.keras.optimizers.SGD(learning_rate=<the spec's f(t) "
        f"as a LearningRateSchedule>, momentum=m)` on the mean loss of the same batches "
        f"(`examples/_recipe_reference.py`). \"tflm-train at TF's lr\": tflm-train's test "
        f"accuracy with the lr TF chose, where the two differ.")
    if grid != slice(None):
        intro += " Quick smoke run: a subset of the grid and seeds; not a result."
    return "\n\n".join([intro] + [model_section(exp) for exp in experiments])


# -- main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: digits model, seed 0, the 2 smaller lrs of each grid")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--results", type=Path, help="write the section into this markdown file")
    p.add_argument("--raw", type=Path, help="write every run's numbers to this JSON file")
    p.add_argument("--reference-cache", type=Path,
                   default=Path(__file__).resolve().parent.parent / "docs"
                   / "optimizer_recipes_reference.json",
                   help="JSON cache of the TF reference runs")
    p.add_argument("--reference-only", action="store_true",
                   help="only the TF reference (the combination is then decided on its "
                        "validation results, or by --combo)")
    p.add_argument("--combo", nargs="+", metavar="PART",
                   help="force the combination instead of the rule: cosine, momentum, B<n>")
    args = p.parse_args(argv)
    sides = ("reference",) if args.reference_only else SIDES
    if "tflm" in sides:
        missing = feature_missing()
        if missing is not None:
            print(f"tflm-train does not take the new optimizer fields yet ({missing}); "
                  f"use --reference-only", file=sys.stderr)
            return 2
    # Deterministic TF ops, so a rerun pretrains the models the cached
    # reference was computed on.
    tf.config.experimental.enable_op_determinism()
    for kind, settings in (("cosine", dict(lr=0.1, warmup_steps=22, decay_steps=426, updates=448)),
                           ("constant", dict(lr=0.1, updates=10))):
        error = rr.check_schedule(kind, **settings)
        if error > 1e-6:
            raise AssertionError(f"the TF {kind} schedule is off the spec's f(t) by {error}")
    models = args.models or (QUICK["models"] if args.quick else tuple(MODELS))
    seeds = args.seeds or (QUICK["seeds"] if args.quick else SEEDS)
    grid = QUICK["grid"] if args.quick else slice(None)
    combo = parse_combo(args.combo) if args.combo else None
    cache = lr_grid.load_cache(args.reference_cache, REFERENCE_PROTOCOL)
    t0 = time.time()
    experiments = []
    for model in models:
        exp = Experiment(model, seeds, grid, sides, cache, args.reference_cache, combo)
        exp.execute(log=lambda line: print(line, flush=True))
        experiments.append(exp)
    seconds = time.time() - t0
    body = report(experiments, seeds, grid)
    print(f"{HEADING}\n\n{body}\n\ntotal run time {seconds / 60:.1f} min")
    if args.results is not None:
        da.write_section(args.results, HEADING, body)
    if args.raw is not None:
        args.raw.write_text(json.dumps(
            {"seconds": seconds, "sides": list(sides), "seeds": list(seeds),
             "quick": args.quick, "protocol": REFERENCE_PROTOCOL,
             "models": {exp.model: exp.to_json() for exp in experiments}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
