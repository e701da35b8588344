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
        "memory_savings": memory_savings(interp),
    })


def memory_savings(interp) -> list[dict]:
    """What the memory techniques save in this training model, one entry per
    place: `what`, the operator (`op`, `name`), the tensor concerned and
    its bytes before (`was_bytes`) and after (`now_bytes`)."""
    savings = []
    for op, entry in enumerate(interp.timeline()):
        for t in entry["outputs"]:
            info = interp.tensor_info(t)
            if info["buffer_owner"] >= 0:
                savings.append({
                    "what": "in place over its input (plus a few output rows of scratch)",
                    "op": op, "name": entry["name"], "tensor": info["name"].split(";")[0],
                    "was_bytes": info["bytes"], "now_bytes": 0})
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
