"""Training on a Cortex-M4 under QEMU (mps2-an386): build, run, report.

`run_firmware` compiles examples/cortex_m/train_main.cc with the C++ runtime
and kernels, the training model and the samples as const arrays (flash),
runs it under `qemu-system-arm -icount` and parses what it prints. The
sample order is the host's (`tflm_train.training.sample_order`), passed as
an index array, so the firmware's weights after N steps must equal
`Trainer.weights_sha256()` after `train(..., steps=N, seed=S)`.

The arena is sized by measuring, over one set of objects: a first image
(arena in the board's PSRAM, outside the RAM budget; 4 MB RAM region) prints
the arena the model needs on the 32-bit target (persistent records are
smaller than on the 64-bit host). The final image has exactly that arena as
a static array in .bss; it is linked once into the 4 MB region to read the
exact RAM the linker script's budget check adds up (so an over-budget model
is reported with the exact shortfall), then into the RAM budget, and run.
"""
from __future__ import annotations

import collections
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from tflm_train.errors import TflmTrainError
from tflm_train.results import FirmwareResult

if TYPE_CHECKING:
    from tflm_train.data import Dataset
    from tflm_train.runtime import ModelSource


def _source_root() -> Path:
    """The folder holding `ops_cc/` and `examples/cortex_m/`: the package's
    `_firmware/` (a non-editable install; setup.py copies them there) or the
    source tree the package sits in (an editable install or a checkout).
    Both have the same layout below it."""
    package = Path(__file__).resolve().parent
    for root in (package / "_firmware", package.parent):
        if (root / "examples" / "cortex_m" / "train_main.cc").is_file() \
                and (root / "ops_cc").is_dir():
            return root
    return package / "_firmware"  # check_environment() reports it missing


_ROOT = _source_root()
FIRMWARE_DIR = _ROOT / "examples" / "cortex_m"
TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-nm",
         "qemu-system-arm")
# RAM region of the measuring image (the board has 4 MB of SRAM there).
_MEASURE_RAM_BYTES = 4 << 20
# Fixed reservations of the platform's linker script (Makefile defaults).
STACK_BYTES = 16384
HEAP_MIN_BYTES = 4096
_ARENA_ALIGNMENT = 16


class RamBudgetError(TflmTrainError):
    """The image does not fit the RAM budget; `needed_bytes` is what it needs."""

    def __init__(self, message: str, needed_bytes: int, budget_bytes: int):
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes


def _library_sources() -> list[str]:
    """The runtime, kernels and op wrappers (not the Python binding, not the
    TFLM adapter)."""
    ops = _ROOT / "ops_cc"
    files = [p for d in ("core", "kernels", "ops", "runtime")
             for p in sorted((ops / d).rglob("*.cc")) if not p.name.endswith("_test.cc")]
    return [str(p) for p in files]


# CMSIS-NN (`cmsis_nn=DIR`): the Source/ folders whose s8 kernels the
# runtime's forward wrappers call (ops_cc/ops/forward/cmsis_nn.h), and the
# functions those wrappers need from Include/arm_nnfunctions.h. Float files
# (_f16/_f32; CMSIS-NN's float API is off by default) are left out.
CMSIS_NN_FOLDERS = ("ConvolutionFunctions", "FullyConnectedFunctions",
                    "NNSupportFunctions", "PoolingFunctions")
CMSIS_NN_FUNCTIONS = ("arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8",
                      "arm_fully_connected_s8", "arm_fully_connected_per_channel_s8",
                      "arm_avgpool_s8", "arm_max_pool_s8")
# The CMSIS-NN commit the firmware was verified with (bit-exact with the
# portable kernels; examples/cortex_m/README.md).
CMSIS_NN_VERIFIED = "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"


class _Build(NamedTuple):
    """What a build adds to the runtime: sources, -I and -D flags."""
    sources: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()


