"""Learning-rate grid: does on-device training collapse, and how far is it
from TensorFlow QAT fine-tuning with the same protocol?

Three pretrained int8 models adapt to the shifted digits domain of
examples/digits_adaptation.py:

* "digits": that example's CNN, pretraining, split and int8 conversion;
* "narrow": the same CNN with its logits divided by 10 (a temperature-scaled
  classifier) before int8 conversion, so the calibrated output range is a
  tenth of the usual: the case where a loss on saturated int8 logits died;
* "residual": a small residual CNN (conv+BN+ReLU6 stem, one residual block
  with ADD, global average pooling, linear classifier) pretrained with
  tfmot quantization-aware training and converted from the QAT model.

Each scheme x learning rate x seed runs 3 epochs of batch-1 plain SGD over
the target training split in the order of `tflm_train.training.sample_order`,
on both sides:

* tflm-train: the host simulator (`Trainer`, learning rate = bias learning
  rate = lr); accuracy of the exported int8 inference model on the target
  test split, run by the tflite-micro wheel (argmax of the int8 output), and
  how often that argmax equals the argmax of the training graph's
  real-valued logits (export rescales the output range to them).
* reference: the same pretrained model as a tfmot QAT model, fine-tuned in a
  GradientTape loop on the same parameters (examples/_qat_reference.py);
  accuracy of the fake-quant model. These results do not depend on
  tflm-train's code and are cached in --reference-cache; a rerun only
  computes the missing ones.

A run has collapsed if its last 50 or more step losses are exactly equal,
or if the model predicts one class for at least 95 % of the test samples.

  python examples/lr_grid.py --quick                     # smoke test, ~2 min
  python examples/lr_grid.py --results docs/results.md --raw lr_grid.json \
      --compare-raw docs/lr_grid_format_v1.json

`--compare-raw` adds the tflm-train columns of an earlier run of this
script (docs/lr_grid_format_v1.json: the same grid on commit 503610f, format
version 1, whose loss read the saturated int8 logits).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tflite_micro.python.tflite_micro import runtime as tflm  # noqa: E402

import _qat_reference as ref  # noqa: E402
import digits_adaptation as da  # noqa: E402
import tflm_train  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.runtime import quantize_input  # noqa: E402
from tflm_train.training import sample_order, train  # noqa: E402

SCHEMES = {
    "classifier": {"preset": "classifier"},
    "last-k:2": {"preset": "last-k:2"},
    "bias-only": {"preset": "bias-only"},
    "sparse": {"bias_update_layers": 3, "weight_update": {"-2": 0.5}},
}
LRS = (0.001, 0.003, 0.01, 0.03, 0.05)
SEEDS = (0, 1, 2)
QUICK = {"schemes": ("sparse",), "lrs": (0.01, 0.05), "seeds": (0,)}
EPOCHS = 3
MODELS = {"digits": "digits CNN", "narrow": "digits CNN, logits / 10 (narrow output range)",
          "residual": "residual QAT"}
NARROW_TEMPERATURE = 10.0
COLLAPSE_EQUAL_LOSSES = 50
COLLAPSE_MAJORITY = 0.95
HEADING = "## Learning-rate grid: collapse and accuracy vs TF QAT"
# Everything the cached reference results depend on; a cache made with
# other settings is discarded.
REFERENCE_PROTOCOL = {"epochs": EPOCHS, "calibration_steps": ref.CALIBRATION_STEPS,
                      "calibration_batch": ref.CALIBRATION_BATCH, "version": 1}


@dataclass
class Setup:
    """One model pretrained for one seed, and its target-domain data."""
    int8_model: bytes
    target_train: Dataset
    target_test: Dataset
    qat_model: Callable  # () -> the reference's tfmot QAT model, built on demand


def prepare_digits(seed: int) -> Setup:
    """digits_adaptation's CNN: float pretraining, post-training int8."""
    source, target_train, target_test = da.load_domains(seed)
    model = da.pretrain(da.build_model(seed), source)
    int8_model = tflm_train.to_int8_tflite(model, representative_data=source.x[:200])
    return Setup(int8_model, target_train, target_test,
                 lambda: ref.quantize_pretrained(model, source.x))


def prepare_residual(seed: int) -> Setup:
    """The residual CNN: QAT pretraining, int8 conversion of the QAT model."""
    source, target_train, target_test = da.load_domains(seed)
    model = ref.pretrain_qat(ref.residual_model(seed), source.x, source.y)
    int8_model = tflm_train.to_int8_tflite(model, representative_data=source.x[:200])
    return Setup(int8_model, target_train, target_test, lambda: model)


