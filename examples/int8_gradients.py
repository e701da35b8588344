"""int8 gradients (scheme "gradients": "int8") against float32 gradients:
accuracy after on-device fine-tuning, and the RAM of a training step.

  python examples/int8_gradients.py --quick
  python examples/int8_gradients.py --seeds 0 1 2 --results docs/results.md

Accuracy: the digits CNN of examples/digits_adaptation.py (float
pretraining, post-training int8) and the residual CNN of examples/lr_grid.py
(tfmot QAT pretraining), both fine-tuned on the shifted digits domain with
the sparse scheme and with every layer training (last-k:4). Per seed, the
learning rate is chosen from LR_GRID on a validation split of the target
training data with float32 gradients; float32 and int8 gradients then train
with that rate and the same sample order, and are scored on held-out target
data (host simulator, which the firmware equals bit for bit). int8 gradients
run twice: rounded to nearest (the default) and stochastically (scheme
"gradient_rounding": "stochastic", drawing from the optimizer's seeded
stream).

RAM: the planned arena peak of one training step (`tflm-train plan`; the
firmware's figure is the same, tests/test_firmware.py) with float32 and int8
gradients, for those models and for the paper-style schemes of
examples/memory_256kb.py (MobileNetV2-0.35, the person detector, MCUNet-like;
random weights, which do not change memory).

Cortex-M4 (--cortex-m): the models of examples/benchmark_cortex_m.py with
their sparse / paper schemes, both ways, on the firmware under QEMU:
instructions per train and infer step, and the firmware's RAM.
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

import digits_adaptation as da  # noqa: E402
import lr_grid  # noqa: E402
import memory_256kb  # noqa: E402
import tflm_train  # noqa: E402
from tflm_train.converter import ConversionError  # noqa: E402
from tflm_train.training import evaluate, train  # noqa: E402

HEADING = "## int8 gradients"
EPOCHS = 4
LR_GRID = (0.01, 0.02, 0.05)
GRADIENTS = ("float32", "int8")
# The accuracy runs: float32, int8 rounded to nearest, int8 rounded
# stochastically (scheme fields of each).
ACCURACY_RUNS = {"float32": {"gradients": "float32"}, "int8": {"gradients": "int8"},
                 "int8_stochastic": {"gradients": "int8", "gradient_rounding": "stochastic"}}
ACCURACY_MODELS = {"digits": lr_grid.prepare_digits, "residual": lr_grid.prepare_residual}
ACCURACY_SCHEMES = {"sparse": da.SCHEMES["sparse"][0], "all layers": {"preset": "last-k:4"}}


def fine_tune(int8_model: bytes, scheme: dict, gradients: str, lr: float, train_data,
              test, seed: int) -> dict:
    """`gradients`: a key of ACCURACY_RUNS."""
    scheme = dict(scheme, **ACCURACY_RUNS[gradients],
                  optimizer={"lr": lr, "rounding": "stochastic", "seed": seed + 1})
    model = tflm_train.convert(int8_model, scheme)
    trainer = tflm_train.Trainer(model)
    history = train(trainer, train_data, epochs=EPOCHS, seed=seed, progress=False,
                    log=lambda *_: None)
    return {"accuracy": evaluate(trainer, test)["accuracy"],
            "final_loss": float(np.mean(history["loss_history"][-50:])),
            **plan_figures(model)}


def plan_figures(model: bytes) -> dict:
    """Planned peak of the step and of its backward part, and the int8
    gradients `plan` lists."""
    figures = memory_256kb.memory_figures(model)
    entries = [s for s in figures["memory_savings"] if s["technique"] == "int8_gradients"]
    return {"peak_arena_bytes": figures["peak_arena_bytes"],
            "backward_peak_bytes": figures["backward_peak_bytes"],
            "peak_op": figures["peak_op"]["name"],
            "int8_gradient_tensors": len(entries),
            "largest_gradient_bytes": max((s["was_bytes"] for s in entries), default=0)}


def accuracy_runs(seeds: list[int], quick: bool, log=print) -> dict:
    out = {}
    models = {"digits": ACCURACY_MODELS["digits"]} if quick else ACCURACY_MODELS
    schemes = {"sparse": ACCURACY_SCHEMES["sparse"]} if quick else ACCURACY_SCHEMES
    for model_name, prepare in models.items():
        for seed in seeds:
            setup = prepare(seed)
            fit, validation = da.split_validation(setup.target_train, seed)
            for scheme_name, scheme in schemes.items():
                grid = LR_GRID[1:2] if quick else LR_GRID
                scores = {lr: fine_tune(setup.int8_model, scheme, "float32", lr, fit,
                                        validation, seed)["accuracy"] for lr in grid}
                lr = max(grid, key=lambda r: (scores[r], -r))
                cell = out.setdefault(f"{model_name} / {scheme_name}", {})
                for gradients in ACCURACY_RUNS:
                    t0 = time.time()
                    run = fine_tune(setup.int8_model, scheme, gradients, lr,
                                    setup.target_train, setup.target_test, seed)
                    run.update(lr=lr, seconds=round(time.time() - t0, 1))
                    cell.setdefault(gradients, []).append(run)
                    log(f"{model_name} / {scheme_name} / seed {seed} / {gradients}: lr {lr} "
                        f"accuracy {run['accuracy']:.3f} peak {run['peak_arena_bytes']:,d} B")
    return out


def ram_runs(log=print) -> dict:
    """Planned peaks of the memory_256kb.py models' schemes, both ways."""
    out = {}
    rng = np.random.default_rng(0)
    for name, spec in memory_256kb.MODELS.items():
        calibration = rng.uniform(-1, 1, (16,) + spec.shape).astype(np.float32)
        int8 = tflm_train.to_int8_tflite(memory_256kb.keras_model(spec, calibration),
                                         calibration)
        for scheme_name, scheme in spec.schemes.items():
            cell = {}
            for gradients in GRADIENTS:
                try:
                    model = tflm_train.convert(int8, dict(scheme, gradients=gradients))
                except ConversionError as e:
                    cell[gradients] = {"error": str(e)}
                    continue
                cell[gradients] = plan_figures(model)
            out[f"{name} / {scheme_name}"] = cell
            log(f"{name} / {scheme_name}: {json.dumps(cell)}")
    return out