def cmsis_nn_build(directory: str | os.PathLike) -> _Build:
    """The sources, include folder and define that compile the runtime's
    forward kernels with the CMSIS-NN tree at `directory` (a checkout of
    github.com/ARM-software/CMSIS-NN). Raises a one-line TflmTrainError if
    it does not look like one."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise TflmTrainError(f"--cmsis-nn: {directory} is not a directory")
    root = root.resolve()
    if any(ch.isspace() for ch in str(root)):
        raise TflmTrainError(f"--cmsis-nn: {root} contains whitespace, which make cannot "
                             "take; move or link the CMSIS-NN tree to a path without it")
    header = root / "Include" / "arm_nnfunctions.h"
    folders = [root / "Source" / f for f in CMSIS_NN_FOLDERS]
    missing = [str(p.relative_to(root)) for p in [header] + folders if not p.exists()]
    if missing:
        raise TflmTrainError(f"--cmsis-nn: {root} does not look like a CMSIS-NN tree "
                             f"(no {', '.join(missing)})")
    declared = header.read_text(errors="replace")
    absent = [f for f in CMSIS_NN_FUNCTIONS if re.search(rf"\b{f}\s*\(", declared) is None]
    if absent:
        raise TflmTrainError(f"--cmsis-nn: {header} does not declare {', '.join(absent)} "
                             f"(an older CMSIS-NN? verified with commit {CMSIS_NN_VERIFIED})")
    sources = [str(p) for folder in folders for p in sorted(folder.glob("*.c"))
               if not re.search(r"_f(16|32)\.c$", p.name)]
    return _Build(tuple(sources), (str(root / "Include"),), ("-DTFLM_TRAIN_CMSIS_NN",))


def check_environment() -> None:
    """Raises a one-line TflmTrainError if sources or tools are missing."""
    if not (FIRMWARE_DIR / "train_main.cc").is_file() or not (_ROOT / "ops_cc").is_dir():
        raise TflmTrainError(
            f"firmware sources (examples/cortex_m, ops_cc) not found in {_ROOT}; "
            "reinstall the package from the source tree (`pip install .`)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise TflmTrainError(
            f"{', '.join(missing)} not found; install make gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev qemu-system-arm "
            "(see examples/cortex_m/README.md)")


def step_order(n: int, steps: int, seed: int) -> np.ndarray:
    """The sample index of every step, walking epochs exactly as
    `tflm_train.training.train(..., steps=steps, seed=seed)` does."""
    from tflm_train.training import sample_order

    epochs = math.ceil(steps / n)
    return np.concatenate([sample_order(n, seed, e) for e in range(epochs)])[:steps]


def _c_array(ctype: str, name: str, values: np.ndarray, align: int | None = None) -> str:
    flat = values.reshape(-1)
    if flat.dtype.kind == "f":
        items = [f"{float(v)!r}f" if np.isfinite(v) else "0.0f" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    rows = ",\n".join(", ".join(items[i:i + 24]) for i in range(0, len(items), 24))
    alignas = f"alignas({align}) " if align else ""
    return f"{alignas}const {ctype} {name}[] = {{\n{rows}\n}};\n"


def _write_sources(directory: Path, model: bytes, samples: np.ndarray,
                   targets: np.ndarray, order: np.ndarray, log_every: int) -> None:
    """`targets`: int32 labels (one per sample), or float32 regression
    targets (one row per sample)."""
    sample_type = "float" if samples.dtype == np.float32 else "int8_t"
    regression = targets.dtype == np.float32
    labels = np.full(len(samples), -1, np.int32) if regression else targets
    target_rows = targets if regression else np.zeros((1, 1), np.float32)
    (directory / "train_data.h").write_text(f"""\
