"""Cortex-M4 benchmark: instructions per train and infer step, and where
they go per operator type, on the firmware under QEMU (mps2-an386, -icount).

Models (random weights; batch-norm statistics from random inputs; int8 by
post-training quantization — instruction counts barely depend on the
weights): the digits CNN of examples/digits_adaptation.py and the residual
CNN of examples/lr_grid.py (8x8x1) with the sparse and last-k:2 schemes of
docs/scheme.md, and the three models of examples/memory_256kb.py with their
paper-style schemes. Each runs `--steps` train steps and one infer step with
`tflm-train firmware --profile`; the backward part is train - infer.

    python examples/benchmark_cortex_m.py [--models ...] [--steps 2] [--json]
        [--results docs/results.md] [--cmsis-nn DIR]

With --cmsis-nn DIR (a CMSIS-NN checkout) the forward kernels are CMSIS-NN's
where they apply (`tflm-train firmware --cmsis-nn`).

Needs the Cortex-M toolchain and QEMU (examples/cortex_m/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train.cli import profile_by_type  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402
from tflm_train.firmware import run_firmware  # noqa: E402

HEADING = "## Cortex-M4 speed: where the instructions go"
OPTIMIZER = {"lr": 0.01, "rounding": "stochastic"}
SMALL_SCHEMES = {"sparse": {"bias_update_layers": 3, "weight_update": {"-2": 0.5}},
                 "last-k:2": {"preset": "last-k:2"}}
# Operator types listed per model (the rest are summed as "other").
TOP_TYPES = 8


def _calibrated(model, shape):
    """Batch-norm moving statistics := those of random inputs (realistic
    activation ranges), then int8 with the same inputs as calibration."""
    import tf_keras  # noqa: PLC0415 - TensorFlow is slow to import

    samples = np.random.default_rng(0).uniform(0, 1, (32,) + shape).astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(samples, training=True)
    return tflm_train.to_int8_tflite(model, representative_data=samples)


def digits_cnn():
    import digits_adaptation  # noqa: PLC0415

    return _calibrated(digits_adaptation.build_model(0), (8, 8, 1)), (8, 8, 1), 10, SMALL_SCHEMES


def residual_cnn():
    import _qat_reference  # noqa: PLC0415

    return _calibrated(_qat_reference.residual_model(0), (8, 8, 1)), (8, 8, 1), 10, SMALL_SCHEMES


def memory_model(name):
    import memory_256kb  # noqa: PLC0415

    def make():
        spec = memory_256kb.MODELS[name]
        calibration = np.random.default_rng(0).uniform(-1, 1, (16,) + spec.shape)
        calibration = calibration.astype(np.float32)
        int8 = tflm_train.to_int8_tflite(memory_256kb.keras_model(spec, calibration),
                                         calibration)
        return int8, spec.shape, spec.classes, {"paper": spec.schemes["paper"]}
    return make


MODELS = {"digits_cnn": digits_cnn, "residual_cnn": residual_cnn,
          "person_detection": memory_model("person_detection"),
          "mobilenetv2": memory_model("mobilenetv2"), "mcunet": memory_model("mcunet")}


def run_model(name: str, steps: int, log=print, cmsis_nn=None) -> dict:
    int8, shape, classes, schemes = MODELS[name]()
    rng = np.random.default_rng(1)
    data = Dataset(rng.uniform(0, 1, (steps,) + tuple(shape)).astype(np.float32),
                   rng.integers(0, classes, steps))
    out = {}
    for scheme_name, scheme in schemes.items():
        model = tflm_train.convert(int8, {**scheme, "optimizer": OPTIMIZER})
        result = run_firmware(model, data, steps=steps, ram_kb=256, profile=True,
                              timeout=3600, cmsis_nn=cmsis_nn)
        train, infer = result.instructions_per_train_step, result.instructions_per_infer_step
        out[scheme_name] = {
            "train": train, "infer": infer, "backward": train - infer,
            "train_over_infer": train / infer, "ram_bytes": result.ram_bytes,
            "by_type": [{"name": n, "ops": k, "train": t, "infer": i}
                        for n, k, t, i in profile_by_type(result.op_instructions)]}
        log(f"{name} / {scheme_name}: train {train:,d}, infer {infer:,d}, "
            f"backward {train - infer:,d} instructions ({train / infer:.2f}x infer)")
    return out


def summary_table(results: dict) -> str:
    lines = ["| model | scheme | train step | infer step | backward (train - infer) | "
             "train / infer |", "|---|---|---|---|---|---|"]
    for name, schemes in results.items():
        for scheme_name, r in schemes.items():
            lines.append(f"| {name} | {scheme_name} | {r['train']:,d} | {r['infer']:,d} | "
                         f"{r['backward']:,d} | {r['train_over_infer']:.2f} |")
    return "\n".join(lines)


def type_table(r: dict) -> str:
    lines = ["| operator type | ops | train step | share | infer step |", "|---|---|---|---|---|"]
    rows = r["by_type"][:TOP_TYPES]
    rest = r["by_type"][TOP_TYPES:]
    if rest:
        rows = rows + [{"name": f"other ({len(rest)} types)", "ops": sum(x["ops"] for x in rest),
                        "train": sum(x["train"] for x in rest),
                        "infer": sum(x["infer"] for x in rest)}]
    counted = sum(x["train"] for x in r["by_type"])
    for x in rows:
        lines.append(f"| {x['name']} | {x['ops']} | {x['train']:,d} | "
                     f"{100 * x['train'] / counted:.1f} % | {x['infer']:,d} |")
    return "\n".join(lines)


def section(results: dict, steps: int) -> str:
    parts = [f"`python examples/benchmark_cortex_m.py --steps {steps} --results "
             "docs/results.md`: the standalone runtime's own kernels on the Cortex-M4 "
             "(convolutions with DSP-extension inner loops, ops_cc/kernels/int8_mac.h) "
             "(QEMU mps2-an386, `-icount`), instructions per step (train: mean over the "
             f"{steps} steps; infer: one step), and per operator type the instructions in "
             "its Eval (`tflm-train firmware --profile`; the session's own work between "
             "Evals is not in the per-type figures). Random-weight models quantized to "
             "int8; paper-style schemes as in \"Training in 256 KB of SRAM\".",
             summary_table(results)]
    for name, schemes in results.items():
        for scheme_name, r in schemes.items():
            parts.append(f"### {name}, {scheme_name}\n\n" + type_table(r))
    return "\n\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--results", type=Path, help="write the section into this markdown file")
    p.add_argument("--cmsis-nn", metavar="DIR", help="forward kernels from this CMSIS-NN tree")
    args = p.parse_args(argv)
    if args.cmsis_nn and args.results:
        p.error("--results writes the portable kernels' section; run --cmsis-nn without it")
    log = (lambda *_: None) if args.json else print
    results = {name: run_model(name, args.steps, log, args.cmsis_nn) for name in args.models}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(section(results, args.steps))
    if args.results:
        import digits_adaptation as da  # noqa: PLC0415 - write_section

        da.write_section(args.results, HEADING, section(results, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
