"""The comparison: pretrain once (or reuse an artifact), then for every label budget x seed x mode fine-tune and
test; write results.csv (one row per run), report.md (mean +/- std over seeds, gain over scratch) and
accuracy_vs_labels.png into the run directory. While the grid runs, results.partial.csv holds the runs done so far."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from pretrain import StrataError
from pretrain.config import build_data, check_seed, to_dict
from pretrain.distributed import is_global_zero
from pretrain.files import new_file, new_text_file, replace_file
from pretrain.stack import DeepAutoencoder

from .classifier import MODES
from .labels import labeled_subset
from .run import build_encoder, check_options, finetune_once, load_pretrained

PARTIAL = "results.partial.csv"  # the rows of the runs done so far, while the grid runs; removed when it ends
COLUMNS = ["budget", "labels", "val_labels", "seed", "mode", "test_accuracy", "test_f1_macro", "val_accuracy",
           "test_accuracy_last", "steps", "best_epoch", "epochs_run", "trainable_parameters", "parameters", "seconds",
           "validation"]


def parse_budgets(values) -> list:
    budgets = []
    for v in values:
        if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            budgets.append(v)
        else:
            raise StrataError(f"budgets: {v!r} is not a positive integer or 'all'")
    if not budgets:
        raise StrataError("budgets is empty (expected e.g. [100, 1000, all])")
    return budgets


def check_modes(modes) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise StrataError(f"modes: {unknown[0]!r} is not one of {', '.join(MODES)}")
    if not modes:
        raise StrataError(f"modes is empty (expected some of {', '.join(MODES)})")


def plan_modes(modes, depth: int) -> list[str]:
    check_modes(modes)
    return [m for m in modes if not (m == "partial" and depth < 2)]  # partial needs a layer left to train


def run_comparison(cfg: DictConfig, run_dir: Path, pretrain_fn=None) -> list[dict]:
    """Run the whole grid; `pretrain_fn(cfg, run_dir) -> artifact path` pretrains when `pretrained` is not set."""
    resolved = to_dict(cfg)
    budgets, seeds = parse_budgets(resolved["budgets"]), list(resolved["seeds"])
    outputs = [run_dir / name for name in ("results.csv", "report.md", "accuracy_vs_labels.png", PARTIAL)]
    existing = [str(p) for p in outputs if p.exists()]
    if existing:
        raise StrataError(f"{existing[0]} already exists: an earlier result is never overwritten")
    if not seeds:
        raise StrataError("seeds is empty (expected e.g. [0, 1, 2])")
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    options = resolved["finetune"]
    check_options(options)
    check_modes(resolved["modes"])
    data = build_data(cfg)
    def subset(budget, seed):
        return labeled_subset(data, budget, seed, data.val_from, data.val_fraction)

    for budget in budgets:  # an impossible budget fails now, not after pretraining
        subset(budget, seeds[0])
    artifact = resolved["pretrained"] or pretrain_fn(cfg, run_dir)
    pretrained = load_pretrained(artifact, "semisup" if "semisup" in resolved["modes"] else "unfrozen")
    encoder_view = pretrained.encoder() if isinstance(pretrained, DeepAutoencoder) else pretrained
    depth = options["depth"] or len(pretrained.layers)
    modes = plan_modes(resolved["modes"], depth)

    rows = []
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = [(b, s, m) for b in budgets for s in seeds for m in modes]
    bar = tqdm(grid, desc="compare", unit="run", disable=not resolved["progress"])
    for budget, seed, mode in bar:
        bar.set_description(f"labels={budget} seed={seed} {mode}")
        encoder = build_encoder(mode, data, pretrained, [], [], seed, depth=options["depth"], source=f"pretrained={artifact}")
        _, m = finetune_once(data, encoder, {**options, "mode": mode}, {**resolved["trainer"], "enable_progress_bar": False},
                             seed=seed, threads=resolved["threads"], subset=subset(budget, seed))
        rows.append(result_row(budget, m))
        if is_global_zero():  # the runs so far, in case the grid is cut short; results.csv is only the whole grid
            replace_file(run_dir / PARTIAL, lambda tmp: write_csv(rows, tmp))
    if is_global_zero():  # under DDP every rank ran the same grid; rank 0 writes
        write_outputs(rows, run_dir, title=f"{data.source_name()}, encoder {encoder_view.input_dim}-{'-'.join(map(str, encoder_view.sizes[:depth]))}",
                      artifact=str(artifact), classes=data.classes)
    return rows


def result_row(budget, m: dict) -> dict:
    """One row of results.csv from a fine-tuning run's metrics (`finetune_once`, or a metrics.json)."""
    return {"budget": budget, "labels": m["labels"], "val_labels": m["val_labels"], "seed": m["seed"], "mode": m["mode"],
            "test_accuracy": m["test"]["accuracy"], "test_f1_macro": m["test"]["f1_macro"],
            "val_accuracy": m["val"]["accuracy"] if m.get("val") else "",
            "test_accuracy_last": m.get("test_last", m["test"])["accuracy"], "steps": m["steps"],
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
            "trainable_parameters": m["trainable_parameters"], "parameters": m["parameters"],
            "seconds": round(m["seconds"], 3), "validation": m["validation"]}


