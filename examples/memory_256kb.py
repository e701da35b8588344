"""On-device training within 256 KB of SRAM on the Cortex-M4: MobileNetV2-0.35
at 128x128, a person-detection MobileNetV1-0.25 at 96x96x1 and an MCUNet-like
network, each with paper-style sparse-update schemes.

Builds each Keras model with random weights (batch-norm statistics set from
random inputs, so activation and logit ranges are realistic), quantizes it to
int8, converts it with each scheme and reports the `tflm-train plan` figures
(planned peak and where, forward and backward peaks, persistent bytes, the
savings of the memory passes) and, through the firmware under QEMU
(`tflm-train firmware`), RAM, flash and instructions per step, checking the
trained weights against the host simulator. A cell that does not fit is
rerun with the smallest budget that does, to get its compute figures.

    python examples/memory_256kb.py [--models mobilenetv2 person_detection mcunet]
        [--steps 3] [--no-firmware] [--json] [--results docs/results.md]

Needs the Cortex-M toolchain and QEMU (examples/cortex_m/README.md) for the
firmware part; --no-firmware skips it.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train.converter import read_training_info, tflite, to_int8_tflite  # noqa: E402
from tflm_train.data import Dataset  # noqa: E402

HEADING = "## Training in 256 KB of SRAM"
OPTIMIZER = {"lr": 0.01, "rounding": "stochastic"}
# RAM the firmware needs beside the arena (examples/cortex_m: stack and the
# newlib heap reserve); the budget left for the arena is 256 KiB minus these
# and the image's other static data.
BUDGET_BYTES = 256 * 1024


def _keras():
    import tf_keras  # noqa: PLC0415 - TensorFlow is slow to import
    return tf_keras, tf_keras.layers


def mobilenetv2(shape, classes):
    """Keras' MobileNetV2, alpha 0.35 (the paper's model)."""
    keras, _ = _keras()
    return keras.applications.MobileNetV2(weights=None, alpha=0.35, classes=classes,
                                          input_shape=shape)


def person_detection(shape, classes):
    """MobileNetV1-0.25 on 96x96x1, the person-detection layout TFLM ships
    (first layer TOCO's depthwise x8; examples/model_zoo.py)."""
    import model_zoo  # noqa: PLC0415 - imports TensorFlow

    return model_zoo.person_detection()


# MCUNet / ProxylessNAS-style: inverted residual blocks whose kernel size
# (3, 5, 7) and expansion ratio (3, 4, 6) vary per block, as a NAS picks them.
# (expansion, kernel, output channels, stride)
MCUNET_BLOCKS = [(1, 3, 8, 1), (6, 7, 16, 2), (3, 3, 16, 1), (6, 5, 24, 2), (3, 5, 24, 1),
                 (4, 3, 24, 1), (6, 7, 40, 2), (4, 3, 40, 1), (6, 5, 48, 1), (4, 5, 48, 1),
                 (6, 7, 96, 2), (3, 5, 96, 1), (4, 3, 96, 1), (6, 3, 160, 1)]


def mcunet(shape, classes):
    keras, L = _keras()
    inputs = L.Input(shape, name="input")
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = L.ReLU(6.0, name="stem_relu")(L.BatchNormalization(name="stem_bn")(x))
    for i, (expansion, kernel, out, stride) in enumerate(MCUNET_BLOCKS):
        y = x
        channels = int(x.shape[-1])
        if expansion > 1:
            y = L.Conv2D(channels * expansion, 1, use_bias=False, name=f"b{i}_expand")(y)
            y = L.ReLU(6.0, name=f"b{i}_expand_relu")(L.BatchNormalization(name=f"b{i}_expand_bn")(y))
        y = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                              name=f"b{i}_dw")(y)
        y = L.ReLU(6.0, name=f"b{i}_dw_relu")(L.BatchNormalization(name=f"b{i}_dw_bn")(y))
        y = L.Conv2D(out, 1, use_bias=False, name=f"b{i}_project")(y)
        y = L.BatchNormalization(name=f"b{i}_project_bn")(y)
        x = L.Add(name=f"b{i}_add")([x, y]) if stride == 1 and channels == out else y
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mcunet_like")


@dataclass(frozen=True)
class MemoryModel:
    build: Callable
    shape: tuple[int, int, int]
    classes: int
    schemes: dict  # name -> scheme


# Paper-style schemes: biases of the last layers, the weights of a few late
# pointwise convolutions on their top-L2 output channels, the classifier.
MODELS = {
    "mobilenetv2": MemoryModel(mobilenetv2, (128, 128, 3), 10, {
        "paper": {"bias_update_layers": 22,
                  "weight_update": {"block_16_project": 0.25, "block_16_expand": 0.125,
                                    "block_15_project": 0.25, "block_15_expand": 0.125},
                  "optimizer": OPTIMIZER},
        "paper + Conv_1 12.5 %": {
            "bias_update_layers": 22,
            "weight_update": {"Conv_1": 0.125, "block_16_project": 0.25,
                              "block_16_expand": 0.125, "block_15_project": 0.25,
                              "block_15_expand": 0.125},
            "optimizer": OPTIMIZER},
    }),
    "person_detection": MemoryModel(person_detection, (96, 96, 1), 2, {
        "paper": {"bias_update_layers": 12,
                  "weight_update": {"conv_pw_13": 0.25, "conv_pw_12": 0.25},
                  "optimizer": OPTIMIZER},
    }),
    "mcunet": MemoryModel(mcunet, (128, 128, 3), 10, {
        "paper": {"bias_update_layers": 20,
                  "weight_update": {"b13_project": 0.25, "b13_expand": 0.125,
                                    "b12_project": 0.25, "b12_expand": 0.125},
                  "optimizer": OPTIMIZER},
    }),
}