// Generated by tflm_train.firmware: model, samples and step order.
#ifndef TRAIN_DATA_H_
#define TRAIN_DATA_H_
#include <stddef.h>
#include <stdint.h>
typedef {sample_type} train_sample_t;
#define TRAIN_MODEL_BYTES {len(model)}u
#define TRAIN_SAMPLE_ELEMS {samples[0].size}u
#define TRAIN_NUM_STEPS {len(order)}u
#define TRAIN_LOG_EVERY {log_every}u
// 0: a classifier (g_labels); else float targets per sample (g_targets).
#define TRAIN_TARGET_ELEMS {target_rows[0].size if regression else 0}u
extern const uint8_t g_model[];
extern const train_sample_t g_samples[];
extern const int32_t g_labels[];
extern const float g_targets[];
extern const uint32_t g_order[];
#endif
""")
    with open(directory / "train_data.cc", "w") as f:
        f.write('#include "train_data.h"\n\n')
        # The runtime reads the flatbuffer in place: 8-byte alignment needed.
        f.write(_c_array("uint8_t", "g_model", np.frombuffer(model, np.uint8), align=16))
        f.write(_c_array("train_sample_t", "g_samples", samples, align=16))
        f.write(_c_array("int32_t", "g_labels", labels.astype(np.int32)))
        f.write(_c_array("float", "g_targets", target_rows.astype(np.float32)))
        f.write(_c_array("uint32_t", "g_order", order.astype(np.uint32)))


def _write_config(directory: Path, arena_bytes: int | None,
                  state_file: Path | None = None, profile_ops: int = 0) -> None:
    """arena_bytes None: the measuring image (arena in PSRAM). state_file:
    the host file the firmware loads its trained state from and saves it to
    (state_store.h's two slots; created erased if missing). profile_ops > 0:
    count each of that many operators' instructions (train_main.cc)."""
    text = ("#define TRAIN_ARENA_MEASURE 1\n" if arena_bytes is None else
            f"#define TRAIN_ARENA_MEASURE 0\n#define TRAIN_ARENA_BYTES {arena_bytes}u\n")
    if state_file is not None:
        text += f"#define TRAIN_STATE_FILE {json.dumps(str(Path(state_file).resolve()))}\n"
    if profile_ops > 0:
        text += f"#define TRAIN_PROFILE_OPS {profile_ops}\n"
    (directory / "train_config.h").write_text("// Generated by tflm_train.firmware.\n" + text)


def _make_command(directory: Path, ram_bytes: int, target: str, *, relink_only: bool,
                  timeout: int, extra: _Build = _Build()) -> list[str]:
    build = directory / "build"
    srcs = ["train_main.cc", str(directory / "train_data.cc")] + _library_sources()
    srcs += extra.sources
    includes = [f"-I{_ROOT}", f"-I{directory}"] + [f"-I{i}" for i in extra.includes]
    cmd = ["make", "-C", str(FIRMWARE_DIR), f"-j{os.cpu_count() or 1}", "-s",
           "PROG=train", f"OUT={build}", f"SRCS={' '.join(srcs)}",
           f"INCLUDES={' '.join(includes)}", f"RAM_BUDGET={ram_bytes}",
           f"STACK_SIZE={STACK_BYTES}", f"HEAP_MIN={HEAP_MIN_BYTES}",
           f"QEMU_TIMEOUT={timeout}"]
    if extra.defines:
        cmd.append(f"DEFINES={' '.join(extra.defines)}")
    if relink_only:
        # Only the RAM budget (a link flag) and train_config.h differ from the
        # measuring build: do not recompile the rest because the flags stamp
        # changed.
        cmd.append(f"--old-file={build}/obj/train/flags.txt")
    cmd.append(target)
    return cmd


def _make(directory: Path, ram_bytes: int, target: str, *, relink_only: bool,
          timeout: int, extra: _Build = _Build()) -> subprocess.CompletedProcess:
    cmd = _make_command(directory, ram_bytes, target, relink_only=relink_only,
                        timeout=timeout, extra=extra)
    try:
        return subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=timeout + 600)
    except subprocess.TimeoutExpired:
        raise TflmTrainError(f"firmware: `make {target}` timed out") from None


def _first_error_line(output: str) -> str:
    for line in output.splitlines():
        if "error" in line.lower():
            return line.strip()
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


_STEP = re.compile(r"step (\d+) sample (\d+) label (-?\d+) loss \S+ bits ([0-9a-f]{8}) "
                   r"instructions (\d+)")
_INFER = re.compile(r"infer sample (\d+) label (-?\d+) predicted (-?\d+) loss \S+ "
                    r"bits ([0-9a-f]{8}) instructions (\d+)")
_TRAIN = re.compile(r"train_steps (\d+) instructions_total (\d+) min (\d+) max (\d+)")
_OP = re.compile(r"op_instructions (train|infer) (\d+) (\S+) (\d+)")


def _bits_to_float(bits: str) -> float:
    return float(np.frombuffer(bytes.fromhex(bits)[::-1], dtype="<f4")[0])


