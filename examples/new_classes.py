"""New classes on the device: a fresh classifier head, zero-initialised or
imprinted from the first k shots, fine-tuned on the device.

A small CNN (examples/digits_adaptation.py's, with 5 outputs) is pretrained
in Keras (float) on scikit-learn's bundled 8x8 digits 0-4 only and quantized
to int8 (calibrated on digits 0-4). The new task is digits 5-9 (relabelled
0-4), never seen in pretraining: the device gets a fresh 5-class head
(scheme field "head", docs/scheme.md) and k labelled shots per class.

  python examples/new_classes.py --quick          # ~1-2 min smoke subset
  python examples/new_classes.py --results docs/results.md --raw new_classes.json

Per seed the new-class samples are split per class into a support pool and a
test set (half/half). The k-shot support set is the first k samples of each
class in a seeded permutation of the pool (so the 1-shot set is inside the
5-shot set, which is inside the 10-shot set); the validation set, used only
to choose the learning rate and the epochs, is VAL_PER_CLASS other pool
samples per class. Variants (all with the backbone frozen unless said):

* zero-init + FT: head weights and bias 0, SGD on the support set for E epochs;
* imprint only: the support set fed once, every sample imprinted
  (the head row of a class = its normalised mean feature), no SGD step;
* imprint + FT: the support set fed E epochs: epoch 1 imprints, the others
  are SGD;
* last-k:2, imprint + FT: as above, and the last conv layer trains too.

Every step is `Trainer.step(x, y)` in the order of
`tflm_train.training.sample_order(n, seed, epoch)`. Accuracy is that of the
exported int8 inference model (5 outputs) under the tflite-micro wheel on the
test set. Baselines on the same int8 features (the head's input, read from
the tflite-micro wheel with all tensors preserved, dequantized), in numpy and
scikit-learn: nearest class mean with cosine similarity on the k shots (what
imprinting computes), and logistic regression on the k shots. For one seed and
k = 5, the Cortex-M4 firmware (QEMU) runs the same steps of three variants and
its weights_sha256 is compared with the host's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from tflite_micro.python.tflite_micro import runtime as tflm  # noqa: E402

import digits_adaptation as da  # noqa: E402
import tflm_train  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.runtime import quantize_input  # noqa: E402
from tflm_train.training import sample_order  # noqa: E402

HEADING = "## New classes on the device: fresh head, imprinting"
OLD_CLASSES = (0, 1, 2, 3, 4)
NEW_CLASSES = (5, 6, 7, 8, 9)
NUM_NEW = len(NEW_CLASSES)
SHOTS = (1, 5, 10)
SEEDS = (0, 1, 2)
VAL_PER_CLASS = 30
LRS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
EPOCHS = (2, 5, 10, 20, 40, 80)
FIRMWARE_SEED, FIRMWARE_SHOTS = 0, 5
FIRMWARE_VARIANTS = ("zero-init + FT", "imprint only", "imprint + FT")
QUICK = {"seeds": (0,), "shots": (5,), "lrs": (0.003,), "epochs": (5,),
         "firmware_variants": FIRMWARE_VARIANTS}
FIRMWARE_FIGURES = ("ram_bytes", "static_ram_bytes", "heap_used_bytes", "peak_stack_bytes",
                    "arena_bytes", "flash_bytes", "instructions_per_train_step")
FULLY_CONNECTED = 9  # tflite BuiltinOperator

# name -> (preset, head init, tuned: SGD epochs and lr chosen on validation)
VARIANTS = {
    "zero-init + FT": ("classifier", "zeros", True),
    "imprint only": ("classifier", "imprint", False),
    "imprint + FT": ("classifier", "imprint", True),
    "last-k:2, imprint + FT": ("last-k:2", "imprint", True),
}
NOTES = {
    "zero-init + FT": "head 0, E epochs of SGD",
    "imprint only": "support set fed once: every sample imprinted, no SGD",
    "imprint + FT": "epoch 1 imprints, epochs 2..E SGD",
    "last-k:2, imprint + FT": "as imprint + FT, the last conv layer trains too",
}


# -- data and pretraining -----------------------------------------------------
def load_digits_split(seed: int) -> dict:
    """Old-class data for pretraining; new-class data (labels 0-4) split
    per class into pool and test (half/half); nested k-shot support index
    lists and a validation set from the pool."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    old = np.isin(y, OLD_CLASSES)
    new_x, new_y = x[~old], y[~old] - NEW_CLASSES[0]
    rng = np.random.default_rng([seed, 12])
    pools, test = [], []
    for c in range(NUM_NEW):
        members = rng.permutation(np.flatnonzero(new_y == c))
        half = len(members) // 2
        pools.append(members[:half])
        test.extend(members[half:])
    max_k = max(SHOTS)
    support = {k: np.concatenate([p[:k] for p in pools]) for k in SHOTS}
    val = np.concatenate([p[max_k:max_k + VAL_PER_CLASS] for p in pools])
    test = np.array(sorted(test))
    return {"pretrain": Dataset(x[old], y[old]),
            "support": {k: Dataset(new_x[i], new_y[i]) for k, i in support.items()},
            "val": Dataset(new_x[val], new_y[val]),
            "test": Dataset(new_x[test], new_y[test]),
            "pool_sizes": [len(p) for p in pools]}


