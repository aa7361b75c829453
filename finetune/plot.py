"""accuracy_vs_labels.png: test accuracy against the number of labels, a line per mode."""
from __future__ import annotations

from pathlib import Path

from .summary import ordered


def plot_accuracy(summary: dict, path: Path, title: str) -> None:
    """Drawn on matplotlib's Agg canvas directly: no pyplot state, no backend switch in the user's process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budgets, modes = ordered(summary)
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
