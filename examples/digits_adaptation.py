"""Domain adaptation on the device, simulated bit-exactly on the host.

A small CNN is pretrained in Keras (float) on scikit-learn's bundled 8x8
digits, quantized to int8, then fine-tuned with tflm-train's host simulator
on a *shifted* domain: the same digits drawn as light strokes on a dark,
noisy background moved by one pixel (intensity inverted and translated).

  python examples/digits_adaptation.py --quick        # one short run, loss printed
  python examples/digits_adaptation.py --seeds 0 1 2 --results docs/results.md

The full run compares, per seed: fp32 full fine-tuning in Keras; int8
training of all layers without and with QAS; a sparse scheme; last-k full
update; bias-only; classifier-only — accuracy on held-out target data
before/after, and the peak RAM of one training step from the runtime's
planner. As in the source paper's simulations, each configuration gets its
learning rate from a small grid, chosen on a validation split of the
target training data.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.training import evaluate, train  # noqa: E402

NUM_CLASSES = 10
EPOCHS = 4
LR = 0.02  # the quick demo's learning rate
LR_GRID = (0.005, 0.01, 0.02, 0.05)

# Scheme name -> (scheme, note). "all" trains every layer fully.
SCHEMES = {
    "all layers, QAS": ({"preset": "last-k:4"}, "int8, full update, QAS"),
    "all layers, no QAS": ({"preset": "last-k:4", "qas": False}, "int8, full update, plain SGD on the integers"),
    "sparse": ({"bias_update_layers": 3, "weight_update": {"-2": 0.5}}, "biases of last 3 layers, half the channels of layer -2, classifier"),
    "last-k:2": ({"preset": "last-k:2"}, "full update of the last 2 layers"),
    "bias-only": ({"preset": "bias-only"}, "all biases"),
    "classifier": ({"preset": "classifier"}, "classifier weights and bias"),
}


def load_domains(seed: int):
    """(source_train, target_train, target_test) as float NHWC in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    source, target = order[: len(y) // 2], order[len(y) // 2:]
    split = len(target) * 2 // 3
    shifted = shift_domain(x[target], rng)
    return (Dataset(x[source], y[source]),
            Dataset(shifted[:split], y[target][:split]),
            Dataset(shifted[split:], y[target][split:]))


def shift_domain(x: np.ndarray, rng) -> np.ndarray:
    """The target domain: inverted intensity, one-pixel translation, noise."""
    moved = np.roll(1.0 - x, shift=(1, 1), axis=(1, 2))
    noisy = moved + rng.normal(0, 0.05, size=moved.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def build_model(seed: int):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    return keras.Sequential([
        L.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2"),
        L.Conv2D(24, 3, padding="same", activation="relu", name="conv3"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(NUM_CLASSES, name="classifier"),
    ], name="digits_cnn")


def pretrain(model, data: Dataset, epochs: int = 30):
    import tf_keras as keras

    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.x, data.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def keras_finetune(model, train_data: Dataset, test: Dataset, epochs: int,
                   seed: int, lr: float) -> tuple[float, float]:
    """fp32 full fine-tuning with the same optimizer as the device: SGD,
    batch 1, same epochs. Returns (accuracy before, accuracy after)."""
    import tf_keras as keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(keras.optimizers.SGD(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    before = clone.evaluate(test.x, test.y, verbose=0)[1]
    keras.utils.set_random_seed(seed)
    clone.fit(train_data.x, train_data.y, epochs=epochs, batch_size=1,
              shuffle=True, verbose=0)
    return before, clone.evaluate(test.x, test.y, verbose=0)[1]


def run_scheme(int8_model: bytes, scheme: dict, train_data, test, epochs, seed,
               lr: float, log=lambda *_: None) -> dict:
    scheme = dict(scheme, optimizer={"type": "sgd", "lr": lr, "bias_lr": lr,
                                     "rounding": "stochastic", "seed": seed + 1})
    training_model = tflm_train.convert(int8_model, scheme)
    trainer = tflm_train.Trainer(training_model)
    before = evaluate(trainer, test)["accuracy"]
    t0 = time.time()
    history = train(trainer, train_data, epochs=epochs, seed=seed, progress=False, log=log)
    seconds = time.time() - t0
    after = evaluate(trainer, test)["accuracy"]
    return {"before": before, "after": after, "seconds": seconds, "lr": lr,
            "steps": history["steps"], "losses": history["loss_history"],
            "peak_ram_bytes": tflm_train.plan(training_model)["peak_ram_bytes"]}


def prepare(seed: int):
    source, target_train, target_test = load_domains(seed)
    model = pretrain(build_model(seed), source)
    int8_model = tflm_train.to_int8_tflite(model, representative_data=source.x[:200])
    return model, int8_model, target_train, target_test


def quick() -> None:
    """README demo: one sparse-scheme run, printing the loss as it falls."""
    print("pretraining a small CNN on the digits (source domain) ...")
    model, int8_model, target_train, target_test = prepare(seed=0)
    print(f"int8 model: {len(int8_model)} bytes; adapting to the shifted domain "
          f"on the host simulator ({len(target_train)} samples, 2 epochs)")
    scheme, note = SCHEMES["sparse"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits_train.tflite"
        tflm_train.convert(int8_model, dict(scheme, optimizer={"type": "sgd", "lr": LR}), out=path)
        report = tflm_train.plan(path)
        print(f"scheme: {note}; one training step needs {report['peak_ram_bytes']} bytes of RAM")
        trainer = tflm_train.Trainer(path)
        acc0 = evaluate(trainer, target_test)["accuracy"]
        history = train(trainer, target_train, epochs=2, seed=0, progress=False, log=print)
        losses = history["loss_history"]
        for start in range(0, len(losses), 200):
            chunk = losses[start:start + 200]
            print(f"  steps {start:4d}-{start + len(chunk) - 1:4d}: mean loss {np.mean(chunk):.3f}")
        acc1 = evaluate(trainer, target_test)["accuracy"]
    print(f"target-domain test accuracy: {acc0:.3f} before -> {acc1:.3f} after on-device training")
    print(f"weights_sha256 {history['weights_sha256']}")


def split_validation(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """80 % for training, 20 % to choose the learning rate."""
    order = np.random.default_rng(seed + 100).permutation(len(data))
    cut = len(order) * 4 // 5
    return (Dataset(data.x[order[:cut]], data.y[order[:cut]]),
            Dataset(data.x[order[cut:]], data.y[order[cut:]]))


def best_lr(run) -> float:
    """The grid learning rate with the best validation accuracy."""
    scores = {lr: run(lr) for lr in LR_GRID}
    return max(LR_GRID, key=lambda lr: (scores[lr], -lr))


def full(seeds: list[int], results: Path | None) -> None:
    rows: dict[str, list[dict]] = {}
    for seed in seeds:
        print(f"== seed {seed}")
        model, int8_model, target_train, target_test = prepare(seed)
        fit, val = split_validation(target_train, seed)
        lr = best_lr(lambda lr: keras_finetune(model, fit, val, EPOCHS, seed, lr)[1])
        before, after = keras_finetune(model, fit, target_test, EPOCHS, seed, lr)
        rows.setdefault("fp32 Keras, full fine-tuning", []).append(
            {"before": before, "after": after, "peak_ram_bytes": None, "lr": lr})
        print(f"  fp32 Keras full fine-tuning: {before:.3f} -> {after:.3f} (lr {lr})")
        for name, (scheme, _) in SCHEMES.items():
            lr = best_lr(lambda lr: run_scheme(int8_model, scheme, fit, val, EPOCHS, seed, lr)["after"])
            r = run_scheme(int8_model, scheme, fit, target_test, EPOCHS, seed, lr)
            rows.setdefault(name, []).append(r)
            print(f"  {name}: {r['before']:.3f} -> {r['after']:.3f} (lr {lr}, "
                  f"peak RAM {r['peak_ram_bytes']} B, {r['steps']} steps in {r['seconds']:.1f} s)")
    table = results_table(rows, seeds)
    print(table)
    if results is not None:
        write_section(results, "## Domain adaptation on digits (host simulator)", table)


def results_table(rows: dict, seeds: list[int]) -> str:
    lines = [
        f"Pretrained in Keras on scikit-learn digits (source), adapted to inverted, "
        f"translated, noisy digits (target); {EPOCHS} epochs of batch-1 SGD on 80 % of the "
        f"target training split, learning rate chosen per run from {list(LR_GRID)} on the "
        f"other 20 %, stochastic rounding; accuracy on held-out target test data, mean ± std over seeds "
        f"{', '.join(map(str, seeds))} (`python examples/digits_adaptation.py --seeds "
        f"{' '.join(map(str, seeds))} --results docs/results.md`). Peak RAM is "
        f"`tflm-train plan`'s `peak_ram_bytes` (planned arena + persistent, x86-64 host layout).",
        "",
        "| training | scheme | accuracy before | accuracy after | chosen lr per seed | peak training RAM (bytes) |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in rows.items():
        b = np.array([r["before"] for r in results])
        a = np.array([r["after"] for r in results])
        ram = results[0]["peak_ram_bytes"]
        note = SCHEMES[name][1] if name in SCHEMES else "float32, all weights, Keras SGD"
        lrs = ", ".join(str(r["lr"]) for r in results)
        lines.append(f"| {name} | {note} | {b.mean():.3f} ± {b.std():.3f} | "
                     f"{a.mean():.3f} ± {a.std():.3f} | {lrs} | "
                     f"{ram if ram is not None else 'n/a (Keras)'} |")
    return "\n".join(lines)


def write_section(path: Path, heading: str, body: str) -> None:
    """Replaces (or appends) one `## ` section of a markdown file."""
    text = path.read_text() if path.exists() else "# Results\n"
    start = text.find(heading)
    section = f"{heading}\n\n{body}\n"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one short run (README demo)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--results", type=Path, help="write the table into this markdown file")
    args = p.parse_args(argv)
    if args.quick:
        quick()
    else:
        full(args.seeds, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
