"""A comparison's outputs: results.csv (a row per run), report.md (the tables over seeds) and the plot."""
from __future__ import annotations

import csv
from pathlib import Path

from pretrain.files import new_file, new_text_file

from .classifier import MODES
from .plot import plot_accuracy
from .summary import ordered, spread_text, summarize

PARTIAL = "results.partial.csv"  # the rows of the runs done so far, while the grid runs; removed when it ends
OUTPUTS = ("results.csv", "report.md", "accuracy_vs_labels.png")
COLUMNS = ["budget", "labels", "val_labels", "seed", "mode", "test_accuracy", "test_f1_macro", "val_accuracy",
           "test_accuracy_last", "steps", "best_epoch", "epochs_run", "trainable_parameters", "parameters", "seconds",
           "validation"]


def result_row(budget, m: dict) -> dict:
    """One row of results.csv from a fine-tuning run's metrics (`finetune_once`, or a metrics.json)."""
    return {"budget": budget, "labels": m["labels"], "val_labels": m["val_labels"], "seed": m["seed"], "mode": m["mode"],
            "test_accuracy": m["test"]["accuracy"], "test_f1_macro": m["test"]["f1_macro"],
            "val_accuracy": m["val"]["accuracy"] if m.get("val") else "",
            "test_accuracy_last": m.get("test_last", m["test"])["accuracy"], "steps": m["steps"],
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
            "trainable_parameters": m["trainable_parameters"], "parameters": m["parameters"],
            "seconds": round(m["seconds"], 3), "validation": m["validation"]}


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(rows: list[dict], run_dir: Path, title: str, artifact: str, classes: list | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    new_file(run_dir / "results.csv", lambda tmp: write_csv(rows, tmp))
    new_text_file(run_dir / "report.md", report_markdown(rows, title, artifact, classes))
    new_file(run_dir / "accuracy_vs_labels.png", lambda tmp: plot_accuracy(summarize(rows), tmp, title))
    (run_dir / PARTIAL).unlink(missing_ok=True)


def protocol(rows: list[dict]) -> str:
    """What every run got, in words: optimizer steps per mode (per budget, where finetune.min_passes raised them) and
    the validation that chose its weights."""
    steps = {m: sorted({int(r["steps"]) for r in rows if r["mode"] == m}) for m in MODES if any(r["mode"] == m for r in rows)}
    budgets = list(dict.fromkeys(str(r["budget"]) for r in rows))
    by_budget = {b: {int(r["steps"]) for r in rows if str(r["budget"]) == b} for b in budgets}
    every = {int(r["steps"]) for r in rows}
    if len(every) == 1:
        step_text = f"every run of every mode took {every.pop()} optimizer steps"
    elif all(len(v) == 1 for v in by_budget.values()):
        step_text = ("every run of every mode of a cell took the same optimizer steps: "
                     + ", ".join(f"{next(iter(by_budget[b]))} at {b} labels" for b in budgets))
    else:
        step_text = "optimizer steps per mode: " + "; ".join(f"{m} {', '.join(map(str, v))}" for m, v in steps.items())
    validations = sorted({r["validation"] for r in rows})
    return f"Protocol: {step_text}; validation: {' / '.join(validations)}."


def accuracy_table(summary: dict, gains: bool = True) -> list[str]:
    budgets, modes = ordered(summary)
    lines = ["| labels | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for b in budgets:
        cells = [spread_text(100 * summary[(b, m)][1], 100 * summary[(b, m)][2], summary[(b, m)][3]) if (b, m) in summary
                 else "" for m in modes]
        labels = next(v[0] for (bb, _), v in summary.items() if bb == b)
        lines.append(f"| {b if b != 'all' else f'all ({labels})'} | " + " | ".join(cells) + " |")
    gain_modes = [m for m in modes if m != "scratch"]
    if gains and "scratch" in modes and gain_modes:
        lines += ["", "Gain over scratch (accuracy points, mean of the per-seed differences):", "",
                  "| labels | " + " | ".join(gain_modes) + " |", "|---|" + "---|" * len(gain_modes)]
        for b in budgets:
            cells = [f"{100 * summary[(b, m)][4]:+.2f}" if (b, m) in summary and summary[(b, m)][4] is not None else ""
                     for m in gain_modes]
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return lines


def report_markdown(rows: list[dict], title: str, artifact: str, classes: list | None = None) -> str:
    summary = summarize(rows)
    n_seeds = max(v[3] for v in summary.values())
    selected = any(r["validation"] and not str(r["validation"]).startswith("none") for r in rows)
    lines = [f"# Pretraining versus training from scratch: {title}", "",
             f"Pretrained encoder: `{artifact}`. {protocol(rows)}", "",
             *([f"Classes ({len(classes)}): {', '.join(map(str, classes))}.", ""] if classes else []),
             "Test accuracy (%), " + ("mean +/- std over seeds" if n_seeds > 1 else "one seed")
             + (", of the epoch the validation chose" if selected else ", of the last step") + "; the test set is only evaluated.", "",
             *accuracy_table(summary)]
    if selected:
        lines += ["", "The same runs at their last step (no model selection):", "",
                  *accuracy_table(summarize(rows, "test_accuracy_last"), gains=False)]
    lines += ["", f"{n_seeds} seed(s) per cell; every run's figures are in results.csv.", ""]
    return "\n".join(lines)