def parse_output(text: str) -> dict:
    """Parses the firmware's report; a firmware `error` line raises."""
    values, steps, ops = {}, [], collections.defaultdict(dict)
    for line in text.splitlines():
        if line.startswith("error "):
            raise TflmTrainError(f"firmware: {line[len('error '):]}")
        if m := _STEP.fullmatch(line):
            steps.append({"step": int(m[1]), "sample": int(m[2]), "label": int(m[3]),
                          "loss": _bits_to_float(m[4]), "instructions": int(m[5])})
        elif m := _INFER.fullmatch(line):
            values["infer"] = {"sample": int(m[1]), "label": int(m[2]),
                               "predicted": int(m[3]), "loss": _bits_to_float(m[4]),
                               "instructions": int(m[5])}
        elif m := _OP.fullmatch(line):
            ops[int(m[2])].update({"op": int(m[2]), "name": m[3], m[1]: int(m[4])})
        elif m := _TRAIN.fullmatch(line):
            values["train"] = {"steps": int(m[1]), "total": int(m[2]), "min": int(m[3]),
                               "max": int(m[4])}
        elif m := re.fullmatch(r"weights_sha256 ([0-9a-f]{64})", line):
            values["weights_sha256"] = m[1]
        elif m := re.fullmatch(r"([a-z_]+) (\d+)", line):
            values[m[1]] = int(m[2])
    values["steps"] = steps
    values["op_instructions"] = [ops[k] for k in sorted(ops)] if ops else None
    if "done" not in text.splitlines():
        raise TflmTrainError("firmware: the report ended early: "
                             + _first_error_line(text))
    return values


def _build(directory: Path, ram_bytes: int, *, relink_only: bool, timeout: int,
           extra: _Build = _Build()) -> Path:
    elf = directory / "build" / "train.elf"
    if relink_only:
        elf.unlink(missing_ok=True)  # the flags stamp is ignored: force the link
    build = _make(directory, ram_bytes, "all", relink_only=relink_only, timeout=timeout,
                  extra=extra)
    if build.returncode != 0:
        raise TflmTrainError("firmware build failed: "
                             + _first_error_line(build.stderr + build.stdout))
    return elf


def _run(directory: Path, ram_bytes: int, timeout: int, extra: _Build = _Build()) -> dict:
    run = _make(directory, ram_bytes, "run", relink_only=True, timeout=timeout, extra=extra)
    report = parse_output(run.stdout)
    if run.returncode != 0:
        raise TflmTrainError("firmware: exited with an error: "
                             + _first_error_line(run.stderr + run.stdout))
    return report