def pretrain_int8(seed: int, data: Dataset) -> bytes:
    """digits_adaptation's CNN with a 5-class classifier, pretrained in
    float on the old classes, int8 (calibrated on old-class samples)."""
    import tf_keras as keras

    base = da.build_model(seed)  # seeds the layer initialisers
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), *base.layers[:-1],
                              keras.layers.Dense(len(OLD_CLASSES), name="classifier")],
                             name="digits_cnn")
    da.pretrain(model, data)
    return tflm_train.to_int8_tflite(model, representative_data=data.x[:200])


# -- the tflite-micro wheel ---------------------------------------------------
def _head_input(model: bytes) -> tuple[int, float, int]:
    """(tensor index, scale, zero point) of the last FULLY_CONNECTED's input."""
    obj = tflm.convert_bytearray_to_object(bytearray(model))
    sg = obj.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in obj.operatorCodes]
    fcs = [op for op in sg.operators if codes[op.opcodeIndex] == FULLY_CONNECTED]
    index = int(fcs[-1].inputs[0])
    q = sg.tensors[index].quantization
    return index, float(q.scale[0]), int(q.zeroPoint[0])


def tflm_run(model: bytes, x: np.ndarray, features: bool = False):
    """The int8 model under the tflite-micro wheel, one row per float sample:
    its int8 outputs, and with `features` also the dequantized head input."""
    config = (tflm.InterpreterConfig.kPreserveAllTensors if features
              else tflm.InterpreterConfig.kAllocationRecording)
    interpreter = tflm.Interpreter.from_bytes(model, arena_size=256 * 1024,
                                              intrepreter_config=config)
    params = interpreter.get_input_details(0)["quantization_parameters"]
    head = _head_input(model) if features else None
    outputs, feats = [], []
    for sample in x:
        interpreter.set_input(quantize_input(sample[None], params["scales"][0],
                                             params["zero_points"][0]), 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).reshape(-1).copy())
        if head is not None:
            index, scale, zero_point = head
            q = interpreter.GetTensor(index, 0)["tensor_data"].reshape(-1)
            feats.append(np.float32(scale) * (q.astype(np.float32) - np.float32(zero_point)))
    return (np.array(outputs), np.array(feats)) if features else np.array(outputs)


# -- baselines on the int8 features -------------------------------------------
def ncm_cosine(train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray) -> np.ndarray:
    """Nearest class mean, cosine similarity: the class whose normalised mean
    k-shot feature has the largest dot product with the sample's feature
    (what on-device imprinting computes, docs/scheme.md)."""
    means = np.stack([train_f[train_y == c].mean(axis=0) for c in range(NUM_NEW)])
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.argmax(test_f @ means.T, axis=1)


