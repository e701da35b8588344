"""Memory plan of a training model, from the runtime's own planner."""
from __future__ import annotations

from tflm_train import _native
from tflm_train.errors import RuntimeModelError
from tflm_train.runtime import DEFAULT_ARENA_BYTES, _read_bytes


def plan(model) -> dict:
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
    trainable = sum(interp.tensor_info(t.variable)["bytes"] for t in info.trainables)
    optimizer_state = interp.tensor_info(info.rng)["bytes"] if info.rng >= 0 else 0
    return {
        "peak_arena_bytes": mem["planned_bytes"],
        "persistent_bytes": mem["persistent_bytes"],
        "trainable_bytes": trainable,
        "optimizer_state_bytes": optimizer_state,
        "flash_bytes": len(data),
        "peak_ram_bytes": mem["planned_bytes"] + mem["persistent_bytes"],
        "num_operators": interp.num_operators,
        "timeline": interp.timeline(),
    }


def plot_timeline(report: dict, path) -> None:
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