def keras_model(spec: MemoryModel, samples: np.ndarray, seed: int = 0):
    """Random weights (from `seed`, so that every run converts the same
    model), with batch-norm statistics set from `samples` so the
    activations (and the logits' quantization scale) have realistic ranges:
    with the initial statistics the logits' scale underflows what SOFTMAX
    accepts."""
    import tf_keras  # noqa: PLC0415

    tf_keras.utils.set_random_seed(seed)
    model = spec.build(spec.shape, spec.classes)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(samples, training=True)  # moving statistics := these samples' statistics
    return model


def op_counts(model: bytes) -> dict[str, int]:
    m = tflite.read_model(model)
    return dict(collections.Counter(tflite.op_name(m, op) for op in m.subgraphs[0].operators))


def op_label(model, index: int) -> str:
    """Operator `index` of a training model, named by its kind and the
    Keras layer its first output belongs to (`<model>/<layer>/...`; a
    gradient op's output is the gradient of its layer's input)."""
    graph = model.subgraphs[0]
    op = graph.operators[index]
    outputs = [int(t) for t in op.outputs if t >= 0]
    layer = ""
    if outputs:
        parts = tflite.name_of(graph.tensors[outputs[0]]).split(";")[0].split("/")
        layer = parts[1] if len(parts) > 2 else parts[0]
        if "/grad" in tflite.name_of(graph.tensors[outputs[0]]):
            layer += " grad"
    return f"{tflite.op_name(model, op)} {layer}".strip()


def memory_figures(train_model: bytes) -> dict:
    info = read_training_info(train_model)
    report = tflm_train.plan(train_model).to_dict()
    timeline = report.pop("timeline")
    forward = range(info.first_forward_op, info.first_forward_op + info.num_forward_ops)
    peak = dict(max(timeline, key=lambda o: o["live_bytes"]))
    peak["name"] = op_label(tflite.read_model(train_model), peak["op"])
    backward_ops = [o for o in timeline if o["op"] > forward[-1]]
    report.update({
        "peak_op": peak,
        "forward_peak_bytes": max(timeline[i]["live_bytes"] for i in forward),
        "backward_peak_bytes": max((o["live_bytes"] for o in backward_ops), default=0),
        "trainable_tensors": len(info.trainables),
        "trainable_layers": sorted({t.layer_name for t in info.trainables}),
    })
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
                if k not in ("logged_steps", "logged_samples", "loss_history")})
    return out


def run_model(name: str, steps: int, ram_kb: int, firmware: bool, log=print) -> dict:
    spec = MODELS[name]
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, (16,) + spec.shape).astype(np.float32)
    int8 = to_int8_tflite(keras_model(spec, calibration), calibration)
    out = {"shape": list(spec.shape), "classes": spec.classes, "int8_model_bytes": len(int8),
           "ops": op_counts(int8), "schemes": {}}
    data = Dataset(rng.uniform(-1, 1, (steps,) + spec.shape).astype(np.float32),
                   rng.integers(0, spec.classes, steps))
    for scheme_name, scheme in spec.schemes.items():
        train_model = tflm_train.convert(int8, scheme)
        cell = {"scheme": scheme, "training_ops": op_counts(train_model),
                "plan": memory_figures(train_model)}
        if firmware:
            cell["firmware"] = firmware_figures(train_model, data, steps, ram_kb)
        out["schemes"][scheme_name] = cell
        log(f"{name} / {scheme_name}: {cell_line(cell)}")
    return out


def kib(b: int) -> str:
    return f"{b:,d} B ({b / 1024:.1f} KiB)"


def cell_line(cell: dict) -> str:
    p = cell["plan"]
    text = (f"planned peak {kib(p['peak_arena_bytes'])} at op {p['peak_op']['op']} "
            f"({p['peak_op']['name']}); forward {p['forward_peak_bytes']:,d} B, backward "
            f"{p['backward_peak_bytes']:,d} B; persistent {p['persistent_bytes']:,d} B "
            f"(trainable {p['trainable_bytes']:,d} B)")
    f = cell.get("firmware")
    if f is not None:
        fit = "fits 256 KiB" if f["fits"] else f"does NOT fit: over by {f['over_by_bytes']:,d} B"
        text += (f"; firmware RAM {f['ram_bytes']:,d} B, {fit}; weights = host: "
                 f"{f['weights_match_host']}")
    return text