CORTEX_M_CELLS = (("digits_cnn", "sparse"), ("residual_cnn", "sparse"),
                  ("person_detection", "paper"), ("mobilenetv2", "paper"), ("mcunet", "paper"))


def cortex_m_runs(steps: int = 2, log=print) -> dict:
    """Firmware figures per model, float32 and int8 gradients; the weights
    after `steps` must equal the host simulator's."""
    import benchmark_cortex_m as bench  # noqa: PLC0415
    from tflm_train.data import Dataset  # noqa: PLC0415
    from tflm_train.firmware import run_firmware  # noqa: PLC0415

    out = {}
    for name, scheme_name in CORTEX_M_CELLS:
        int8, shape, classes, schemes = bench.MODELS[name]()
        rng = np.random.default_rng(1)
        data = Dataset(rng.uniform(0, 1, (steps,) + tuple(shape)).astype(np.float32),
                       rng.integers(0, classes, steps))
        cell = {}
        for gradients in GRADIENTS:
            model = tflm_train.convert(int8, {**schemes[scheme_name], "gradients": gradients,
                                              "optimizer": bench.OPTIMIZER})
            result = run_firmware(model, data, steps=steps, ram_kb=256, timeout=3600)
            host = train(tflm_train.Trainer(model), data, steps=steps, seed=0, progress=False,
                         log=lambda *_: None)
            if result["weights_sha256"] != host["weights_sha256"]:
                raise SystemExit(f"{name} / {gradients}: firmware weights differ from the host's")
            t, i = result.instructions_per_train_step, result.instructions_per_infer_step
            cell[gradients] = {"train": t, "infer": i, "backward": t - i,
                               "ram_bytes": result.ram_bytes}
            log(f"{name} / {scheme_name} / {gradients}: {json.dumps(cell[gradients])}")
        out[f"{name} / {scheme_name}"] = cell
    return out


def cortex_m_table(runs: dict) -> str:
    lines = ["| model / scheme | backward instructions, float32 -> int8 | train step, float32 -> "
             "int8 | firmware RAM, float32 -> int8 |", "|---|---|---|---|"]
    for name, cell in runs.items():
        f, i = cell["float32"], cell["int8"]
        lines.append(f"| {name} | {f['backward']:,d} -> {i['backward']:,d} "
                     f"({i['backward'] / f['backward']:.2f}x) | {f['train']:,d} -> "
                     f"{i['train']:,d} | {f['ram_bytes']:,d} -> {i['ram_bytes']:,d} B |")
    return "\n".join(lines)


def ram_of_accuracy_models(accuracy: dict) -> dict:
    """The planned peaks the accuracy runs recorded (same for every seed)."""
    keys = ("peak_arena_bytes", "backward_peak_bytes", "peak_op")
    return {name: {g: {k: runs[g][0][k] for k in keys} for g in GRADIENTS}
            for name, runs in accuracy.items()}