def logistic_regression(train_f, train_y, test_f) -> np.ndarray:
    """scikit-learn's multinomial logistic regression, default L2 (C = 1)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=5000)
    clf.fit(train_f, train_y)
    return clf.predict(test_f)


# -- on-device training (host simulator) --------------------------------------
def scheme_for(variant: str, k: int, lr: float, seed: int) -> dict:
    preset, init, _ = VARIANTS[variant]
    head = {"num_classes": NUM_NEW, "init": init}
    if init == "imprint":
        head["shots"] = k
    return {"preset": preset, "head": head,
            "optimizer": {"type": "sgd", "lr": lr, "bias_lr": lr,
                          "rounding": "stochastic", "seed": seed + 1}}


def fit(trainer, data: Dataset, epochs: int, seed: int, checkpoint=None) -> int:
    """`epochs` passes of Trainer.step over `data` in the seeded order;
    checkpoint(epoch) after each epoch. Returns the number of steps."""
    steps = 0
    for epoch in range(epochs):
        for i in sample_order(len(data), seed, epoch):
            trainer.step(data.x[i], int(data.y[i]))
            steps += 1
        if checkpoint is not None:
            checkpoint(epoch + 1)
    return steps


def real_predictions(trainer, data: Dataset) -> np.ndarray:
    """Argmax of the training graph's real-valued logits (infer mode)."""
    predictions = []
    for x, y in zip(data.x, data.y):
        trainer.evaluate_sample(x, int(y))
        predictions.append(int(np.argmax(trainer.last_real_output())))
    return np.array(predictions)


def host_accuracy(trainer, data: Dataset) -> float:
    return float(np.mean(real_predictions(trainer, data) == data.y))


def choose(int8_model, variant, k, seed, support, val, lrs, epoch_grid) -> dict:
    """Validation accuracy of every lr x epochs; the best (ties: fewer
    epochs, then the smaller lr)."""
    scores = []
    for lr in lrs:
        model = tflm_train.convert(int8_model, scheme_for(variant, k, lr, seed))
        trainer = tflm_train.Trainer(model)

        def checkpoint(epoch, lr=lr, trainer=trainer):
            if epoch in epoch_grid:
                scores.append({"lr": lr, "epochs": epoch, "val": host_accuracy(trainer, val)})

        fit(trainer, support, max(epoch_grid), seed, checkpoint)
    best = max(scores, key=lambda s: (s["val"], -s["epochs"], -s["lr"]))
    return {"lr": best["lr"], "epochs": best["epochs"], "val": best["val"], "grid": scores}


def run_variant(int8_model, variant, k, seed, split, grid, test_features) -> dict:
    support, test = split["support"][k], split["test"]
    if VARIANTS[variant][2]:
        chosen = choose(int8_model, variant, k, seed, support, split["val"],
                        grid["lrs"], grid["epochs"])
    else:
        chosen = {"lr": grid["lrs"][0], "epochs": 1, "val": None, "grid": []}
    training_model = tflm_train.convert(int8_model, scheme_for(variant, k, chosen["lr"], seed))
    trainer = tflm_train.Trainer(training_model)
    t0 = time.time()
    steps = fit(trainer, support, chosen["epochs"], seed)
    seconds = time.time() - t0
    exported = trainer.export_inference_model()
    outputs, features = tflm_run(exported, test.x, features=True)
    assert outputs.shape == (len(test), NUM_NEW), f"exported model outputs {outputs.shape[1:]}"
    predictions = np.argmax(outputs, axis=1)
    real = real_predictions(trainer, test)
    if VARIANTS[variant][0] == "classifier":  # the backbone is frozen
        assert np.array_equal(features, test_features), "the frozen backbone changed"
    plan = tflm_train.plan(training_model)
    return {"variant": variant, "k": k, "seed": seed, "lr": chosen["lr"],
            "epochs": chosen["epochs"], "val_accuracy": chosen["val"], "grid": chosen["grid"],
            "steps": steps, "train_seconds": seconds,
            "accuracy": float(np.mean(predictions == test.y)),
            "host_accuracy": float(np.mean(real == test.y)),
            # exported int8 argmax = the real logits' argmax; int8 outputs tied at the top
            "export_agreement": float(np.mean(predictions == real)),
            "export_ties": float(np.mean(np.sum(outputs == outputs.max(axis=1, keepdims=True),
                                                axis=1) > 1)),
            "output_range": [float(v) for v in trainer.output_range()],
            "predictions": predictions.tolist(), "real_predictions": real.tolist(),
            "weights_sha256": trainer.weights_sha256(),
            "plan": {key: value for key, value in plan.items() if key != "timeline"}}


