"""The `tflm-train` command line: convert, plan, train, eval, export, firmware, scheme."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from tflm_train.errors import TflmTrainError

PROG = "tflm-train"


def _load_training_data(trainer, path):
    from tflm_train.data import load_for

    return load_for(trainer, path)


def _sample_shape(trainer):
    return trainer.input_shape[1:]


def _representative_data(path):
    if path is None:
        return None
    if not Path(path).is_file():
        raise TflmTrainError(f"{path}: no such representative data file")
    return np.load(path, allow_pickle=False)


def cmd_convert(args: argparse.Namespace) -> int:
    """`tflm-train convert`: model + scheme -> training .tflite (--out). Returns the exit status."""
    from tflm_train.converter import convert

    rep = _representative_data(args.representative_data)
    if not Path(args.model).exists():
        raise TflmTrainError(f"{args.model}: no such model file or directory")
    convert(args.model, args.scheme, representative_data=rep, out=args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """`tflm-train plan`: the memory plan of one training step (--json, --plot). Returns the exit status."""
    from tflm_train.plan import plan, plot_timeline

    report = plan(args.model)
    if args.plot:
        plot_timeline(report, args.plot)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    kib = lambda b: f"{b:>9,d} B ({b / 1024:7.1f} KiB)"  # noqa: E731
    print(f"peak arena (activations, gradients, scratch) {kib(report['peak_arena_bytes'])}")
    print(f"persistent (records, op data, variables)     {kib(report['persistent_bytes'])}")
    print(f"  of which trainable weights and biases      {kib(report['trainable_bytes'])}")
    print(f"  of which optimizer state                   {kib(report['optimizer_state_bytes'])}")
    labels = {"rng": "stochastic rounding", "output_range": "output range",
              "step_counter": "step counter", "momentum": "momentum velocities",
              "batch_accumulators": "mini-batch accumulators", "imprint": "imprinting sums"}
    for key, label in labels.items():
        size = report["state_breakdown"][key]
        if size:
            print(f"    {label:<41}{kib(size)}")
    print(f"peak RAM                                     {kib(report['peak_ram_bytes'])}")
    print(f"flash (model)                                {kib(report['flash_bytes'])}")
    savings = report["memory_savings"]
    if savings:
        saved = sum(s["was_bytes"] - s["now_bytes"] for s in savings)
        print(f"memory techniques applied ({len(savings)} places; tensor bytes was -> now, "
              f"{saved:,d} B in all, not all live at once):")
        for s in savings:
            print(f"  op {s['op']:>4} {s['name']:<34} {s['was_bytes']:>9,d} -> "
                  f"{s['now_bytes']:>9,d} B  {s['what']}: {s['tensor']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`tflm-train train`: trains on the host simulator; optional --out, --plot, --json. Returns the exit status."""
    from tflm_train.data import atomic_write
    from tflm_train.runtime import Trainer
    from tflm_train.training import train

    trainer = Trainer(args.model, lr=args.lr)
    data = _load_training_data(trainer, args.data)
    log = (lambda *_: None) if args.json else print
    result = train(trainer, data, epochs=args.epochs, steps=args.steps,
                   seed=args.seed, progress=not args.json and sys.stderr.isatty(),
                   log=log)
    if args.out:
        atomic_write(args.out, trainer.to_bytes())
        log(f"wrote {args.out}")
    if args.plot:
        _plot_losses(result["loss_history"], args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"weights_sha256 {result['weights_sha256']}")
    return 0