def ram_table(ram: dict) -> str:
    lines = ["| model / scheme | planned peak, float32 -> int8 gradients | saved | "
             "backward peak, float32 -> int8 | peak operator (int8) |",
             "|---|---|---|---|---|"]
    for name, cell in ram.items():
        f, i = cell["float32"], cell["int8"]
        if "error" in i:
            lines.append(f"| {name} | {f['peak_arena_bytes']:,d} B -> refused: {i['error']} "
                         "| — | — | — |")
            continue
        saved = f["peak_arena_bytes"] - i["peak_arena_bytes"]
        lines.append(f"| {name} | {f['peak_arena_bytes']:,d} -> {i['peak_arena_bytes']:,d} B | "
                     f"{saved:,d} B ({saved / f['peak_arena_bytes']:.1%}) | "
                     f"{f['backward_peak_bytes']:,d} -> {i['backward_peak_bytes']:,d} B | "
                     f"{i['peak_op']} |")
    return "\n".join(lines)


def accuracy_table(accuracy: dict, seeds: list[int]) -> str:
    """One row per model / scheme and gradient storage: accuracy (mean ±
    std over the seeds) and, for int8, its difference to float32."""
    labels = {"float32": "float32", "int8": "int8, nearest rounding",
              "int8_stochastic": "int8, stochastic rounding"}
    lines = ["| model / scheme | gradients | lr per seed | accuracy | - float32 |",
             "|---|---|---|---|---|"]
    for name, cell in accuracy.items():
        f = np.array([r["accuracy"] for r in cell["float32"]])
        lrs = ", ".join(str(r["lr"]) for r in cell["float32"])
        for key, label in labels.items():
            if key not in cell:
                continue
            a = np.array([r["accuracy"] for r in cell[key]])
            diff = "—" if key == "float32" else (
                f"{np.mean(a - f):+.3f} (per seed {', '.join(f'{d:+.3f}' for d in a - f)})")
            lines.append(f"| {name} | {label} | {lrs} | {a.mean():.3f} ± {a.std():.3f} | "
                         f"{diff} |")
    return "\n".join(lines)


CORTEX_M_PART = "Cortex-M4 (`--cortex-m`)"
KEPT_CORTEX_M = ("The Cortex-M4 table below is kept from the last run with `--cortex-m` "
                 "(this run skipped it; float32 and nearest-rounded int8 gradients).")


def kept_cortex_m(path: Path | None) -> str | None:
    """The Cortex-M4 part of the section already in `path`, which a run
    without --cortex-m keeps instead of dropping it."""
    if path is None or not path.exists():
        return None
    text = path.read_text()
    if HEADING not in text:
        return None
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    body = text[start:end if end >= 0 else len(text)]
    at = body.find(CORTEX_M_PART)
    return body[at:].strip() if at >= 0 else None


def section(accuracy: dict, ram: dict, seeds: list[int], cortex_m: dict,
            kept: str | None = None) -> str:
    parts = [
        HEADING,
        "`python examples/int8_gradients.py --seeds " + " ".join(map(str, seeds))
        + (" --cortex-m" if cortex_m else "") + " --results docs/results.md`. With the scheme's `\"gradients\": \"int8\"` the "
        "gradients between backward operators are int8 with one scale per tensor, computed "
        "on the device from the tensor's maximum (docs/format.md \"int8 gradients\"); weight "
        "updates (QAS, stochastic rounding) are unchanged. " + __doc__.split("\n\n")[2]
        .replace("\n", " ").strip(),
        accuracy_table(accuracy, seeds),
        "RAM: " + __doc__.split("\n\n")[3].replace("\n", " ").strip()[5:],
        ram_table({**ram_of_accuracy_models(accuracy), **ram}),
    ]
    if cortex_m:
        parts += ["Cortex-M4 (`--cortex-m`): " + __doc__.split("\n\n")[4]
                  .replace("\n", " ").strip()[len("Cortex-M4 (--cortex-m): "):],
                  cortex_m_table(cortex_m)]
    elif kept:
        parts += [KEPT_CORTEX_M, kept]
    return "\n\n".join(parts) + "\n"


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# Results\n"
    if HEADING in text:
        start = text.index(HEADING)
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + body.rstrip("\n") + ("\n" + text[end:] if end >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, the digits CNN, the sparse scheme, one learning rate")
    parser.add_argument("--no-ram", action="store_true", help="skip the big models' plans")
    parser.add_argument("--cortex-m", action="store_true",
                        help="also run the firmware under QEMU (needs the Cortex-M toolchain)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--results", type=Path, help="write the section into this markdown file")
    args = parser.parse_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    accuracy = accuracy_runs(seeds, args.quick)
    ram = {} if args.quick or args.no_ram else ram_runs()
    cortex_m = cortex_m_runs() if args.cortex_m else {}
    body = section(accuracy, ram, seeds, cortex_m,
                   None if args.cortex_m else kept_cortex_m(args.results))
    print(body)
    if args.json:
        args.json.write_text(json.dumps({"accuracy": accuracy, "ram": ram,
                                         "cortex_m": cortex_m}, indent=1))
    if args.results:
        write_section(args.results, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
