"""The Lightning Trainer that every stage uses, with a progress bar that says which stage is running."""
from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

# Lightning's start-up chatter (GPU/TPU availability, tips) and warnings that do not apply to in-memory tensors.
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*is deprecated.*",
                ".*GPU available but not used.*", ".*isinstance.treespec, LeafSpec.*"):
    warnings.filterwarnings("ignore", message=pattern)

DEFAULT_TRAINER = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": True, "deterministic": True,
                   "enable_model_summary": False, "enable_checkpointing": False}


class StageProgressBar(TQDMProgressBar):
    """Lightning's progress bar, its description naming the stage: `layer 2/3 (1000->1000) epoch 4/10`."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


def make_trainer(options: dict | None, max_epochs: int, label: str, log_dir: str | None, version: str, **extra) -> pl.Trainer:
    """A Trainer from the config's `trainer` options; CSV logs go to `log_dir/logs/<version>` when given."""
    kwargs = {**DEFAULT_TRAINER, **(options or {}), **extra}
    callbacks = list(kwargs.pop("callbacks", []))
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(StageProgressBar(label))
    logger = CSVLogger(log_dir, name="logs", version=version) if log_dir else False
    return pl.Trainer(max_epochs=max_epochs, logger=logger, callbacks=callbacks, **kwargs)