def _plot_losses(losses, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=0.5, alpha=0.4, label="per step")
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(len(smooth)) + window - 1, smooth, lw=1.5,
            label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_eval(args: argparse.Namespace) -> int:
    """`tflm-train eval`: loss and accuracy in infer mode over DATA.npz. Returns the exit status."""
    from tflm_train.runtime import Trainer
    from tflm_train.training import evaluate

    trainer = Trainer(args.model)
    result = evaluate(trainer, _load_training_data(trainer, args.data))
    if args.json:
        print(json.dumps(result))
    else:
        accuracy = f"accuracy {result['accuracy']:.4f}  " if "accuracy" in result else ""
        print(f"{accuracy}loss {result['loss']:.4f}  ({result['samples']} samples)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`tflm-train export`: training .tflite -> plain inference .tflite. Returns the exit status."""
    from tflm_train.converter import export_inference_model
    from tflm_train.data import atomic_write
    from tflm_train.runtime import _read_bytes

    atomic_write(args.out, export_inference_model(_read_bytes(args.model)))
    print(f"wrote {args.out}")
    return 0


def cmd_firmware(args: argparse.Namespace) -> int:
    """`tflm-train firmware`: trains on the Cortex-M4 firmware under QEMU and reports it. Returns the exit status."""
    from tflm_train.firmware import run_firmware

    result = run_firmware(args.model, args.data, steps=args.steps, seed=args.seed,
                          ram_kb=args.ram_kb, log_every=args.log_every,
                          state_file=args.state, first_step=args.first_step,
                          profile=args.profile, cmsis_nn=args.cmsis_nn)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    for step, loss in zip(result["logged_steps"], result["loss_history"]):
        print(f"step {step:5d}  loss {loss:.4f}")
    print(f"weights_sha256 {result['weights_sha256']}")
    if args.state:
        print(f"state {'loaded from' if result['state_loaded'] else 'new in'} {args.state}, "
              "saved after the steps")
    print(f"RAM   {result['ram_bytes']:>9,d} B of {result['ram_budget_bytes']:,d} "
          f"(static {result['static_ram_bytes']:,d} incl. arena {result['arena_bytes']:,d}; "
          f"peak stack {result['peak_stack_bytes']:,d}; heap {result['heap_used_bytes']:,d})")
    print(f"arena {result['arena_used_bytes']:>9,d} B (planned {result['peak_arena_bytes']:,d} "
          f"+ persistent {result['persistent_bytes']:,d})")
    print(f"flash {result['flash_bytes']:>9,d} B (model {result['model_bytes']:,d})")
    print(f"instructions per train step {result['instructions_per_train_step']:,d}, "
          f"per infer step {result['instructions_per_infer_step']:,d}")
    if result.op_instructions:
        print("instructions per operator type (train step, infer step; ops):")
        for name, ops, train, infer in profile_by_type(result.op_instructions):
            print(f"  {name:<42}{train:>14,d}{infer:>14,d}  {ops}")
    return 0


def profile_by_type(op_instructions: list) -> list[tuple[str, int, int, int]]:
    """(operator name, count, train, infer instructions) per operator type,
    most train-step instructions first."""
    by_type = {}
    for o in op_instructions:
        ops, train, infer = by_type.get(o["name"], (0, 0, 0))
        by_type[o["name"]] = (ops + 1, train + o["train"], infer + o["infer"])
    return sorted(((name, *v) for name, v in by_type.items()), key=lambda r: -r[2])


def cmd_scheme(args: argparse.Namespace) -> int:
    """`tflm-train scheme`: searches a sparse-update scheme under a RAM budget. Returns the exit status."""
    from tflm_train.scheme_search import search_scheme, write_scheme

    result = search_scheme(args.model, args.data, int(args.budget_kb * 1024),
                           method=args.method, seed=args.seed, lr=args.lr,
                           representative_data=_representative_data(args.representative_data))
    evidence = write_scheme(result, args.out) if args.out else None
    if args.json:
        print(json.dumps(result.evidence()))
        return 0
    print(result.summary())
    if evidence:
        print(f"wrote {args.out} and {evidence}")
    else:
        print(json.dumps(result.scheme, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog=PROG, description="On-device training for TensorFlow Lite Micro.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="int8 Keras model or .tflite + scheme -> training .tflite")
    c.add_argument("model", help=".tflite, .h5, .keras or SavedModel directory")
    c.add_argument("--scheme", required=True, help="sparse-update scheme (JSON or YAML)")
    c.add_argument("--out", required=True, help="training .tflite to write")
    c.add_argument("--representative-data", help=".npy of float inputs for post-training quantization of a float model")
    c.set_defaults(func=cmd_convert)

    c = sub.add_parser("plan", help="memory needed by one training step")
    c.add_argument("model")
    c.add_argument("--json", action="store_true")
    c.add_argument("--plot", help="write a per-op memory timeline PNG")
    c.set_defaults(func=cmd_plan)

    c = sub.add_parser("train", help="train on the host simulator")
    c.add_argument("model")
    c.add_argument("--data", required=True, help="DATA.npz with x and y")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int)
    c.add_argument("--lr", type=float, help="weight learning rate (overrides the model's)")
    c.add_argument("--seed", type=int, default=0, help="sample order seed")
    c.add_argument("--out", help="write the training model with the trained weights")
    c.add_argument("--plot", help="write the loss curve PNG")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_train)

    c = sub.add_parser("eval", help="accuracy and loss in infer mode")
    c.add_argument("model")
    c.add_argument("--data", required=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_eval)

    c = sub.add_parser("export", help="training .tflite -> plain inference .tflite")
    c.add_argument("model")
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_export)

    c = sub.add_parser("firmware", help="train on a Cortex-M4 under QEMU and report RAM, flash, instructions")
    c.add_argument("model")
    c.add_argument("--data", required=True, help="DATA.npz with x and y")
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--seed", type=int, default=0, help="sample order seed (as for train)")
    c.add_argument("--ram-kb", type=int, default=256, help="RAM budget of the image in KiB")
    c.add_argument("--log-every", type=int, default=1, help="print the loss every k steps")
    c.add_argument("--state", help="flash image file the firmware loads its trained state from "
                                   "(if valid) and saves it to after the steps")
    c.add_argument("--first-step", type=int, default=0,
                   help="steps already done (continuing from --state): the sample order resumes there")
    c.add_argument("--profile", action="store_true",
                   help="also count each operator's instructions (printed per operator type)")
    c.add_argument("--cmsis-nn", metavar="DIR",
                   help="a CMSIS-NN tree (github.com/ARM-software/CMSIS-NN): CONV_2D, "
                        "DEPTHWISE_CONV_2D, FULLY_CONNECTED and the pools call its s8 kernels "
                        "where they cover the case (same weights, bit for bit)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_firmware)

    c = sub.add_parser("scheme", help="search the sparse-update scheme with the best predicted gain under a RAM budget")
    c.add_argument("model", help="int8 .tflite (or a Keras model, as for convert)")
    c.add_argument("--data", required=True, help="DATA.npz with x and y (the search splits it into search-train and search-val)")
    c.add_argument("--budget-kb", type=float, required=True, help="peak RAM budget of one training step in KiB (the planner's peak_ram_bytes)")
    c.add_argument("--method", choices=("contribution", "fisher"), default="contribution",
                   help="contribution: train each candidate on the host simulator; fisher: Fisher information from one backward pass per sample")
    c.add_argument("--lr", type=float, help="learning rate of the search runs and of the scheme (default: the scheme default)")
    c.add_argument("--seed", type=int, default=0, help="data split, sample order and Fisher sample seed")
    c.add_argument("--out", help="write the scheme JSON here and the evidence to <name>.evidence.json")
    c.add_argument("--representative-data", help=".npy of float inputs for post-training quantization of a float model")
    c.add_argument("--json", action="store_true", help="print the scheme and the evidence as JSON")
    c.set_defaults(func=cmd_scheme)
    return p


def _print_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (errors: one line on stderr, non-zero)."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _print_warning
    for name in ("epochs", "steps", "ram_kb", "log_every", "budget_kb"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            print(f"{PROG}: error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (TflmTrainError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
