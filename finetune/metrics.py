"""Classification metrics (torchmetrics): accuracy, macro F1 and the confusion matrix."""
from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


def classification_metrics(num_classes: int, sync: bool = True) -> MetricCollection:
    """`sync`: under DDP, sum the counts of all ranks on compute (each rank saw its own share of the data)."""
    return MetricCollection({
        "accuracy": MulticlassAccuracy(num_classes, average="micro", sync_on_compute=sync),
        "f1_macro": MulticlassF1Score(num_classes, average="macro", sync_on_compute=sync),
        "confusion_matrix": MulticlassConfusionMatrix(num_classes, sync_on_compute=sync),
    })


def as_json(results: dict[str, torch.Tensor]) -> dict:
    """Scalars as floats, the confusion matrix as nested lists of ints (rows: true class, columns: predicted)."""
    return {k: (v.int().tolist() if v.ndim else float(v)) for k, v in results.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, batch_size: int = 4096) -> dict:
    """Metrics of `model` (logits out) on (x, y), in eval mode, as JSON-ready values plus `loss` (mean cross-entropy)."""
    was_training = model.training
    model.eval()
    metrics = classification_metrics(num_classes, sync=False)  # every rank evaluates all of x: nothing to add up
    loss = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        loss += float(torch.nn.functional.cross_entropy(logits, y[i : i + batch_size], reduction="sum"))
        metrics.update(logits, y[i : i + batch_size])
    model.train(was_training)
    return {**as_json(metrics.compute()), "loss": loss / len(x), "n": len(x)}