def prepare_narrow(seed: int) -> Setup:
    """digits_adaptation's CNN with its classifier's logits divided by
    NARROW_TEMPERATURE: same argmax, a tenth of the output range."""
    source, target_train, target_test = da.load_domains(seed)
    model = da.pretrain(da.build_model(seed), source)
    classifier = model.get_layer("classifier")
    classifier.set_weights([w / NARROW_TEMPERATURE for w in classifier.get_weights()])
    int8_model = tflm_train.to_int8_tflite(model, representative_data=source.x[:200])
    return Setup(int8_model, target_train, target_test,
                 lambda: ref.quantize_pretrained(model, source.x))


PREPARE = {"digits": prepare_digits, "narrow": prepare_narrow, "residual": prepare_residual}


# -- outcome of one run -------------------------------------------------------
def outcome(losses: list[float], predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and the collapse criteria of one run."""
    tail = trailing_equal(losses)
    counts = np.bincount(predictions, minlength=da.NUM_CLASSES)
    majority = float(counts.max() / len(predictions))
    per_epoch = np.array_split(np.asarray(losses), EPOCHS)
    return {"accuracy": float(np.mean(predictions == labels)),
            "collapsed": tail >= COLLAPSE_EQUAL_LOSSES or majority >= COLLAPSE_MAJORITY,
            "tail_equal_losses": tail, "tail_loss": losses[-1],
            "majority_class": int(counts.argmax()), "majority_fraction": majority,
            "epoch_mean_losses": [float(chunk.mean()) for chunk in per_epoch]}


def trailing_equal(values: list[float]) -> int:
    """Length of the run of values exactly equal to the last one, at the end."""
    count = 0
    for value in reversed(values):
        if value != values[-1]:
            break
        count += 1
    return count


# -- tflm-train side ----------------------------------------------------------
def tflm_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    """An int8 inference model's outputs under the tflite-micro wheel, one
    row per float sample (quantized with the model's input parameters)."""
    interpreter = tflm.Interpreter.from_bytes(model, arena_size=256 * 1024)
    params = interpreter.get_input_details(0)["quantization_parameters"]
    rows = []
    for sample in x:
        interpreter.set_input(quantize_input(sample[None], params["scales"][0],
                                             params["zero_points"][0]), 0)
        interpreter.invoke()
        rows.append(interpreter.get_output(0).reshape(-1).copy())
    return np.array(rows)


def tflm_runs(setup: Setup, model: str, seed: int, schemes, lrs) -> list[dict]:
    """Every scheme x lr of one model and seed on the host simulator."""
    test = setup.target_test
    before = float(np.mean(np.argmax(tflm_outputs(setup.int8_model, test.x), axis=1) == test.y))
    runs = []
    for scheme in schemes:
        # The seed also varies the stochastic rounding, as in digits_adaptation.
        training_model = tflm_train.convert(
            setup.int8_model, dict(SCHEMES[scheme], optimizer={"seed": seed + 1}))
        for lr in lrs:
            trainer = tflm_train.Trainer(training_model, lr=lr, bias_lr=lr)
            history = train(trainer, setup.target_train, epochs=EPOCHS, seed=seed,
                            progress=False, log=lambda *_: None)
            outputs = tflm_outputs(trainer.export_inference_model(), test.x)
            predictions = np.argmax(outputs, axis=1)
            real = real_logit_classes(trainer, test.x)
            # Where the int8 argmax differs, is the real argmax tied with it?
            tied = outputs[np.arange(len(real)), real] == outputs.max(axis=1)
            runs.append({"model": model, "scheme": scheme, "lr": lr, "seed": seed,
                         "before": before,
                         "export_agreement": float(np.mean(predictions == real)),
                         "export_contradictions": int(np.sum(~tied)),
                         **outcome(history["loss_history"], predictions, test.y)})
    return runs


def real_logit_classes(trainer, x: np.ndarray) -> np.ndarray:
    """Argmax of the training graph's real-valued logits (infer mode)."""
    classes = []
    for sample in x:
        trainer.predict(sample)
        classes.append(int(np.argmax(trainer.last_real_output())))
    return np.array(classes)


# -- reference side -----------------------------------------------------------
def run_key(model: str, scheme: str, lr: float, seed: int) -> str:
    """The cache key of one reference run."""
    return f"{model}/{scheme}/{lr}/{seed}"


def reference_runs(setup: Setup, model: str, seed: int, schemes, lrs,
                   cache: dict) -> list[dict]:
    """Every scheme x lr of one model and seed with TF QAT, from `cache`
    where present; new results are added to `cache`."""
    grid = [(scheme, lr) for scheme in schemes for lr in lrs]
    missing = [(s, lr) for s, lr in grid if run_key(model, s, lr, seed) not in cache]
    if missing:
        qat_model = setup.qat_model()
        tuner = ref.FineTuner(qat_model)
        data, test = setup.target_train, setup.target_test
        before = float(np.mean(ref.predict_classes(qat_model, test.x) == test.y))
        order = [sample_order(len(data), seed, epoch) for epoch in range(EPOCHS)]
        for scheme, lr in missing:
            losses = tuner.run(scheme, data.x, data.y, order, lr)
            predictions = ref.predict_classes(qat_model, test.x)
            cache[run_key(model, scheme, lr, seed)] = {"before": before,
                                                       **outcome(losses, predictions, test.y)}
    return [{"model": model, "scheme": s, "lr": lr, "seed": seed,
             **cache[run_key(model, s, lr, seed)]} for s, lr in grid]


def load_cache(path: Path, protocol: dict = REFERENCE_PROTOCOL) -> dict:
    """The cached reference runs by key, if made with this protocol."""
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    if stored.get("protocol") != protocol:
        print(f"{path}: made with another protocol, recomputing the reference")
        return {}
    return stored["runs"]


def save_cache(path: Path, runs: dict, protocol: dict = REFERENCE_PROTOCOL) -> None:
    """Writes the cache through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"protocol": protocol, "runs": runs},
                              indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# -- tables ---------------------------------------------------------------------
def by_config(runs: list[dict]) -> dict[tuple[str, float], list[dict]]:
    """Runs grouped by (scheme, lr), in run order."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["scheme"], run["lr"]), []).append(run)
    return groups


def mean_std(runs: list[dict], key: str = "accuracy") -> str:
    values = np.array([run[key] for run in runs])
    return f"{values.mean():.3f} ± {values.std():.3f}"


def collapsed(runs: list[dict]) -> str:
    return f"{sum(run['collapsed'] for run in runs)}/{len(runs)}"


def grid_table(tflm: list[dict], reference: list[dict], earlier: list[dict]) -> str:
    """Rows scheme x lr: each side's accuracy over seeds and collapse counts,
    the lowest export/real-logit argmax agreement, and an earlier run's
    tflm-train columns if given."""
    ours, theirs, before = by_config(tflm), by_config(reference), by_config(earlier)
    header = ("| scheme | lr | tflm-train int8 accuracy | collapsed | export = real argmax (min) "
              "| contradictions ")
    rule = "|---|---|---|---|---|---|"
    if before:
        header += "| format v1 accuracy | v1 collapsed "
        rule += "---|---|"
    lines = [header + "| TF QAT accuracy | TF QAT collapsed |", rule + "---|---|"]
    for (scheme, lr), runs in ours.items():
        agreement = min(run["export_agreement"] for run in runs)
        contradictions = sum(run["export_contradictions"] for run in runs)
        row = (f"| {scheme} | {lr} | {mean_std(runs)} | {collapsed(runs)} | {agreement:.3f} "
               f"| {contradictions} ")
        if before:
            row += f"| {mean_std(before[scheme, lr])} | {collapsed(before[scheme, lr])} "
        lines.append(row + f"| {mean_std(theirs[scheme, lr])} | "
                     f"{collapsed(theirs[scheme, lr])} |")
    return "\n".join(lines)


def best_lr(groups: dict, scheme: str) -> tuple[float, list[dict]]:
    """The lr with the best mean accuracy over seeds for `scheme`, and its runs."""
    candidates = [(lr, runs) for (s, lr), runs in groups.items() if s == scheme]
    return max(candidates, key=lambda item: np.mean([r["accuracy"] for r in item[1]]))


def summary_table(tflm: list[dict], reference: list[dict], earlier: list[dict]) -> str:
    """Per scheme: each side at its best learning rate."""
    ours, theirs, before = by_config(tflm), by_config(reference), by_config(earlier)
    header = "| scheme | tflm-train best lr | tflm-train accuracy | "
    rule = "|---|---|---|"
    if before:
        header += "format v1 best lr | format v1 accuracy | "
        rule += "---|---|"
    lines = [header + "TF QAT best lr | TF QAT accuracy | tflm-train − TF QAT (points) |",
             rule + "---|---|---|"]
    for scheme in dict.fromkeys(run["scheme"] for run in tflm):
        lr_a, runs_a = best_lr(ours, scheme)
        lr_b, runs_b = best_lr(theirs, scheme)
        diff = 100 * (np.mean([r["accuracy"] for r in runs_a])
                      - np.mean([r["accuracy"] for r in runs_b]))
        row = f"| {scheme} | {lr_a} | {mean_std(runs_a)} | "
        if before:
            lr_v1, runs_v1 = best_lr(before, scheme)
            row += f"{lr_v1} | {mean_std(runs_v1)} | "
        lines.append(row + f"{lr_b} | {mean_std(runs_b)} | {diff:+.1f} |")
    return "\n".join(lines)


def report(results: dict, seeds, earlier: dict) -> str:
    """The markdown section body: protocol, then per model both tables."""
    parts = [
        f"Pretrained models adapted to the shifted digits domain of "
        f"`examples/digits_adaptation.py`: {EPOCHS} epochs of batch-1 plain SGD over the "
        f"target training split (sample order `tflm_train.training.sample_order`), "
        f"learning rate = bias learning rate; accuracy on the target test split, mean ± std "
        f"over seeds {', '.join(map(str, seeds))} (`python examples/lr_grid.py "
        f"--results docs/results.md`). tflm-train: host simulator, stochastic rounding, "
        f"accuracy of the exported int8 inference model under the tflite-micro wheel. "
        f"TF QAT: the same pretrained model as a tfmot fake-quant model, quantizer ranges "
        f"and BN statistics frozen at the source domain, the scheme's parameters trained "
        f"through gradient masks (the stem's BN beta is its bias). Collapsed: the last "
        f"{COLLAPSE_EQUAL_LOSSES}+ step losses exactly equal, or one class predicted for "
        f"≥ {COLLAPSE_MAJORITY:.0%} of the test samples. Best lr is chosen on the test "
        f"split for all sides alike. \"export = real argmax\": the lowest, over seeds, "
        f"share of test samples on which the exported int8 model's argmax equals the "
        f"training graph's real-valued logits' argmax; \"contradictions\": over all seeds, "
        f"test samples on which the int8 output ranks the real argmax below another class "
        f"(the other disagreements are ties at int8 resolution, broken towards the lower "
        f"index)."]
    if earlier:
        parts[0] += (" Format v1 columns: the same grid on commit 503610f, whose loss read "
                     "the saturated int8 logits (`--compare-raw`).")
    for model, runs in results.items():
        before = earlier.get(model, {}).get("tflm", [])
        parts += [f"### {MODELS[model]}",
                  f"Accuracy before training: tflm-train int8 {mean_std(runs['tflm'], 'before')}, "
                  f"TF QAT {mean_std(runs['reference'], 'before')}.",
                  grid_table(runs["tflm"], runs["reference"], before),
                  "Best learning rate per scheme:",
                  summary_table(runs["tflm"], runs["reference"], before)]
    return "\n\n".join(parts)


# -- main -------------------------------------------------------------------------
def run_grid(models, schemes, lrs, seeds, cache_path: Path) -> dict:
    """model -> {"tflm": runs, "reference": runs}; the cache is saved after
    every model and seed."""
    cache = load_cache(cache_path)
    results = {model: {"tflm": [], "reference": []} for model in models}
    for model in models:
        for seed in seeds:
            t0 = time.time()
            setup = PREPARE[model](seed)
            results[model]["tflm"] += tflm_runs(setup, model, seed, schemes, lrs)
            results[model]["reference"] += reference_runs(setup, model, seed, schemes, lrs, cache)
            save_cache(cache_path, cache)
            print(f"{MODELS[model]}, seed {seed}: {time.time() - t0:.0f} s", flush=True)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: scheme {QUICK['schemes']}, lrs {QUICK['lrs']}, seeds {QUICK['seeds']}")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--results", type=Path, help="write the tables into this markdown file")
    p.add_argument("--raw", type=Path, help="write every run's numbers to this JSON file")
    p.add_argument("--compare-raw", type=Path,
                   help="--raw JSON of an earlier run: its tflm-train columns are shown beside")
    p.add_argument("--reference-cache", type=Path,
                   default=Path(__file__).resolve().parent.parent / "docs" / "lr_grid_reference.json",
                   help="JSON cache of the TF QAT reference runs")
    args = p.parse_args(argv)
    # Deterministic TF ops, so a rerun pretrains the models the cached
    # reference was computed on.
    tf.config.experimental.enable_op_determinism()
    grid = QUICK if args.quick else {"schemes": tuple(SCHEMES), "lrs": LRS, "seeds": SEEDS}
    t0 = time.time()
    results = run_grid(args.models, grid["schemes"], grid["lrs"], grid["seeds"],
                       args.reference_cache)
    seconds = time.time() - t0
    earlier = json.loads(args.compare_raw.read_text())["results"] if args.compare_raw else {}
    body = report(results, grid["seeds"], earlier)
    print(f"{HEADING}\n\n{body}\n\ntotal run time {seconds / 60:.1f} min")
    if args.results is not None:
        da.write_section(args.results, HEADING, body)
    if args.raw is not None:
        args.raw.write_text(json.dumps({"seconds": seconds, "grid": grid, "results": results},
                                       indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
