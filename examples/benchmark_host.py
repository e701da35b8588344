"""Host (x86) benchmark of one training step and one inference step.

Prints per-operator and per-step wall time (std::chrono, median of repeated
runs) and instruction counts (valgrind/callgrind, deterministic) for the
digits reference model of examples/digits_adaptation.py under two schemes,
and writes them to docs/results.md:

  python examples/benchmark_host.py [--results docs/results.md]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digits_adaptation  # noqa: E402

import tflm_train  # noqa: E402
from tflm_train import _native  # noqa: E402
from tflm_train.runtime import DEFAULT_ARENA_BYTES, INFER_MODE, TRAIN_MODE  # noqa: E402

SCHEMES = {"sparse": digits_adaptation.SCHEMES["sparse"][0],
           "all layers": {"preset": "last-k:4"}}
REPEATS = 2000
CALLGRIND_STEPS = 50

# Runs N invocations of one mode inside callgrind without importing
# TensorFlow; only tflm_train.Interpreter::Invoke is counted.
CALLGRIND_DRIVER = """
import sys, numpy as np
from tflm_train import _native
from tflm_train.converter import read_training_info
data = open(sys.argv[1], "rb").read()
info = read_training_info(data)
it = _native.Interpreter(data, int(sys.argv[4]))
x = np.load(sys.argv[2])
label = np.array([int(sys.argv[5])], np.int32)
mode = np.array([int(sys.argv[3])], np.int32)
for _ in range(int(sys.argv[6])):
    it.set_tensor(info.input, x)
    it.set_tensor(info.label, label)
    it.set_tensor(info.mode, mode)
    it.invoke()
"""


def _setup(interp, info, x, label, mode):
    interp.set_tensor(info.input, x)
    interp.set_tensor(info.label, np.array([label], np.int32))
    interp.set_tensor(info.mode, np.array([mode], np.int32))


def time_per_op(model: bytes, x: np.ndarray, label: int, mode: int):
    info = tflm_train.converter.read_training_info(model)
    interp = _native.Interpreter(model, DEFAULT_ARENA_BYTES)
    _setup(interp, info, x, label, mode)
    interp.invoke()  # INIT copies the initialisers once
    # Inputs are planned tensors whose memory is reused after their last
    # reader (as in TFLM), so they are set again before every Invoke.
    total = np.zeros(interp.num_operators)
    for _ in range(REPEATS):
        _setup(interp, info, x, label, mode)
        total += interp.profile_invoke(1)
    per_op = total / REPEATS
    names = [op["name"] for op in interp.timeline()]
    return names, per_op


def callgrind_instructions(model_path: Path, x_path: Path, label: int, mode: int):
    """(instructions per Invoke, instructions per op type per Invoke)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--toggle-collect=tflm_train::Interpreter::Invoke()",
               sys.executable, "-c", CALLGRIND_DRIVER, str(model_path), str(x_path),
               str(mode), str(DEFAULT_ARENA_BYTES), str(label), str(CALLGRIND_STEPS)]
        subprocess.run(cmd, check=True, capture_output=True)
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                                  check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotate, re.M)
                .group(1).replace(",", ""))
    per_kernel = defaultdict(int)
    # Each op wrapper's Eval is one function:
    #   "<Ir> (<pct>)  ???:tflm_train::(anonymous namespace)::ConvEval(...) [...]"
    # (LayerGradEval is a helper inside the three layer-gradient Evals.)
    for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\S*tflm_train::.*?::(\w+Eval)\(",
                         annotate, re.M):
        if m.group(2) != "LayerGradEval":
            per_kernel[m.group(2)] += int(m.group(1).replace(",", ""))
    return total / CALLGRIND_STEPS, {k: v / CALLGRIND_STEPS for k, v in per_kernel.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)

    _, int8_model, target_train, _ = digits_adaptation.prepare(seed=0)
    lines = [f"Reference model: the digits CNN of `examples/digits_adaptation.py` "
             f"(8x8x1 input, 3 convs, global mean, FC; {len(int8_model)} bytes int8). "
             f"Wall time: mean over {REPEATS} invocations on this machine "
             f"(2-core x86-64 VM, `-O2`). Instructions: callgrind, "
             f"{CALLGRIND_STEPS} invocations, `Interpreter::Invoke` only "
             f"(`python examples/benchmark_host.py --results docs/results.md`).", ""]
    have_valgrind = shutil.which("valgrind") is not None
    for scheme_name, scheme in SCHEMES.items():
        model = tflm_train.convert(int8_model, scheme)
        trainer = tflm_train.Trainer(model)
        x = trainer.prepare_input(target_train.x[0])
        label = int(target_train.y[0])
        with tempfile.TemporaryDirectory() as tmp:
            model_path, x_path = Path(tmp) / "m.tflite", Path(tmp) / "x.npy"
            model_path.write_bytes(model)
            np.save(x_path, x)
            rows = {}
            for mode_name, mode in (("train", TRAIN_MODE), ("infer", INFER_MODE)):
                names, seconds = time_per_op(model, x, label, mode)
                instr = callgrind_instructions(model_path, x_path, label, mode) if have_valgrind else (None, {})
                rows[mode_name] = (names, seconds, instr)
        lines += [f"### Scheme: {scheme_name}", "",
                  "| step | wall time (µs) | instructions (callgrind) |", "|---|---|---|"]
        for mode_name, (names, seconds, (total, _)) in rows.items():
            lines.append(f"| {mode_name} | {seconds.sum() * 1e6:.1f} | "
                         f"{f'{total:,.0f}' if total is not None else 'valgrind missing'} |")
        names, seconds, (_, per_kernel) = rows["train"]
        by_op = defaultdict(float)
        for n, s in zip(names, seconds):
            by_op[n] += s
        lines += ["", "Per operator type, one training step:", "",
                  "| operator | ops | wall time (µs) |", "|---|---|---|"]
        for n in sorted(by_op, key=by_op.get, reverse=True):
            lines.append(f"| {n} | {names.count(n)} | {by_op[n] * 1e6:.2f} |")
        if per_kernel:
            lines += ["", "Instructions per kernel Eval function, one training step (callgrind, inclusive):", "",
                      "| Eval function | instructions |", "|---|---|"]
            for k in sorted(per_kernel, key=per_kernel.get, reverse=True):
                lines.append(f"| {k} | {per_kernel[k]:,.0f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.results is not None:
        digits_adaptation.write_section(args.results, "## Host runtime speed (x86-64)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
