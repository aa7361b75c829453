"""A comparison's figures per (label budget, mode): mean and spread over seeds, and the gain over scratch paired by seed."""
from __future__ import annotations

import numpy as np

from .classifier import MODES


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


def spread_text(mean: float, std: float, n: int) -> str:
    """A figure over n seeds as a table prints it: "mean +/- std", or the mean alone for a single seed (whose spread
    is unknown, not zero)."""
    return f"{mean:.2f} +/- {std:.2f}" if n > 1 else f"{mean:.2f}"


def mean_spread(values) -> str:
    """Figures over seeds as a table prints them (spread_text; the std with ddof=1)."""
    values = np.asarray(values, dtype=float)
    return spread_text(values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0, len(values))


def ordered(summary: dict) -> tuple[list, list]:
    """The budgets of a summary by their number of labels, and its modes in the order of MODES."""
    budgets = sorted({b for b, _ in summary}, key=lambda b: min(v[0] for (bb, _), v in summary.items() if bb == b))
    modes = [m for m in MODES if any(mm == m for _, mm in summary)]
    return budgets, modes
