"""Per-layer early stopping of greedy pretraining on inputs held out of it (`model.holdout`, `model.patience`).

A fraction of the (unlabeled) training inputs is set aside; each greedy layer is scored after every epoch on its
reconstruction of the held-out inputs' codes from the layers below, with the layer's own corruption drawn from a
fixed generator (the same noise every epoch, and the training's random stream untouched). The layer keeps the
weights of its best epoch and stops once `patience` epochs have passed without a better one. No label is used.
"""
from __future__ import annotations

import torch
import pytorch_lightning as pl

from .errors import StrataError
from .rows import Rows

HOLDOUT_SEED = 7919  # the held-out inputs' corruption, drawn anew from this seed at every evaluation


def split_holdout(x, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the inputs to pretrain on, the held-out ones): a random `fraction` of the rows of `x` (at least one) is held
    out, drawn with `seed`; `fraction` 0 holds out nothing (None)."""
    if not fraction:
        return x, None
    if isinstance(x, Rows):
        raise StrataError("model.holdout > 0 needs the training inputs in memory; data read from memory-mapped "
                          "files pretrains without early stopping (model.holdout=0)")
    n_out = max(1, round(fraction * len(x)))
    if n_out >= len(x):
        raise StrataError(f"model.holdout={fraction} holds out all {len(x)} training inputs; give a fraction in [0, 1) "
                          "that leaves some to pretrain on")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[n_out:]], x[order[:n_out]]


@torch.no_grad()
def holdout_loss(layer, x: torch.Tensor, batch_size: int) -> float:
    """The layer's mean reconstruction loss on `x`, by training-sized batches (the batch statistics of
    winner-take-all codes depend on the batch), with the corruption of a fixed seed."""
    was_training = layer.training
    layer.eval()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    total = 0.0
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(HOLDOUT_SEED)
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size]
            total += float(layer.holdout_recon(batch)) * len(batch)
    layer.train(was_training)
    return total / len(x)


class BestHoldoutEpoch(pl.Callback):
    """Scores the layer on the held-out inputs after every training epoch, keeps the best epoch's weights, stops
    the stage after `patience` epochs without improvement and leaves the layer with the best weights. Its state
    goes into the stage's checkpoint, so a resumed stage goes on comparing against the same best epoch."""

    def __init__(self, inputs: torch.Tensor, patience: int, batch_size: int):
        self.inputs, self.patience, self.batch_size = inputs, patience, batch_size
        self.losses: list[float] = []
        self.best_epoch, self.best_state = None, None

    def on_train_start(self, trainer, module) -> None:
        self.inputs = self.inputs.to(module.device)

    def on_train_epoch_end(self, trainer, module) -> None:
        self.losses.append(holdout_loss(module, self.inputs, self.batch_size))
        if self.best_epoch is None or self.losses[-1] < self.losses[self.best_epoch]:
            self.best_epoch = len(self.losses) - 1
            self.best_state = {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}
        elif len(self.losses) - 1 - self.best_epoch >= self.patience:
            trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def record(self) -> dict:
        """What the stage's metrics keep of it: the held-out loss per epoch, the epoch kept (1-based) and its loss."""
        best = self.best_epoch
        return {"holdout_recon_per_epoch": self.losses, "best_epoch": None if best is None else best + 1,
                "holdout_recon": None if best is None else self.losses[best]}

    def state_dict(self) -> dict:
        return {"losses": self.losses, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.losses, self.best_epoch, self.best_state = list(state["losses"]), state["best_epoch"], state["best_state"]