def table(results: dict) -> str:
    lines = ["| model | scheme | trained | planned peak (where) | persistent (device) | "
             "firmware RAM | fits 256 KiB | weights = host | instructions train / infer |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, model in results.items():
        for scheme_name, cell in model["schemes"].items():
            p, f = cell["plan"], cell.get("firmware", {})
            ram = f"{f['ram_bytes']:,d} B" if f else "n/a"
            fits = ("yes" if f.get("fits") else f"no (+{f['over_by_bytes']:,d} B)") if f else "n/a"
            same = ("yes" if f.get("weights_match_host") and f.get("losses_match_host")
                    else "NO") if f else "n/a"
            steps = (f"{f['instructions_per_train_step']:,d} / "
                     f"{f['instructions_per_infer_step']:,d}") if f else "n/a"
            persistent = f"{f['persistent_bytes']:,d} B" if f else "n/a"
            lines.append(
                f"| {name} {'x'.join(map(str, model['shape']))} | {scheme_name} | "
                f"{p['trainable_bytes']:,d} B | {p['peak_arena_bytes']:,d} B "
                f"({p['peak_op']['name']}) | {persistent} | {ram} | {fits} | {same} | {steps} |")
    return "\n".join(lines)


METHOD = (
    "Random-weight Keras models quantized to int8 (the figures do not depend on the "
    "weights). The converter and runtime apply, with numerics unchanged (tests compare "
    "each against the graph without it, bit for bit): channel-sliced trainable weights, "
    "1-bit activation masks (TFLMTRAIN_PACK_MASK) packed right after each activation's "
    "last forward reader, MEAN's gradient fused into the convolution before it, frozen "
    "1x1 expand -> depthwise pairs run in row bands (TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D), "
    "and in-place depthwise convolution (standalone runtime only). `tflm-train plan` "
    "lists where each applies. Under TFLM (measured by hand, docs/tflm_integration.md "
    "section 4) the same training models train bit-identically but need more arena: the "
    "person detector fits 256 KiB, MobileNetV2 and the MCUNet-like network need about "
    "258 KB of arena on the Cortex-M4 (no in-place depthwise; per-channel data kept per "
    "layer).")


def misfits(results: dict) -> str:
    """A sentence per firmware cell that did not fit its budget."""
    lines = []
    for name, model in results.items():
        for scheme_name, cell in model["schemes"].items():
            f, p = cell.get("firmware"), cell["plan"]
            if f and not f["fits"]:
                lines.append(
                    f"`{name}` / `{scheme_name}` does not fit the {f['ram_budget_kb']} KiB "
                    f"linker budget (over by {f['over_by_bytes']:,d} B; budget = arena + "
                    f"static data + stack + heap reserve); its planned peak is "
                    f"{p['peak_arena_bytes']:,d} B at {p['peak_op']['name']}.")
    return "".join("\n\n" + line for line in lines)


TECHNIQUES = {"in_place_depthwise": "in-place depthwise",
              "packed_mask": "1-bit masks", "channel_slice": "channel slices",
              "expand_depthwise_bands": "expand -> depthwise bands",
              "fused_mean_grad": "fused MEAN gradient"}


def savings_table(results: dict) -> str:
    """Per cell and technique (`tflm-train plan`'s memory_savings): places,
    and tensor bytes without -> with it (summed over places; they are not
    all live at once, so the sums are not peak reductions)."""
    lines = ["| model | scheme | " + " | ".join(TECHNIQUES.values()) + " |",
             "|---|---|" + "---|" * len(TECHNIQUES)]
    for name, model in results.items():
        for scheme_name, cell in model["schemes"].items():
            entries = collections.defaultdict(list)
            for s in cell["plan"]["memory_savings"]:
                entries[s["technique"]].append(s)
            cells = []
            for key in TECHNIQUES:
                found = entries.get(key, [])
                cells.append(f"{len(found)}: {sum(s['was_bytes'] for s in found):,d} -> "
                             f"{sum(s['now_bytes'] for s in found):,d} B" if found else "—")
            lines.append(f"| {name} | {scheme_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    p.add_argument("--steps", type=int, default=3, help="firmware training steps")
    p.add_argument("--ram-kb", type=int, default=256)
    p.add_argument("--no-firmware", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--results", type=Path, help="write the table into this markdown file")
    args = p.parse_args(argv)

    log = (lambda *_: None) if args.json else print
    results = {name: run_model(name, args.steps, args.ram_kb, not args.no_firmware, log)
               for name in args.models}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    if args.results:
        import digits_adaptation as da  # noqa: PLC0415 - write_section

        body = (f"`python examples/memory_256kb.py --steps {args.steps} --results "
                f"docs/results.md` ({args.steps} firmware steps per cell on the Cortex-M4 "
                "under QEMU; RAM is the firmware's own figure: arena + static data + peak "
                "stack + heap). " + METHOD + "\n\n" + table(results) + misfits(results) +
                "\n\nWhere each technique applies (`tflm-train plan`; places: tensor bytes "
                "without -> with it, summed over places, which are not all live at once, so "
                "the sums are not peak reductions):\n\n" + savings_table(results))
        da.write_section(args.results, HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