def gather_comparison(sweep_dir: str | Path, run_dir: Path) -> list[dict]:
    """The comparison of runs made elsewhere: every `python -m finetune` job under `sweep_dir` (a multirun folder,
    local or SLURM) that wrote its metrics.json becomes a row; results.csv, report.md and the plot go to `run_dir`.

    The jobs must fine-tune on one data set from one artifact (scratch jobs may have none), one per
    (label budget, seed, mode). Jobs without metrics.json (failed, or still running) are named on stderr.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise StrataError(f"gather={sweep_dir}: no such folder (expected the multirun folder of `python -m finetune -m ...`)")
    existing = [str(run_dir / n) for n in ("results.csv", "report.md", "accuracy_vs_labels.png") if (run_dir / n).exists()]
    if existing:
        raise StrataError(f"{existing[0]} already exists: an earlier result is never overwritten")
    jobs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml")} | {p.parent for p in sweep_dir.rglob("metrics.json")})
    rows, where, data_sets, artifacts, unfinished, classes = [], {}, set(), set(), [], None
    for job in jobs:
        path = job / "metrics.json"
        if not path.is_file():
            unfinished.append(str(job))
            continue
        try:
            m = json.loads(path.read_text())
            row = result_row(m.get("budget", m.get("labels")), m)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StrataError(f"{path}: not valid JSON ({err})") from None
        except (KeyError, TypeError, AttributeError) as err:
            raise StrataError(f"{path}: not the metrics of a `python -m finetune` run (no field {err})") from None
        key = (row["budget"], row["seed"], row["mode"])
        if key in where:
            raise StrataError(f"{where[key]} and {job} are both labels={key[0]}, seed={key[1]}, mode={key[2]}: gather one run of each")
        where[key] = job
        data_sets.add(m.get("data"))
        classes = m.get("classes", classes)
        if m.get("pretrained"):
            artifacts.add(str(m["pretrained"]))
        rows.append(row)
    if not rows:
        raise StrataError(f"gather={sweep_dir}: no job there has a metrics.json of `python -m finetune`")
    for what, found in (("data sets", data_sets), ("artifacts", artifacts)):
        if len(found) > 1:
            raise StrataError(f"gather={sweep_dir}: the jobs use different {what} ({', '.join(sorted(map(str, found)))}); "
                              "gather the jobs of one comparison")
    if unfinished:
        print(f"{len(unfinished)} of {len(jobs)} jobs have no metrics.json (failed or still running): {', '.join(unfinished)}",
              file=sys.stderr)
    write_outputs(rows, run_dir, title=f"{data_sets.pop()}, {len(rows)} runs gathered from {sweep_dir}",
                  artifact=artifacts.pop() if artifacts else "none (scratch only)", classes=classes)
    return rows


def summarize(rows: list[dict], column: str = "test_accuracy") -> dict:
    """{(budget, mode): (labels, mean accuracy, std accuracy, n, mean gain over scratch or None)} of `column`: gains
    are paired by seed."""
    by_key: dict = {}
    for r in rows:
        by_key.setdefault((r["budget"], r["mode"]), {})[r["seed"]] = r
    out = {}
    for (budget, mode), runs in by_key.items():
        acc = np.array([float(r[column]) for r in runs.values()])
        scratch = by_key.get((budget, "scratch"), {})
        paired = [float(runs[s][column]) - float(scratch[s][column]) for s in runs if s in scratch]
        gain = float(np.mean(paired)) if paired and mode != "scratch" else None
        labels = int(np.mean([r["labels"] for r in runs.values()]))
        out[(budget, mode)] = (labels, float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc), gain)
    return out


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


def _ordered(summary: dict) -> tuple[list, list]:
    budgets = sorted({b for b, _ in summary}, key=lambda b: min(v[0] for (bb, _), v in summary.items() if bb == b))
    modes = [m for m in MODES if any(mm == m for _, mm in summary)]
    return budgets, modes


def protocol(rows: list[dict]) -> str:
    """What every run got, in words: optimizer steps per mode and the validation that chose its weights."""
    steps = {m: sorted({int(r["steps"]) for r in rows if r["mode"] == m}) for m in MODES if any(r["mode"] == m for r in rows)}
    if len({tuple(v) for v in steps.values()}) == 1:
        step_text = f"every run of every mode took {', '.join(map(str, next(iter(steps.values()))))} optimizer steps"
    else:
        step_text = "optimizer steps per mode: " + "; ".join(f"{m} {', '.join(map(str, v))}" for m, v in steps.items())
    validations = sorted({r["validation"] for r in rows})
    return f"Protocol: {step_text}; validation: {' / '.join(validations)}."


def accuracy_table(summary: dict, gains: bool = True) -> list[str]:
    budgets, modes = _ordered(summary)
    lines = ["| labels | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for b in budgets:
        cells = [f"{100 * summary[(b, m)][1]:.2f} +/- {100 * summary[(b, m)][2]:.2f}" if (b, m) in summary else "" for m in modes]
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
    selected = any(r["validation"] and not str(r["validation"]).startswith("none") for r in rows)
    lines = [f"# Pretraining versus training from scratch: {title}", "",
             f"Pretrained encoder: `{artifact}`. {protocol(rows)}", "",
             *([f"Classes ({len(classes)}): {', '.join(map(str, classes))}.", ""] if classes else []),
             "Test accuracy (%), mean +/- std over seeds"
             + (", of the epoch the validation chose" if selected else ", of the last step") + "; the test set is only evaluated.", "",
             *accuracy_table(summary)]
    if selected:
        lines += ["", "The same runs at their last step (no model selection):", "",
                  *accuracy_table(summarize(rows, "test_accuracy_last"), gains=False)]
    n_seeds = max(v[3] for v in summary.values())
    lines += ["", f"{n_seeds} seed(s) per cell; every run's figures are in results.csv.", ""]
    return "\n".join(lines)


def plot_accuracy(summary: dict, path: Path, title: str) -> None:
    """Drawn on matplotlib's Agg canvas directly: no pyplot state, no backend switch in the user's process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budgets, modes = _ordered(summary)
    fig = Figure(figsize=(6.4, 4.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for m in modes:
        pts = [summary[(b, m)] for b in budgets if (b, m) in summary]
        ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                    marker="o", capsize=3, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("labeled training examples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
