"""Automatic scheme search on the digits domain-adaptation task.

Per seed, the model of examples/digits_adaptation.py is pretrained and
quantized, then `tflm_train.search_scheme` chooses a scheme for each RAM
budget from the target training split, with both methods (contribution
analysis and Fisher information). Every scheme — the searched ones, bias-only,
classifier-only and the largest last-k that fits — is then fine-tuned with
digits_adaptation's protocol (learning rate from its grid on a validation
split, the same epochs) and evaluated on the held-out target test data.

  python examples/scheme_search_digits.py --budgets-kb 9 10 12 --seeds 0 1 2 --results docs/results.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import digits_adaptation as da  # noqa: E402
import tflm_train  # noqa: E402

METHODS = ("contribution", "fisher")
SEARCH_LR = da.LR


def last_k_fitting(int8_model: bytes, num_layers: int, budget_bytes: int) -> dict:
    """The last-k preset with the largest k whose peak RAM fits."""
    best = {"preset": "classifier"}
    for k in range(1, num_layers + 1):
        scheme = {"preset": f"last-k:{k}"}
        if tflm_train.plan(tflm_train.convert(int8_model, scheme))["peak_ram_bytes"] > budget_bytes:
            break
        best = scheme
    return best


def describe(scheme: dict, layers: list[str]) -> str:
    """A short name of a search result: its biases and weight updates."""
    if "preset" in scheme:
        return scheme["preset"]
    parts = [f"biases of last {scheme['bias_update_layers']}"] if scheme["bias_update_layers"] > 1 else []
    for key, amount in sorted(scheme["weight_update"].items(), key=lambda item: int(item[0])):
        parts.append(f"{layers[int(key)]} {amount if amount == 'all' else f'{amount} ch'}")
    return ", ".join(parts + ["classifier"])


def fine_tune(int8_model, scheme, target_train, target_test, seed) -> dict:
    """digits_adaptation's protocol: lr from the grid on a validation split."""
    fit, val = da.split_validation(target_train, seed)
    lr = da.best_lr(lambda lr: da.run_scheme(int8_model, scheme, fit, val, da.EPOCHS, seed, lr)["after"])
    return da.run_scheme(int8_model, scheme, fit, target_test, da.EPOCHS, seed, lr)


def run(seeds: list[int], budgets_kb: list[float]) -> tuple[dict, dict]:
    """rows[budget][name] -> per-seed results; peak RAM of classifier-only
    and of updating every layer."""
    rows, extremes = {b: {} for b in budgets_kb}, {}
    for seed in seeds:
        print(f"== seed {seed}")
        _, int8_model, target_train, target_test = da.prepare(seed)
        tuned = {}  # scheme -> fine-tuning result, shared by the budgets
        for budget_kb in budgets_kb:
            budget = int(budget_kb * 1024)
            schemes, layers = {}, []
            for method in METHODS:
                result = tflm_train.search_scheme(int8_model, target_train, budget, method=method,
                                                  seed=seed, lr=SEARCH_LR)
                schemes[f"searched ({method})"] = (
                    {k: result.scheme[k] for k in ("bias_update_layers", "weight_update")},
                    {"search_seconds": result.seconds, "gain_seconds": result.analysis.gain_seconds,
                     "samples": result.analysis.samples})
                layers = result.analysis.layers
            schemes["bias-only"] = ({"preset": "bias-only"}, {})
            schemes["classifier"] = ({"preset": "classifier"}, {})
            schemes["largest last-k"] = (last_k_fitting(int8_model, len(layers), budget), {})
            for name, (scheme, extra) in schemes.items():
                peak = tflm_train.plan(tflm_train.convert(int8_model, scheme))["peak_ram_bytes"]
                entry = {"peak_ram_bytes": peak, "note": describe(scheme, layers), **extra}
                key = json.dumps(scheme, sort_keys=True)
                if peak <= budget and key not in tuned:
                    tuned[key] = fine_tune(int8_model, scheme, target_train, target_test, seed)
                entry.update(tuned.get(key, {}) if peak <= budget else {})
                rows[budget_kb].setdefault(name, []).append(entry)
                after = f"{entry['after']:.3f}" if "after" in entry else "does not fit"
                print(f"  {budget_kb} KB {name}: {entry['note']}, peak RAM {peak} B, "
                      f"accuracy {after}")
        for scheme in ({"preset": "classifier"}, {"preset": f"last-k:{len(layers)}"}):
            extremes[scheme["preset"]] = tflm_train.plan(
                tflm_train.convert(int8_model, scheme))["peak_ram_bytes"]
    return rows, extremes


