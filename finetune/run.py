"""One fine-tuning run: build the classifier for a mode, train it on the labeled subset for a fixed number of optimizer
steps (model selection on a validation split where the config asks for one), then evaluate on the test set (only
evaluated, never used to choose)."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from pretrain import ArrayDataModule, BatchLoader, Encoder, StrataError, load_autoencoder, load_encoder
from pretrain.config import build_data, check_trainer, layer_options, to_dict
from pretrain.distributed import is_global_zero
from pretrain.files import new_text_file
from pretrain.loggers import CSV, StageLoggers
from pretrain.layers import LAYER_KINDS, stack_layer_options
from pretrain.schema import StackConfig, checked
from pretrain.stack import DeepAutoencoder
from pretrain.training import make_trainer, threads_for

from .batches import PairedBatches, StepBatches
from .classifier import ENCODER, HEAD, MODES, Classifier, head_for, save_classifier
from .labels import LabeledSubset, labeled_subset
from .ladder import LadderClassifier
from .metrics import evaluate
from .schema import FinetuneConfig, FinetuneRunConfig, check_options
from .semisupervised import WEIGHTS, SemiSupervisedClassifier


class KeepBest(pl.Callback):
    """Model selection on the validation split: remembers the weights of the best epoch (highest accuracy, then
    lowest loss) and, with a `patience`, stops after that many epochs without improvement (None: never stops)."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_key, self.best_epoch, self.best_state = None, -1, None

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        key = (float(trainer.callback_metrics["val_acc"]), -float(trainer.callback_metrics["val_loss"]))
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch = key, trainer.current_epoch
            self.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif self.patience is not None and trainer.current_epoch - self.best_epoch >= self.patience:
            trainer.should_stop = True


def build_encoder(mode: str, data: ArrayDataModule, pretrained: Encoder | DeepAutoencoder | None, sizes: list[int],
                  activations: list[str], seed: int, depth: int | None = None, source: str = "pretrained") -> Encoder | DeepAutoencoder:
    """The model a run starts from: a private copy of the pretrained encoder, or (scratch) the same architecture and
    preprocessing from random initialisation. `depth` keeps the lowest layers only. Mode semisup starts from a copy
    of the whole pretrained autoencoder (`pretrained` must be one: its decoder keeps training)."""
    if mode not in MODES:
        raise StrataError(f"finetune.mode={mode!r} is not one of {', '.join(MODES)}")
    if mode == "semisup" and not isinstance(pretrained, DeepAutoencoder):
        raise StrataError(f"finetune.mode=semisup needs a pretrained autoencoder with its decoder: set pretrained=<artifact folder> "
                          f"of `python -m pretrain` ({source} is {'not set' if pretrained is None else 'an encoder only'})")
    if pretrained is not None:
        input_dim = pretrained.preprocess.shift.shape[0]
        if input_dim != data.input_dim:
            raise StrataError(f"{source} expects {input_dim} input features per example, but {data.source_name()} has "
                              f"{data.input_dim}: pretrain on this data set (or pass a matching artifact)")
        if isinstance(pretrained, DeepAutoencoder):
            if mode != "semisup":
                pretrained = pretrained.encoder()
            elif depth is not None and depth != len(pretrained.layers):
                raise StrataError(f"finetune.mode=semisup trains the whole autoencoder: finetune.depth={depth} must be null "
                                  f"or its {len(pretrained.layers)} layers")
            else:
                return copy.deepcopy(pretrained)
        sizes, activations = pretrained.sizes, pretrained.activations
    elif mode != "scratch":
        raise StrataError(f"finetune.mode={mode} needs a pretrained encoder: set pretrained=<artifact folder> (or use mode=scratch)")
    if mode == "scratch":
        shift, scale = (pretrained.preprocess.shift, pretrained.preprocess.scale) if pretrained is not None else (data.shift, data.scale)
        encoder = Encoder.random(shift, scale, list(sizes), list(activations), seed)
    else:
        encoder = copy.deepcopy(pretrained)
    if depth is not None:
        if not 1 <= depth <= len(encoder.layers):
            raise StrataError(f"finetune.depth={depth} is not between 1 and the encoder's {len(encoder.layers)} layers")
        encoder = encoder.truncated(depth)
    return encoder