def _ram_needed(elf: Path) -> int:
    """What the linker script's budget check adds up for this image:
    .data + .bss (8-byte aligned) + heap reserve + stack."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    symbols = {parts[2]: int(parts[0], 16) for parts in map(str.split, out.splitlines())
               if len(parts) == 3}
    static = -(-symbols["__bss_end__"] // 8) * 8 - symbols["__data_start__"]
    return static + HEAP_MIN_BYTES + STACK_BYTES


def _prepare_data(trainer, data, steps: int, seed: int, first_step: int = 0):
    """The samples steps [first_step, first_step + steps) use (model input
    type), their labels (int32) or regression targets (float32 rows), and
    the step order as indices into them."""
    order = step_order(len(data), first_step + steps, seed)[first_step:]
    used = np.unique(order)
    samples = np.stack([trainer.prepare_input(data.x[i]).reshape(-1) for i in used])
    targets = np.stack([trainer.target(data.x[i], None if data.y is None else data.y[i])
                        .reshape(-1) for i in used])
    if trainer.is_classifier:
        targets = targets[:, 0]
    return samples, targets, np.searchsorted(used, order), used


def _num_operators(model_bytes: bytes) -> int:
    from tflm_train.converter import tflite

    return len(tflite.read_model(model_bytes).subgraphs[0].operators)


def run_firmware(model: ModelSource, data: Dataset | str | os.PathLike, *, steps: int,
                 seed: int = 0, ram_kb: int = 256, log_every: int = 1, timeout: int = 600,
                 state_file: str | os.PathLike | None = None,
                 first_step: int = 0, profile: bool = False,
                 cmsis_nn: str | os.PathLike | None = None) -> FirmwareResult:
    """Trains `model` for `steps` samples of `data` (a DATA.npz path or a
    `Dataset`) on the Cortex-M4 firmware under QEMU; returns its figures.

    With `state_file`, the firmware first loads its trained state from that
    file (the device's two-slot format, ops_cc/runtime/state_store.h; created
    if missing) and saves it there after the steps: a second run with the
    same file and `first_step` = the steps already done continues exactly
    like one unbroken run.

    With `profile`, the firmware also counts the instructions of each
    operator's Eval (`op_instructions`; its two counter reads per operator
    add a few hundred instructions to a step, and a few bytes per operator
    of static RAM).

    With `cmsis_nn` (the folder of a CMSIS-NN tree, github.com/ARM-software/
    CMSIS-NN), the runtime's CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
    AVERAGE_POOL_2D and MAX_POOL_2D call CMSIS-NN's s8 kernels where they
    cover the case (ops_cc/ops/forward/cmsis_nn.h); the trained weights are
    the same, bit for bit. Any extra scratch they need is in the measured
    arena (the host's plan does not know it).

    Raises RamBudgetError when the model does not fit `ram_kb` KiB of RAM
    (saying by how many bytes), TflmTrainError when tools are missing or on
    any error the firmware reports.
    """
    from tflm_train.data import load_for
    from tflm_train.runtime import Trainer, _read_bytes

    extra = _Build() if cmsis_nn is None else cmsis_nn_build(cmsis_nn)
    check_environment()
    if steps <= 0 or ram_kb <= 0 or log_every <= 0 or first_step < 0:
        raise TflmTrainError("steps, ram_kb and log_every must be positive, first_step >= 0")
    model_bytes = _read_bytes(model)
    trainer = Trainer(model_bytes)
    data = load_for(trainer, data)
    samples, targets, order, used = _prepare_data(trainer, data, steps, seed, first_step)
    ram_bytes = ram_kb * 1024

    with tempfile.TemporaryDirectory(prefix="tflm-train-firmware-") as tmp:
        directory = Path(tmp)
        _write_sources(directory, model_bytes, samples, targets, order, log_every)
        _write_config(directory, None)
        _build(directory, _MEASURE_RAM_BYTES, relink_only=False, timeout=timeout,
               extra=extra)
        measured = _run(directory, _MEASURE_RAM_BYTES, timeout, extra)
        arena = -(-measured["arena_used_bytes"] // _ARENA_ALIGNMENT) * _ARENA_ALIGNMENT
        _write_config(directory, arena, state_file, _num_operators(model_bytes) if profile else 0)
        # Linked first into the large region to learn the exact RAM it needs.
        need = _ram_needed(_build(directory, _MEASURE_RAM_BYTES, relink_only=True,
                                  timeout=timeout, extra=extra))
        if need > ram_bytes:
            raise RamBudgetError(
                f"model does not fit in {ram_kb} KiB of RAM: needs {need} bytes "
                f"(arena {arena}, stack {STACK_BYTES}, heap reserve {HEAP_MIN_BYTES}, "
                f"other static data {need - arena - STACK_BYTES - HEAP_MIN_BYTES}), "
                f"over by {need - ram_bytes} bytes", need, ram_bytes)
        _build(directory, ram_bytes, relink_only=True, timeout=timeout, extra=extra)
        report = _run(directory, ram_bytes, timeout, extra)

    steps_run = report["steps"]
    train, infer = report["train"], report["infer"]
    return FirmwareResult(**{
        "steps": train["steps"],
        "seed": seed,
        "weights_sha256": report["weights_sha256"],
        # What the program really used: static data, stack and heap (newlib's
        # stdout buffer).
        "ram_bytes": (report["static_ram_bytes"] + report["peak_stack_bytes"]
                      + report["heap_used_bytes"]),
        "static_ram_bytes": report["static_ram_bytes"],
        "peak_stack_bytes": report["peak_stack_bytes"],
        "heap_used_bytes": report["heap_used_bytes"],
        "ram_budget_bytes": report["ram_budget_bytes"],
        "flash_bytes": report["flash_bytes"],
        "model_bytes": report["model_bytes"],
        "arena_bytes": report["arena_bytes"],
        "arena_used_bytes": report["arena_used_bytes"],
        "peak_arena_bytes": report["planned_bytes"],
        "persistent_bytes": report["persistent_bytes"],
        "trainable_bytes": report["trainable_bytes"],
        "instructions_per_train_step": round(train["total"] / train["steps"]),
        "instructions_per_train_step_min": train["min"],
        "instructions_per_train_step_max": train["max"],
        "instructions_per_infer_step": infer["instructions"],
        "state_loaded": bool(report.get("state_loaded", 0)),
        "loss_history": [s["loss"] for s in steps_run],
        "logged_steps": [s["step"] for s in steps_run],
        "logged_samples": [int(used[s["sample"]]) for s in steps_run],
        "op_instructions": None if report["op_instructions"] is None else [
            {**o, "train": round(o["train"] / train["steps"])}
            for o in report["op_instructions"]],
    })
