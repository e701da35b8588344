"""Memory plan of a training model, from the runtime's own planner."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from tflm_train import _native
from tflm_train.errors import RuntimeModelError
from tflm_train.results import Plan
from tflm_train.runtime import DEFAULT_ARENA_BYTES, ModelSource, _read_bytes

if TYPE_CHECKING:
    from tflm_train.converter import TrainingInfo


def plan(model: ModelSource) -> dict:
    """Peak arena, persistent and flash bytes of one training step.

    `peak_arena_bytes` is the planned region (activations, gradients,
    scratch; identical on every target). `persistent_bytes` are the runtime's
    records, op data and variables as laid out on this host (64-bit records
    are larger than on a 32-bit MCU). `peak_ram_bytes` is their sum.
    """
    from tflm_train.converter import read_training_info

    data = _read_bytes(model)
    info = read_training_info(data)
    try:
        interp = _native.Interpreter(data, DEFAULT_ARENA_BYTES)
    except RuntimeError as e:
        raise RuntimeModelError(f"runtime: {e}") from None
    mem = interp.memory()
    size = lambda index: interp.tensor_info(index)["bytes"]  # noqa: E731
    breakdown = state_breakdown(info, size)
    return Plan(**{
        "peak_arena_bytes": mem["planned_bytes"],
        "persistent_bytes": mem["persistent_bytes"],
        "trainable_bytes": breakdown["trainables"],
        "optimizer_state_bytes": sum(v for k, v in breakdown.items() if k != "trainables"),
        "state_breakdown": breakdown,
        "flash_bytes": len(data),
        "peak_ram_bytes": mem["planned_bytes"] + mem["persistent_bytes"],
        "num_operators": interp.num_operators,
        "timeline": interp.timeline(),
        "memory_savings": memory_savings(interp, data),
    })


def memory_savings(interp, model_bytes: bytes) -> list[dict]:
    """What the memory techniques save in this training model, one entry per
    place: `technique` (in_place_depthwise, packed_mask, channel_slice,
    expand_depthwise_bands, fused_mean_grad, int8_gradients), `what`, the operator (`op`,
    `name`), the tensor concerned and the bytes it would take without the
    technique (`was_bytes`) and with it (`now_bytes`). Not all are live at
    once, so they do not add up to a peak; the planner's peak is the figure
    of record."""
    import numpy as np
    from flatbuffers import flexbuffers

    from tflm_train.converter import tflite

    model = tflite.read_model(model_bytes)
    sg = model.subgraphs[0]

    def shape(t):
        return [int(d) for d in sg.tensors[t].shape]

    def name(t):
        """The tensor's name; of a fused forward name "a;b;c/grad" only "a/grad"."""
        full = tflite.name_of(sg.tensors[t])
        first = full.split(";")[0]
        return first + full[full.rindex("/grad"):] if ";" in full and "/grad" in full \
            else first

    def broadcast_cells(k, op):
        """H * W of a layer gradient's dy_broadcast options (0: none)."""
        if op.customOptions is None or len(op.customOptions) == 0:
            return 0
        try:
            o = flexbuffers.Loads(bytes(np.asarray(op.customOptions, dtype=np.uint8)))
            return int(o.get("dy_broadcast_h", 0)) * int(o.get("dy_broadcast_w", 0))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError,
                UnicodeDecodeError) as e:
            raise RuntimeModelError(f"plan: operator {k} ({timeline[k]['name']}): custom "
                                    f"options are not a readable flexbuffer map ({e})") from None

    savings = []

    def add(op, technique, what, tensor, was, now):
        savings.append({"technique": technique, "what": what, "op": op,
                        "name": timeline[op]["name"], "tensor": name(tensor),
                        "was_bytes": int(was), "now_bytes": int(now)})

    timeline = interp.timeline()
    for k, op in enumerate(sg.operators):
        op_name = timeline[k]["name"]
        inputs = [int(t) for t in op.inputs]
        if op_name.endswith("_GRAD") or op_name == "TFLMTRAIN_GRAD_SUM":
            for t in (int(t) for t in op.outputs):
                if sg.tensors[t].type == tflite.INT8:
                    elements = int(np.prod(shape(t)))
                    add(k, "int8_gradients", "gradient stored as int8 with a per-tensor "
                        "scale (4 bytes) instead of float32", t, 4 * elements, elements + 4)
        for t in timeline[k]["outputs"]:
            info = interp.tensor_info(t)
            if info["buffer_owner"] >= 0:
                add(k, "in_place_depthwise",
                    "in place over its input (plus a few output rows of scratch)", t,
                    info["bytes"], 0)
        if op_name == "TFLMTRAIN_PACK_MASK":
            y, bits = inputs[1], int(op.outputs[0])
            add(k, "packed_mask", "1-bit activation mask kept for the backward pass "
                "instead of the int8 tensor", y, interp.tensor_info(y)["bytes"],
                interp.tensor_info(bits)["bytes"])
        elif op_name in ("TFLMTRAIN_CONV_2D_SLICED", "TFLMTRAIN_FULLY_CONNECTED_SLICED"):
            filt, part = inputs[1], inputs[3]
            add(k, "channel_slice", f"trained channels only in RAM ({shape(part)[0]} of "
                f"{shape(filt)[0]}), the filter stays in flash", filt, int(np.prod(shape(filt))),
                interp.tensor_info(part)["bytes"])
        elif op_name == "TFLMTRAIN_EXPAND_DEPTHWISE_CONV_2D":
            x, expand_filter, expanded = inputs[0], inputs[1], inputs[3]
            add(k, "expand_depthwise_bands",
                "expand -> depthwise in row bands: the expanded tensor never exists whole",
                expanded, int(np.prod(shape(x)[:3])) * shape(expand_filter)[0],
                timeline[k]["scratch_bytes"])
        elif op_name in ("TFLMTRAIN_CONV_2D_GRAD", "TFLMTRAIN_DEPTHWISE_CONV_2D_GRAD"):
            cells = broadcast_cells(k, op)
            if cells:
                dy = inputs[2]
                add(k, "fused_mean_grad", "spatial MEAN's gradient fused into this gradient: "
                    "no [N, H, W, C] float gradient", dy, 4 * cells * int(np.prod(shape(dy))), 0)
    return savings


