"""Fine-tuning from Python, without Hydra's app: `finetune.fit(model, x, y, mode="frozen")` returns a classifier
with `predict` and `predict_proba`.

The defaults are the command's (conf/finetune/default.yaml, read when called). Labels may be any sortable values;
the classifier predicts them by name. With `x_val, y_val` the best epoch on them is kept (as with
`data.val_from=pool`); without, the last step's weights, as the command does by default.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretrain import Encoder, StrataError
from pretrain.api import as_inputs
from pretrain.data import fit_scaling
from pretrain.options import group_option
from pretrain.process import kept_random_state
from pretrain.stack import DeepAutoencoder

from .classifier import Classifier
from .labels import LabeledSubset
from .run import build_encoder, finetune_once, load_pretrained


class Arrays:
    """What `finetune_once` and `build_encoder` read of a data module, over arrays in memory."""

    def __init__(self, x, y, classes, x_eval, y_eval, unlabeled, shift, scale):
        self.x, self.y, self.classes, self.num_classes = x, y, list(classes), len(classes)
        self.x_eval, self.y_eval, self._unlabeled = x_eval, y_eval, unlabeled
        self.input_dim, self.shift, self.scale = x.shape[1], shift, scale

    def source_name(self) -> str:
        return f"arrays ({len(self.x)} x {self.input_dim})"

    def test(self):
        return self.x_eval, self.y_eval

    def unlabeled(self):
        return self._unlabeled


def label_indices(y, n: int, name: str = "y", classes=None) -> tuple[list, torch.Tensor]:
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1 or len(y) != n:
        raise StrataError(f"{name} has shape {y.shape}: expected one label per row of x ({n})")
    if classes is None:
        classes = np.unique(y)
        if len(classes) < 2:
            raise StrataError(f"{name} holds one class only ({classes[0].item()!r}; a classifier needs at least two)")
    unseen = np.setdiff1d(np.unique(y), classes)
    if len(unseen):
        raise StrataError(f"{name} holds labels that the training labels lack: {', '.join(repr(v.item()) for v in unseen[:5])}")
    return [c.item() for c in classes], torch.as_tensor(np.searchsorted(classes, y))


def fit(model, x, y, mode: str = "unfrozen", *, x_val=None, y_val=None, x_unlabeled=None, seed: int = 0,
        accelerator: str = "auto", threads="auto", progress: bool = False, log_dir: str | None = None, **options) -> Classifier:
    """Fine-tune `model` (a `pretrain.fit` result, a `pretrain.Encoder`, an artifact path, or None for
    mode="scratch" with `layers=[...]`) on the labeled rows (x, y) and return the classifier.

    `mode`: scratch, frozen, unfrozen, partial, semisup (which also learns from `x_unlabeled`, default x, and
    needs the whole autoencoder), ladder (a Ladder network on the encoder, also learning from `x_unlabeled`).
    `**options` override conf/finetune/default.yaml (steps=500, lr=1e-3, head="mlp", unlabeled={"consistency": 0.5},
    ladder={"noise": 0.2}, ...); `steps` is raised to `min_passes` passes over the labeled rows where they need more
    (min_passes=None: exactly `steps`). The result's `metrics` hold the run's (`val` with x_val, `steps` taken).
    """
    defaults = group_option("finetune", "default")
    layers = options.pop("layers", None)
    unknown = [k for k in options if k not in defaults]
    if unknown:
        raise StrataError(f"{unknown[0]} is not a fine-tuning option (its options: {', '.join(sorted(defaults))}, layers)")
    settings = {**defaults, **options, "mode": mode,
                **{group: {**defaults[group], **(options.get(group) or {})} for group in ("unlabeled", "ladder")}}
    inputs, _ = as_inputs(x)
    classes, labels = label_indices(y, len(inputs))
    val = None
    if (x_val is None) != (y_val is None):
        raise StrataError("x_val and y_val come together: give both or neither")
    if x_val is not None:
        x_v, _ = as_inputs(x_val, "x_val")
        val = (x_v, label_indices(y_val, len(x_v), "y_val", np.asarray(classes, dtype=np.asarray(y).dtype))[1])
    unlabeled = inputs if x_unlabeled is None else as_inputs(x_unlabeled, "x_unlabeled")[0]
    if isinstance(model, (str, Path)):
        model = load_pretrained(str(model), mode)
    if model is not None and not isinstance(model, (Encoder, DeepAutoencoder)):
        raise StrataError(f"model is a {type(model).__name__}: expected a pretrain.fit result, a pretrain.Encoder, "
                          "an artifact folder, or None (mode='scratch' with layers=[...])")
    if isinstance(model, DeepAutoencoder) and mode != "semisup":
        model = model.encoder()
    shift, scale = fit_scaling(inputs, "standard") if model is None else (None, None)
    data = Arrays(inputs, labels, classes, *(val or (inputs, labels)), unlabeled, shift, scale)
    if model is None and (mode != "scratch" or not layers):
        raise StrataError("model=None: only mode='scratch' trains without a pretrained model, and it needs layers=[...]")
    encoder = build_encoder(mode, data, model, list(layers or []), ["relu"] * len(layers or []), seed, depth=settings["depth"],
                            source="model")
    subset = LabeledSubset((inputs, labels), val, "x_val, y_val" if val is not None else "none (the last step)")
    with kept_random_state():
        classifier, metrics = finetune_once(data, encoder, settings, {"accelerator": accelerator, "enable_progress_bar": bool(progress)},
                                            seed=seed, log_dir=log_dir, threads=threads, subset=subset)
    if val is None:
        metrics["train"] = metrics.pop("test")  # without x_val, the only set to score is the training set itself
    else:
        metrics.pop("test_last", None)
        metrics.pop("test", None)
    classifier.trainer = None  # the Trainer is done with; the classifier pickles without it
    classifier.metrics = metrics
    return classifier.eval()