# -- Cortex-M4 ------------------------------------------------------------------
def firmware_check(int8_model, run: dict, support: Dataset) -> dict:
    """The same steps on the firmware (QEMU) and on a fresh host trainer."""
    from tflm_train.firmware import run_firmware
    from tflm_train.training import train

    model = tflm_train.convert(int8_model, scheme_for(run["variant"], run["k"], run["lr"],
                                                      run["seed"]))
    t0 = time.time()
    device = run_firmware(model, support, steps=run["steps"], seed=run["seed"])
    seconds = time.time() - t0
    host = train(tflm_train.Trainer(model), support, steps=run["steps"], seed=run["seed"],
                 progress=False, log=lambda *_: None)
    return {"variant": run["variant"], "k": run["k"], "seed": run["seed"], "steps": run["steps"],
            "device_sha256": device["weights_sha256"], "host_sha256": host["weights_sha256"],
            "main_run_sha256": run["weights_sha256"],
            "equal": device["weights_sha256"] == host["weights_sha256"],
            "losses_equal": device["loss_history"] == host["loss_history"],
            "seconds": seconds,
            **{key: device.get(key) for key in FIRMWARE_FIGURES}}


# -- tables ---------------------------------------------------------------------
def mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std():.3f}"


def report(runs, baselines, firmware, seeds, shots, grid, seconds, command) -> str:
    shots_cols = " | ".join(f"k = {k}" for k in shots)
    rule = "|---|---|" + "---|" * len(shots)
    lines = [
        f"Pretrained in Keras (float) on scikit-learn digits {OLD_CLASSES[0]}-{OLD_CLASSES[-1]}, "
        f"int8 calibrated on them; the device learns digits {NEW_CLASSES[0]}-{NEW_CLASSES[-1]} "
        f"(never seen) with a fresh 5-class head from k shots per class. Per seed, the "
        f"new-class samples are split per class into a support pool and a test set "
        f"(half/half; {len(runs[0]['predictions']) if runs else 0} test samples); the k-shot "
        f"sets are nested, and {VAL_PER_CLASS} other pool samples per class are the "
        f"validation set that chooses the learning rate (lr = bias lr, from "
        f"{list(grid['lrs'])}) and the epochs E (from {list(grid['epochs'])}) of each tuned "
        f"run. Batch-1 SGD, constant lr, stochastic rounding, sample order "
        f"`tflm_train.training.sample_order`; accuracy of the exported int8 model (5 outputs) "
        f"under the tflite-micro wheel on the test set, mean ± std over seeds "
        f"{', '.join(map(str, seeds))} (`{command}`, {seconds / 60:.1f} min). Baselines: on "
        f"the same int8 head-input features (dequantized, from the tflite-micro wheel), numpy "
        f"nearest class mean with cosine similarity and scikit-learn logistic regression "
        f"(C = 1), both on the k shots.",
        "",
        f"| variant | what the device does | {shots_cols} |",
        rule,
    ]
    for variant in VARIANTS:
        cells = [mean_std([r["accuracy"] for r in runs if r["variant"] == variant and r["k"] == k])
                 for k in shots]
        if any(r["variant"] == variant for r in runs):
            lines.append(f"| {variant} | {NOTES[variant]} | " + " | ".join(cells) + " |")
    for name, note in (("ncm_cosine", "baseline: nearest class mean, cosine (numpy)"),
                       ("logreg", "baseline: logistic regression (scikit-learn)")):
        cells = [mean_std([b[name] for b in baselines if b["k"] == k]) for k in shots]
        lines.append(f"| {note.split(':')[1].strip()} | {note.split(':')[0]} | "
                     + " | ".join(cells) + " |")

    lines += ["", "Imprinting only against the numpy cosine nearest class mean on the same "
              "k shots (the rule imprinting implements): accuracy difference (points, mean over seeds) and share of test samples "
              "with the same prediction (all seeds), for the exported int8 model and for the "
              "training graph's real-valued logits (host simulator, infer mode).", "",
              "| k | exported − NCM (points) | same prediction | real logits − NCM (points) "
              "| same prediction |", "|---|---|---|---|---|"]
    for k in shots:
        pairs = [(r, b) for r in runs if r["variant"] == "imprint only" and r["k"] == k
                 for b in baselines if b["k"] == k and b["seed"] == r["seed"]]
        if pairs:
            cells = []
            for acc, pred in (("accuracy", "predictions"), ("host_accuracy", "real_predictions")):
                diff = 100 * np.mean([r[acc] - b["ncm_cosine"] for r, b in pairs])
                same = np.concatenate([np.equal(r[pred], b["ncm_predictions"]) for r, b in pairs])
                cells += [f"{diff:+.1f}", f"{same.mean():.3f}"]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")

    lines += ["", "Exported int8 model against the training graph's real-valued logits: "
              "accuracy of the real logits' argmax (mean ± std), share of test samples on which "
              "the exported int8 argmax equals it (lowest over seeds), and share of test samples "
              "whose int8 outputs tie at the top (mean; a tie goes to the lower class index); the "
              "output range export requantizes to (`Trainer.output_range()` after training, seed "
              f"{seeds[0]}).", "",
              "| variant | k | real-logit accuracy | export = real argmax (min) | int8 ties "
              "| output range |", "|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        for k in shots:
            rs = [r for r in runs if r["variant"] == variant and r["k"] == k]
            if rs:
                lines.append(f"| {variant} | {k} | {mean_std([r['host_accuracy'] for r in rs])} | "
                             f"{min(r['export_agreement'] for r in rs):.3f} | "
                             f"{np.mean([r['export_ties'] for r in rs]):.3f} | "
                             f"[{rs[0]['output_range'][0]:.1f}, {rs[0]['output_range'][1]:.1f}] |")

    lines += ["", "Chosen lr / E per seed, and the memory of one training step "
              "(`tflm_train.plan`: `peak_ram_bytes`, x86-64 host layout; optimizer state and "
              "its imprint part where reported):", "",
              "| variant | k | lr / E per seed | peak RAM (bytes) | optimizer state "
              "(bytes) | imprint state (bytes) |", "|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        for k in shots:
            rs = [r for r in runs if r["variant"] == variant and r["k"] == k]
            if not rs:
                continue
            plan = rs[0]["plan"]
            imprint = plan.get("state_breakdown", {}).get("imprint", "n/a")
            chosen = ", ".join(f"{r['lr']} / {r['epochs']}" if VARIANTS[variant][2] else "– / 1"
                               for r in rs)
            lines.append(f"| {variant} | {k} | {chosen} | "
                         f"{plan['peak_ram_bytes']} | {plan.get('optimizer_state_bytes', 'n/a')} "
                         f"| {imprint} |")
    if firmware:
        lines += ["", "Cortex-M4 (QEMU mps2-an386, `tflm_train.firmware.run_firmware`): the same "
                  "steps as the host simulator, weights_sha256 compared:", ""]
        for f in firmware:
            verdict = ("equal to the host's" if f["equal"] else "DIFFERENT from the host's")
            if f["host_sha256"] != f["main_run_sha256"]:
                verdict += " (the host's differs from the table's run)"
            lines.append(f"* {f['variant']}, k = {f['k']}, seed {f['seed']}, {f['steps']} steps: "
                         f"firmware weights_sha256 `{f['device_sha256'][:16]}…` {verdict}"
                         f"{'' if f['losses_equal'] else ' (step losses differ)'}; "
                         f"{f['ram_bytes']} bytes of RAM ({f['static_ram_bytes']} static, of "
                         f"which {f['arena_bytes']} arena; {f['heap_used_bytes']} heap; "
                         f"{f['peak_stack_bytes']} stack), "
                         f"{f['instructions_per_train_step']} instructions per train step.")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke subset: seed 0, k = 5, one lr and E")
    p.add_argument("--no-firmware", action="store_true", help="skip the Cortex-M4 runs")
    p.add_argument("--results", type=Path, help="write the section into this markdown file")
    p.add_argument("--raw", type=Path, help="write every run's numbers to this JSON file")
    args = p.parse_args(argv)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if args.quick:
        seeds, shots = QUICK["seeds"], QUICK["shots"]
        grid = {"lrs": QUICK["lrs"], "epochs": QUICK["epochs"]}
        firmware_variants = QUICK["firmware_variants"]
    else:
        seeds, shots = SEEDS, SHOTS
        grid = {"lrs": LRS, "epochs": EPOCHS}
        firmware_variants = FIRMWARE_VARIANTS
    if args.no_firmware:
        firmware_variants = ()
    t0 = time.time()
    runs, baselines, firmware = [], [], []
    for seed in seeds:
        ts = time.time()
        split = load_digits_split(seed)
        int8_model = pretrain_int8(seed, split["pretrain"])
        _, test_f = tflm_run(int8_model, split["test"].x, features=True)
        for k in shots:
            support = split["support"][k]
            _, support_f = tflm_run(int8_model, support.x, features=True)
            ncm = ncm_cosine(support_f, support.y, test_f)
            lr_pred = logistic_regression(support_f, support.y, test_f)
            baselines.append({"seed": seed, "k": k,
                              "ncm_cosine": float(np.mean(ncm == split["test"].y)),
                              "logreg": float(np.mean(lr_pred == split["test"].y)),
                              "ncm_predictions": ncm.tolist()})
            for variant in VARIANTS:
                run = run_variant(int8_model, variant, k, seed, split, grid, test_f)
                runs.append(run)
                print(f"seed {seed} k {k} {variant}: accuracy {run['accuracy']:.3f} "
                      f"(host real logits {run['host_accuracy']:.3f}; lr {run['lr']}, "
                      f"E {run['epochs']}, {run['steps']} steps)", flush=True)
                if seed == FIRMWARE_SEED and k == FIRMWARE_SHOTS and variant in firmware_variants:
                    f = firmware_check(int8_model, run, support)
                    firmware.append(f)
                    print(f"  firmware: sha256 {'equal' if f['equal'] else 'DIFFERENT'} "
                          f"({f['seconds']:.0f} s)", flush=True)
            b = baselines[-1]
            print(f"seed {seed} k {k} baselines: NCM cosine {b['ncm_cosine']:.3f}, "
                  f"logistic regression {b['logreg']:.3f}", flush=True)
        print(f"seed {seed}: {time.time() - ts:.0f} s", flush=True)
    seconds = time.time() - t0
    command = ("python examples/new_classes.py" + (" --quick" if args.quick else "")
               + (" --no-firmware" if args.no_firmware else "") + " --results docs/results.md")
    body = report(runs, baselines, firmware, seeds, shots, grid, seconds, command)
    print(f"{HEADING}\n\n{body}\n\ntotal run time {seconds / 60:.1f} min")
    if args.results is not None:
        da.write_section(args.results, HEADING, body)
    if args.raw is not None:
        args.raw.write_text(json.dumps({"seconds": seconds, "seeds": list(seeds),
                                        "shots": list(shots), "grid": grid, "runs": runs,
                                        "baselines": baselines, "firmware": firmware},
                                       indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