def results_table(rows: dict, extremes: dict, seeds: list[int]) -> str:
    seeds_text = " ".join(map(str, seeds))
    budgets_text = " ".join(f"{b:g}" for b in rows)
    lines = [
        "`tflm-train scheme` / `tflm_train.search_scheme` on the task of \"Domain adaptation "
        "on digits\": for each seed the search sees only the target training split (it splits "
        f"off 30 % as search-val itself), learning rate {SEARCH_LR} for its runs. Every "
        "scheme is then fine-tuned with the digits protocol (learning rate from the grid "
        f"on a validation split, {da.EPOCHS} epochs) and evaluated on held-out target test "
        f"data; mean ± std over seeds {', '.join(map(str, seeds))} "
        f"(`python examples/scheme_search_digits.py --budgets-kb {budgets_text} "
        f"--seeds {seeds_text} --results docs/results.md`). Peak RAM is the planner's "
        "`peak_ram_bytes`; for this model " + " and ".join(
            f"{name} needs {peak:,d} B" for name, peak in extremes.items())
        + ". Bias-only is the preset (every bias, classifier weights frozen); largest "
        "last-k is the last-k preset with the largest k that fits. Search time is the "
        "whole search (candidate "
        "conversions and plans, the training runs or Fisher passes, the combination and "
        "its planner check); in brackets the part spent measuring gains (training runs or "
        "Fisher passes). Mean over seeds, on this machine (2 cores).",
        "",
    ]
    for budget_kb, by_name in rows.items():
        lines += [f"Budget {budget_kb:g} KB ({int(budget_kb * 1024):,d} B):", "",
                  "| scheme | chosen (per seed if they differ) | peak RAM per seed (B) | accuracy after "
                  "| search time (s) (of which gains) | search data |",
                  "|---|---|---|---|---|---|"]
        for name, results in by_name.items():
            fitted = [r for r in results if "after" in r]
            accuracy = (f"{np.mean([r['after'] for r in fitted]):.3f} ± "
                        f"{np.std([r['after'] for r in fitted]):.3f}"
                        if len(fitted) == len(results) else "does not fit")
            notes = list(dict.fromkeys(r["note"] for r in results))
            chosen = notes[0] if len(notes) == 1 else " / ".join(r["note"] for r in results)
            peaks = ", ".join(str(r["peak_ram_bytes"]) for r in results)
            seconds = (f"{np.mean([r['search_seconds'] for r in results]):.1f} "
                       f"({np.mean([r['gain_seconds'] for r in results]):.2f})"
                       if "search_seconds" in results[0] else "")
            data = search_data(results[0].get("samples"))
            lines.append(f"| {name} | {chosen} | {peaks} | {accuracy} | {seconds} | {data} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def search_data(samples: dict | None) -> str:
    if samples is None:
        return ""
    if "fisher_samples" in samples:
        return f"{samples['fisher_samples']} samples, 1 forward+backward each"
    return (f"{samples['training_runs']} runs × {samples['epochs']} epochs × "
            f"{samples['search_train']} samples, {samples['search_val']} val")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets-kb", type=float, nargs="+", default=[9.0, 10.0, 12.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--results", type=Path, help="write the table into this markdown file")
    args = p.parse_args(argv)
    rows, extremes = run(args.seeds, args.budgets_kb)
    table = results_table(rows, extremes, args.seeds)
    print(table)
    if args.results is not None:
        da.write_section(args.results, "## Automatic scheme search", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
