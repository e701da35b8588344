"""MobileNetV2 (alpha 0.35, 128x128, 10 classes) against the issue's target:
on-device training on a Cortex-M4 within 256 KB of RAM.

Builds Keras MobileNetV2 with random weights, quantizes it to int8, converts
it with a sparse-update scheme in the spirit of the paper's ~100 KB scheme,
and reports the `tflm-train plan` figures and, through the firmware under
QEMU (`tflm-train firmware`), RAM, flash and instructions per step. When the
model does not fit the budget it reports the gap and what consumes the RAM,
then runs the firmware with a budget that fits to get the compute figures
and to check the trained weights against the host simulator.

    python examples/mobilenetv2_memory.py [--resolution 128] [--steps 3] [--json]

Needs the Cortex-M toolchain and QEMU (examples/cortex_m/README.md) for the
firmware part; --no-firmware skips it.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train.converter import to_int8_tflite, read_training_info, tflite  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402

# Biases of the last 22 trainable layers; weights of four late pointwise
# convolutions, partially (top-L2 output channels); the classifier fully.
# The converter keeps a partially trained tensor whole in RAM, so the 1280-
# channel Conv_1 (143 KB of weights) is left frozen: these weights take
# about 110 KB.
SCHEME = {
    "bias_update_layers": 22,
    "weight_update": {"block_16_project": 0.25, "block_16_expand": 0.125,
                      "block_15_project": 0.25, "block_15_expand": 0.125},
    "optimizer": {"lr": 0.01, "rounding": "stochastic"},
}
# Operators the converter accepts (docs/scheme.md).
SUPPORTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "MEAN", "PAD", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"}


def keras_mobilenetv2(resolution: int, alpha: float, classes: int, samples: np.ndarray):
    """Random weights, with batch-norm statistics set from `samples` so the
    activations (and the logits' quantization scale) have realistic ranges:
    with the initial statistics the logits' scale underflows what SOFTMAX
    accepts."""
    import tf_keras

    model = tf_keras.applications.MobileNetV2(weights=None, alpha=alpha, classes=classes,
                                              input_shape=(resolution, resolution, 3))
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(samples, training=True)  # moving statistics := these samples' statistics
    return model


def op_counts(model: bytes) -> dict[str, int]:
    m = tflite.read_model(model)
    return dict(collections.Counter(tflite.op_name(m, op) for op in m.subgraphs[0].operators))


def per_channel_op_data(train_model: bytes) -> dict[str, int]:
    """Bytes of per-output-channel op data the runtime keeps in its
    persistent arena: requantization multiplier + shift (int32 each, as TFLM
    keeps them) of every forward layer, and the weight and bias scales
    (float each) of every gradient op of a trainable layer."""
    m = tflite.read_model(train_model)
    graph = m.subgraphs[0]
    forward = backward = 0
    align = lambda n: -(-n // 16) * 16  # noqa: E731 - the runtime's 16-byte allocations
    for op in graph.operators:
        name = tflite.op_name(m, op)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            channels = int(graph.tensors[op.outputs[0]].shape[-1])
            forward += 2 * align(4 * channels)
        elif name == "TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D":  # a fused 1x1 CONV_2D + depthwise
            for channels in (int(graph.tensors[op.inputs[1]].shape[0]),
                             int(graph.tensors[op.outputs[0]].shape[-1])):
                forward += 2 * align(4 * channels)
        elif name in ("TFLMTRAIN_CONV_2D_GRAD", "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD",
                      "TFLMTRAIN_FULLY_CONNECTED_GRAD"):
            channels = int(graph.tensors[op.inputs[2]].shape[-1])  # y/grad
            backward += 2 * align(4 * channels)
    return {"forward_multipliers_bytes": forward, "backward_scales_bytes": backward}


def memory_figures(train_model: bytes) -> dict:
    info = read_training_info(train_model)
    report = tflm_train.plan(train_model).to_dict()
    timeline = report.pop("timeline")
    forward = range(info.first_forward_op, info.first_forward_op + info.num_forward_ops)
    peak = max(timeline, key=lambda o: o["live_bytes"])
    backward_ops = [o for o in timeline if o["op"] > forward[-1]]
    report.update({
        "peak_op": peak,
        "forward_peak_bytes": max(timeline[i]["live_bytes"] for i in forward),
        "backward_peak_bytes": max((o["live_bytes"] for o in backward_ops), default=0),
        "trainable_tensors": len(info.trainables),
        "trainable_layers": sorted({t.layer_name for t in info.trainables}),
    })
    report.update(per_channel_op_data(train_model))
    return report


def firmware_figures(train_model: bytes, data: Dataset, steps: int, ram_kb: int) -> dict:
    """Runs the firmware within `ram_kb`; if it does not fit, records the gap
    and reruns with the smallest budget (whole KiB) that fits."""
    from tflm_train.firmware import RamBudgetError, run_firmware
    from tflm_train.training import train

    out = {"ram_budget_kb": ram_kb}
    try:
        result = run_firmware(train_model, data, steps=steps, ram_kb=ram_kb)
        out["fits"] = True
    except RamBudgetError as e:
        out.update(fits=False, error=str(e), needed_bytes=e.needed_bytes,
                   over_by_bytes=e.needed_bytes - e.budget_bytes)
        out["rerun_ram_kb"] = math.ceil(e.needed_bytes / 1024)
        result = run_firmware(train_model, data, steps=steps, ram_kb=out["rerun_ram_kb"])
    host = train(tflm_train.Trainer(train_model), data, steps=steps, seed=0, progress=False,
                 log=lambda *_: None)
    out["weights_match_host"] = result["weights_sha256"] == host["weights_sha256"]
    out["losses_match_host"] = result["loss_history"] == host["loss_history"]
    out.update({k: v for k, v in result.items()
                if k not in ("logged_steps", "logged_samples")})
    return out


def print_report(r: dict) -> None:
    kib = lambda b: f"{b:,d} B ({b / 1024:.1f} KiB)"  # noqa: E731
    p = r["plan"]
    print(f"MobileNetV2 alpha {r['alpha']} {r['resolution']}x{r['resolution']}, "
          f"{r['classes']} classes: int8 model {kib(r['int8_model_bytes'])}")
    print(f"operators: {r['ops']}" + (f"  UNSUPPORTED: {r['unsupported_ops']}"
                                      if r["unsupported_ops"] else ""))
    print(f"scheme: {json.dumps(SCHEME)}")
    print(f"trainable: {p['trainable_tensors']} tensors in {len(p['trainable_layers'])} layers, "
          f"{kib(p['trainable_bytes'])}")
    print(f"plan (host): peak arena {kib(p['peak_arena_bytes'])} at op {p['peak_op']['op']} "
          f"({p['peak_op']['name']}); forward peak {kib(p['forward_peak_bytes'])}, "
          f"backward peak {kib(p['backward_peak_bytes'])}")
    print(f"            persistent {kib(p['persistent_bytes'])} (64-bit host), "
          f"flash {kib(p['flash_bytes'])}")
    print(f"            per-channel op data: forward multipliers "
          f"{kib(p['forward_multipliers_bytes'])}, backward scales "
          f"{kib(p['backward_scales_bytes'])}")
    f = r.get("firmware")
    if f is None:
        return
    if not f["fits"]:
        print(f"firmware: {f['error']}")
        print(f"firmware rerun with {f['rerun_ram_kb']} KiB of RAM:")
    print(f"  RAM {kib(f['ram_bytes'])}: arena {kib(f['arena_used_bytes'])} = planned "
          f"{kib(f['peak_arena_bytes'])} + persistent {kib(f['persistent_bytes'])} "
          f"(trainable {kib(f['trainable_bytes'])}); peak stack {f['peak_stack_bytes']:,d} B")
    print(f"  flash {kib(f['flash_bytes'])} (model {kib(f['model_bytes'])})")
    print(f"  instructions per train step {f['instructions_per_train_step']:,d}, "
          f"per infer step {f['instructions_per_infer_step']:,d}")
    print(f"  weights after {f['steps']} steps equal the host simulator's: "
          f"{f['weights_match_host']} (losses: {f['losses_match_host']})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--alpha", type=float, default=0.35)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="firmware training steps")
    p.add_argument("--ram-kb", type=int, default=256)
    p.add_argument("--no-firmware", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    shape = (args.resolution, args.resolution, 3)
    calibration = rng.uniform(-1, 1, (16,) + shape).astype(np.float32)
    keras_model = keras_mobilenetv2(args.resolution, args.alpha, args.classes, calibration)
    int8 = to_int8_tflite(keras_model, calibration)
    ops = op_counts(int8)
    report = {"resolution": args.resolution, "alpha": args.alpha, "classes": args.classes,
              "int8_model_bytes": len(int8), "ops": ops,
              "unsupported_ops": sorted(set(ops) - SUPPORTED_OPS), "scheme": SCHEME}
    if report["unsupported_ops"]:
        print(f"operators the converter does not support: {report['unsupported_ops']} "
              f"(all operators: {ops})")
        return 1
    train_model = tflm_train.convert(int8, SCHEME)
    report["plan"] = memory_figures(train_model)
    if not args.no_firmware:
        data = Dataset(rng.uniform(-1, 1, (args.steps,) + shape).astype(np.float32),
                       rng.integers(0, args.classes, args.steps))
        report["firmware"] = firmware_figures(train_model, data, args.steps, args.ram_kb)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