def load_pretrained(path: str, mode: str) -> Encoder | DeepAutoencoder:
    """The artifact as the mode needs it: the whole autoencoder for semisup, else the encoder."""
    return load_autoencoder(path) if mode == "semisup" else load_encoder(path)


def finetune_once(data: ArrayDataModule, encoder: Encoder | DeepAutoencoder, options: dict, trainer_options: dict | None = None,
                  seed: int = 0, log_dir: str | None = None, label: str = "finetune", threads: int | str | None = "auto",
                  subset: LabeledSubset | None = None) -> tuple[Classifier, dict]:
    """Train a Classifier on `subset` (default: the data config's budget and validation, drawn by `seed`; see
    finetune.labels.labeled_subset) for `options["steps"]` optimizer steps (raised to
    `options["min_passes"]` passes over the labels, see FinetuneConfig.steps_for) and return it with its metrics
    (JSON-ready): the test set's, and the validation split's where there is one.

    `options` holds the `finetune` config group: mode, head, optimiser and schedule. `encoder` comes from
    `build_encoder` (for mode semisup, the whole autoencoder). With a validation split, the result is the best
    epoch's weights, and `test_last` is the last step's; without one, the result is the last step's. Mode ladder's
    result is its evaluation pass as a plain Classifier (LadderClassifier.folded).
    """
    settings: FinetuneConfig = check_options(options)
    if subset is None:
        subset = labeled_subset(data, data.labels, seed, data.val_from, data.val_fraction)
    pl.seed_everything(seed, workers=True, verbose=False)
    (x_train, y_train), val, _ = subset
    steps_per_epoch = settings.steps_for(len(x_train)) // settings.epochs
    common = dict(head=head_for(settings.mode, settings.head), head_hidden=settings.head_hidden, dropout=settings.dropout,
                  input_dropout=settings.input_dropout, optimizer=settings.optimizer, lr=settings.lr,
                  encoder_lr_scale=settings.encoder_lr_scale, weight_decay=settings.weight_decay, schedule=settings.schedule,
                  classes=data.classes)
    if settings.mode == "ladder":
        model = LadderClassifier(encoder, data.num_classes, noise=settings.ladder.noise, weights=list(settings.ladder.weights), **common)
        train_loader = PairedBatches(x_train, y_train, data.unlabeled(), settings.batch_size, settings.unlabeled.batch_size,
                                     steps_per_epoch, seed)
    elif settings.mode == "semisup":
        unlabeled = settings.unlabeled
        prior = torch.bincount(y_train, minlength=data.num_classes)
        model = SemiSupervisedClassifier(encoder, data.num_classes, prior, corruption=unlabeled.corruption, noise=unlabeled.noise,
                                         radius=unlabeled.radius, xi=unlabeled.xi, rampup=unlabeled.rampup,
                                         **{w: getattr(unlabeled, w) for w in WEIGHTS}, **common)
        train_loader = PairedBatches(x_train, y_train, data.unlabeled(), settings.batch_size, unlabeled.batch_size,
                                     steps_per_epoch, seed)
    else:
        model = Classifier(encoder, data.num_classes, mode=settings.mode, frozen_layers=settings.frozen_layers, **common)
        train_loader = StepBatches(x_train, y_train, batch_size=settings.batch_size, steps=steps_per_epoch, seed=seed)
    model.train()  # frozen blocks stay in eval mode (Classifier.train)
    with threads_for(model, threads):  # the library leaves torch's thread count as it found it
        keep_best = KeepBest(settings.patience)
        trainer = make_trainer(trainer_options, settings.epochs, label, log_dir, "finetune",
                               callbacks=[keep_best] if val is not None else [], num_sanity_val_steps=0)
        started = time.perf_counter()
        trainer.fit(model, train_dataloaders=train_loader,
                    val_dataloaders=BatchLoader(*val, batch_size=4096, shuffle=False) if val is not None else None)
        seconds = time.perf_counter() - started
        model.eval()
        x_test, y_test = data.test()
        metrics = {
            "mode": settings.mode, "labels": len(x_train), "val_labels": 0 if val is None else len(val[0]),
            "validation": subset.validation, "classes": data.classes, "seed": seed, "steps": trainer.global_step, "epochs_run": trainer.current_epoch,
            "best_epoch": trainer.current_epoch if val is None else keep_best.best_epoch + 1, "seconds": seconds,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        if val is not None:  # the last step's weights first, then the selected epoch's
            metrics["test_last"] = evaluate(model, x_test, y_test, data.num_classes)
            model.load_state_dict(keep_best.best_state)
            metrics["val"] = evaluate(model, *val, data.num_classes)
        if isinstance(model, LadderClassifier):  # its evaluation pass, written into plain Linear layers
            model = model.folded()
        metrics["test"] = evaluate(model, x_test, y_test, data.num_classes)
    return model, metrics


def scratch_activations(resolved: dict, n_layers: int) -> list[str]:
    """Each layer's activation in the stack that pretraining with this config builds, for scratch without an
    artifact to copy (a generative top layer's code is linear; the layers under it follow autoencoder.below)."""
    options = stack_layer_options(layer_options(resolved["autoencoder"], resolved["model"]), n_layers)
    return [o.get("activation") or getattr(LAYER_KINDS[o.get("kind", "deterministic")], "activation", "sigmoid") for o in options]


def run_finetuning(cfg: DictConfig, run_dir: Path) -> dict:
    """Fine-tune as `cfg` says (`python -m finetune` passes Hydra's config and run directory); writes metrics.json
    and, with `save_encoder: true`, the classifier into `run_dir`; returns the metrics."""
    resolved = to_dict(cfg)
    options = resolved["finetune"]
    for name in ("metrics.json", ENCODER, HEAD):
        if (run_dir / name).exists():
            raise StrataError(f"{run_dir / name} already exists: an earlier result is never overwritten")
    settings = check_options(options)
    run = checked(resolved, FinetuneRunConfig, "", ignore_unknown=True)
    seed = run.seed
    trainer, device = check_trainer(resolved["trainer"])
    trainer = {**trainer, "logger": StageLoggers(resolved.get("logger", CSV))}
    pretrained = load_pretrained(run.pretrained, settings.mode) if run.pretrained else None
    data = build_data(cfg)
    sizes = checked(resolved["model"], StackConfig, "model").layers
    encoder = build_encoder(settings.mode, data, pretrained, sizes, scratch_activations(resolved, len(sizes)),
                            seed=seed, depth=settings.depth, source=f"pretrained={run.pretrained}")
    subset = labeled_subset(data, data.labels, seed, data.val_from, data.val_fraction)
    print(f"data: {data.summary()}")
    model, metrics = finetune_once(data, encoder, options, trainer, seed=seed, log_dir=str(run_dir),
                                   label=f"{settings.mode} labels={data.labels}", threads=run.threads, subset=subset)
    metrics = {"data": data.source_name(), "pretrained": resolved["pretrained"], "budget": data.labels, **metrics}
    if not is_global_zero():  # under DDP every rank holds the same model and metrics; rank 0 writes them
        return metrics
    if run.save_encoder:
        save_classifier(model, run_dir, config=resolved, metrics=metrics)
    new_text_file(run_dir / "metrics.json", json.dumps(metrics, indent=2))  # last: a metrics.json is a whole result
    print(f"{settings.mode}: {metrics['labels']} labels, {metrics['steps']} steps on {device}, validation {metrics['validation']}; "
          f"test accuracy {metrics['test']['accuracy']:.4f}, macro F1 {metrics['test']['f1_macro']:.4f}; {run_dir / 'metrics.json'}")
    return metrics
