"""Result records of plan(), train() and run_firmware().

Dataclasses with typed fields (`report.peak_ram_bytes`) that also read as
read-only mappings of their fields (`report["peak_ram_bytes"]`,
`dict(report)`), so code written against the earlier dict results keeps
working; `to_dict()` gives plain JSON-ready data.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any


class _Record(Mapping):
    """Mapping access to a dataclass's fields."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def to_dict(self) -> dict:
        """The fields as a plain dict (for JSON)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(eq=True)
class Plan(_Record):
    """Memory of one training step (`tflm_train.plan`)."""
    peak_arena_bytes: int  # planned region: activations, gradients, scratch
    persistent_bytes: int  # records, op data, variables (64-bit host layout)
    trainable_bytes: int
    optimizer_state_bytes: int  # all persistent state besides the trainables
    state_breakdown: dict  # bytes by kind: trainables, rng, momentum, ...
    flash_bytes: int
    peak_ram_bytes: int  # peak_arena_bytes + persistent_bytes
    num_operators: int
    timeline: list  # per operator: live bytes of the planned region
    memory_savings: list  # per place a memory technique applies: was / now bytes


@dataclasses.dataclass(eq=True)
class TrainResult(_Record):
    """What `tflm_train.train` / `Trainer.fit` did."""
    steps: int
    seed: int
    loss_history: list  # the loss of every step, before its update
    epochs: list  # per epoch: mean loss, steps, train accuracy (classifiers)
    weights_sha256: str  # equal to the firmware's after the same steps


@dataclasses.dataclass(eq=True)
class FirmwareResult(_Record):
    """The Cortex-M4 firmware's report (`tflm_train.firmware.run_firmware`)."""
    steps: int
    seed: int
    weights_sha256: str
    ram_bytes: int  # static data + peak stack + heap the program used
    static_ram_bytes: int
    peak_stack_bytes: int
    heap_used_bytes: int
    ram_budget_bytes: int
    flash_bytes: int
    model_bytes: int
    arena_bytes: int
    arena_used_bytes: int
    peak_arena_bytes: int
    persistent_bytes: int
    trainable_bytes: int
    instructions_per_train_step: int
    instructions_per_train_step_min: int
    instructions_per_train_step_max: int
    instructions_per_infer_step: int
    state_loaded: bool
    loss_history: list
    logged_steps: list
    logged_samples: list
    # With profile=True: per operator, {"op", "name", "train" (instructions
    # in its Eval per train step, mean over the steps), "infer"}.
    op_instructions: list | None = None