def state_breakdown(info: TrainingInfo, size: Callable[[int], int]) -> dict:
    """Bytes of the persistent training state by what it is for; `size(i)`
    gives tensor i's bytes. Momentum, mini-batch accumulators and
    imprinting exist only when the scheme asks for them."""
    from tflm_train.converter import StateKind

    names = {StateKind.STEP_COUNTER: "step_counter", StateKind.ACCUMULATOR: "batch_accumulators",
             StateKind.VELOCITY: "momentum", StateKind.IMPRINT_COUNTS: "imprint",
             StateKind.IMPRINT_SUMS: "imprint"}
    out = {"trainables": sum(size(t.variable) for t in info.trainables),
           "rng": size(info.rng) if info.rng >= 0 else 0,
           "output_range": size(info.output_range),
           "step_counter": 0, "momentum": 0, "batch_accumulators": 0, "imprint": 0}
    for index, kind in zip(info.optimizer_state, info.optimizer_state_kinds, strict=True):
        out[names[kind]] += size(index)
    return out


def plot_timeline(report: dict, path: str | os.PathLike) -> None:
    """Per-operator live bytes of the planned region, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = report["timeline"]
    fig, ax = plt.subplots(figsize=(max(6, len(ops) * 0.25), 4))
    ax.bar(range(len(ops)), [o["live_bytes"] / 1024 for o in ops], color="#4477aa")
    ax.axhline(report["peak_arena_bytes"] / 1024, color="#cc3311", ls="--",
               label=f"planned peak {report['peak_arena_bytes'] / 1024:.1f} KiB")
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels([o["name"] for o in ops], rotation=90, fontsize=6)
    ax.set_ylabel("live KiB")
    ax.set_title("training step: live arena bytes per operator")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
