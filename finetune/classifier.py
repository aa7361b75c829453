"""The classifier: a (pretrained or random) encoder with a head on top, trained on few labels.

Modes:
    scratch   the same architecture from random initialisation, everything trained
    frozen    pretrained encoder fixed (no gradients, eval mode); only the head learns
    unfrozen  pretrained encoder and head trained together
    partial   the lowest `frozen_layers` encoder layers fixed, the rest trained
    semisup   unfrozen, and the encoder keeps denoising the unlabeled inputs (finetune/semisupervised.py)
    ladder    the pretrained encoder and a linear head trained as a Ladder network (finetune/ladder.py)

The encoder's learning rate is `lr * encoder_lr_scale` (discriminative rates); the head's is `lr`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from pretrain import Encoder, StrataError, load_encoder, save_encoder
from pretrain.api import as_inputs
from pretrain.files import new_file
from pretrain.optimizers import make_optimizer

from .metrics import classification_metrics

MODES = ("scratch", "frozen", "unfrozen", "partial", "semisup", "ladder")
PLAIN_MODES = MODES[:4]  # the others have classes of their own
HEADS = ("linear", "mlp")
HEAD_CHOICES = ("auto", *HEADS)  # the config's finetune.head; auto is resolved by `head_for`
SCHEDULES = ("constant", "cosine")
ENCODER, HEAD = "encoder", "head.safetensors"  # what a fine-tuning run directory holds beside metrics.json


def head_for(mode: str, head: str) -> str:
    """finetune.head=auto: an MLP head (chosen on the development suite, docs/devsuite.md round r2), except for the
    ladder, whose top layer is linear by construction (finetune/ladder.py)."""
    if head != "auto":
        return head
    return "linear" if mode == "ladder" else "mlp"


def make_head(n_in: int, num_classes: int, kind: str, hidden: int, dropout: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(n_in, num_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    raise StrataError(f"finetune.head={kind!r} is not one of {', '.join(HEADS)}")


class Classifier(pl.LightningModule):
    def __init__(self, encoder: Encoder, num_classes: int, mode: str = "unfrozen", frozen_layers: int = 1,
                 head: str = "linear", head_hidden: int = 128, dropout: float = 0.0, input_dropout: float = 0.0,
                 optimizer: str = "adam", lr: float = 1e-3, encoder_lr_scale: float = 1.0, weight_decay: float = 0.0,
                 schedule: str = "constant", classes: list | None = None):
        super().__init__()
        if mode not in PLAIN_MODES:  # semisup: SemiSupervisedClassifier, ladder: LadderClassifier
            raise StrataError(f"finetune.mode={mode!r} is not one of {', '.join(PLAIN_MODES)}")
        depth = len(encoder.layers)
        if mode == "partial" and not 1 <= frozen_layers < depth:
            raise StrataError(f"finetune.mode=partial needs 1 <= finetune.frozen_layers < {depth} (the encoder's depth), got {frozen_layers}")
        if schedule not in SCHEDULES:
            raise StrataError(f"finetune.schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
        for name, p in (("finetune.dropout", dropout), ("finetune.input_dropout", input_dropout)):
            if not 0 <= p < 1:
                raise StrataError(f"{name}={p} is not a probability in [0, 1)")
        self.encoder, self.mode, self.num_classes = encoder, mode, num_classes
        self.n_frozen = {"frozen": depth, "partial": frozen_layers}.get(mode, 0)
        self.input_dropout, self.dropout = nn.Dropout(input_dropout), nn.Dropout(dropout)
        self.head = make_head(encoder.sizes[-1], num_classes, head, head_hidden, dropout)
        self.classes = list(range(num_classes)) if classes is None else list(classes)  # output k is class classes[k]
        if len(self.classes) != num_classes:
            raise StrataError(f"{len(self.classes)} class names for a head of {num_classes} outputs")
        self.head_spec = {"head": head, "head_hidden": head_hidden, "num_classes": num_classes, "classes": self.classes}
        self.optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay}
        self.encoder_lr_scale, self.schedule = encoder_lr_scale, schedule
        for block in self.frozen_blocks:
            block.requires_grad_(False)
        self.val_metrics = classification_metrics(num_classes)

    @property
    def frozen_blocks(self) -> list[nn.Module]:
        return list(self.encoder.layers)[: self.n_frozen]

    def train(self, mode: bool = True):
        """Frozen blocks stay in eval mode whatever Lightning asks."""
        super().train(mode)
        for block in self.frozen_blocks:
            block.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_dropout(self.encoder.preprocess(x))
        for block in self.encoder.layers:
            h = self.dropout(block(h))
        return self.head(h)

    @torch.no_grad()
    def predict_proba(self, x, batch_size: int = 4096):
        """Class probabilities (numpy, n x C, columns in the order of `classes`) of raw inputs `x` (array or tensor,
        one row per example), in eval mode; the module's own mode is kept."""
        x, _ = as_inputs(x)  # one row per example, real and finite, or a one-line error
        if x.shape[1] != self.encoder.input_dim:
            raise StrataError(f"x has {x.shape[1]} features per example; the classifier expects {self.encoder.input_dim}")
        was_training = self.training
        self.eval()
        x = x.to(self.encoder.preprocess.shift.dtype)
        probs = [F.softmax(self(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return torch.cat(probs).numpy() if probs else np.zeros((0, self.num_classes), np.float32)

    def predict(self, x):
        """The predicted class of each row of `x`, named as the training labels named it."""
        return np.asarray(self.classes)[self.predict_proba(x).argmax(axis=1)]

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_metrics["accuracy"].update(logits, y)
        # averaged over ranks under DDP, so that early stopping decides alike on every rank
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, batch_size=len(x), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log("val_acc", self.val_metrics["accuracy"].compute(), prog_bar=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        trainable = [p for block in list(self.encoder.layers)[self.n_frozen:] for p in block.parameters()]
        groups = [{"params": list(self.head.parameters()), "lr": self.optim["lr"]}]
        if trainable:
            groups.append({"params": trainable, "lr": self.optim["lr"] * self.encoder_lr_scale})
        return self.scheduled(make_optimizer(groups, **self.optim))

    def scheduled(self, optimizer: torch.optim.Optimizer):
        """The optimizer under the learning-rate schedule: constant, or cosine (each rate decays from its initial
        value to 0 over the run's `epochs`, step by step; early stopping may end the run before)."""
        if self.schedule == "constant":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def save_classifier(model: Classifier, run_dir: Path, config: dict | None = None, metrics: dict | None = None) -> None:
    """The fine-tuned encoder as an artifact (`run_dir/encoder/`) and the head's weights beside it
    (`run_dir/head.safetensors`, its architecture in the file's metadata); `load_classifier` reads both back."""
    head_path = Path(run_dir) / HEAD
    if head_path.exists():
        raise StrataError(f"{head_path} already exists: an earlier result is never overwritten")
    save_encoder(model.encoder, Path(run_dir) / ENCODER, config=config, metrics=metrics)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
    new_file(head_path, lambda tmp: save_file(tensors, str(tmp), metadata={"strata.head": json.dumps(model.head_spec)}))


def load_classifier(run_dir: str | Path) -> Classifier:
    """The classifier a `python -m finetune` run saved into `run_dir`, in eval mode (tensors and JSON only)."""
    run_dir = Path(run_dir)
    encoder = load_encoder(run_dir / ENCODER)
    if not (run_dir / HEAD).is_file():
        raise StrataError(f"{run_dir / HEAD}: no such file (expected the head that `python -m finetune` saves beside {ENCODER}/)")
    try:
        with safe_open(str(run_dir / HEAD), framework="pt") as f:
            spec = json.loads((f.metadata() or {})["strata.head"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        model = Classifier(encoder, spec["num_classes"], head=spec["head"], head_hidden=spec["head_hidden"],
                           classes=spec.get("classes"))
        model.head.load_state_dict(tensors)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise StrataError(f"{run_dir / HEAD}: not a head that fits {run_dir / ENCODER} ({err})") from None
    return model.eval()
