"""The Lightning Trainer that every stage uses, with a progress bar that says which stage is running."""
from __future__ import annotations

import ctypes
import functools
import gc
import logging
import math
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from .errors import StrataError

# Lightning's start-up chatter (GPU/TPU availability, tips) and warnings that do not apply to in-memory tensors.
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*is deprecated.*",
                ".*GPU available but not used.*", ".*isinstance.treespec, LeafSpec.*", ".*module.s. in eval mode at the start of training.*",
                ".*validation_step. but have no .val_dataloader.*",  # a fixed schedule: nothing to validate on
                # the epoch values strata logs are reduced over ranks already (TracksReconstruction, torchmetrics)
                ".*when logging on epoch level in distributed setting.*"):
    warnings.filterwarnings("ignore", message=pattern)

_DEFAULT_THREADS = torch.get_num_threads()
DEFAULT_TRAINER = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": True, "deterministic": True,
                   "enable_model_summary": False, "enable_checkpointing": False}


SMALL_MODEL_WEIGHTS = 200_000

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


@functools.cache
def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse (Linux; elsewhere a no-op returning False).

    A training step frees and re-allocates the same tensors (activations, gradients: megabytes each). By default
    glibc gives blocks of that size back to the system and serves the next ones from fresh pages, which the
    kernel must fault in and zero: some 400 page faults per step of a 784-1000 layer. Serving blocks up to
    32 MB from the heap and keeping up to 256 MB of its free top removes them; larger blocks (whole data sets,
    codes) are still returned to the system when freed.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 256 << 20))
    except (OSError, AttributeError):
        return False


@functools.cache
def freeze_long_lived_objects() -> None:
    """Exempt the objects that exist before the process's first Trainer (imported modules, the config, the data)
    from the cycle collector's full scans.

    A full collection walks every tracked object, some 450,000 once torch, Lightning and Hydra are imported:
    0.2 s, and setting up a Trainer triggers one during its fit. Frozen objects are still freed by reference
    counting; only garbage cycles among them would never be collected, so the garbage is collected first, once.
    """
    gc.collect()
    gc.freeze()


def set_threads(model: torch.nn.Module, threads: int | str | None = "auto") -> None:
    """Set torch's intra-op threads for training `model`: an int, None (torch's default) or "auto", which
    uses one thread for small models (their matmuls are too small to split; extra threads only add
    synchronisation, badly so on a busy machine) and torch's default otherwise."""
    if threads == "auto":
        small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_WEIGHTS
        threads = 1 if small else None
    torch.set_num_threads(threads if threads is not None else _DEFAULT_THREADS)


class StageProgressBar(TQDMProgressBar):
    """Lightning's progress bar, its description naming the stage: `layer 2/3 (1000->1000) epoch 4/10`.

    It redraws at most every `min_interval` seconds and on an epoch's last batch: Lightning's own bar writes
    to the terminal twice after every batch, which can cost more than the training step itself.
    """

    def __init__(self, label: str, min_interval: float = 0.2):
        super().__init__()
        self.label, self.min_interval = label, min_interval
        self._drawn_at = -math.inf

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at >= self.min_interval or batch_idx + 1 == self.train_progress_bar.total:
            self._drawn_at = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class StopOnNonFiniteLoss(pl.Callback):
    """Ends a stage whose training loss became NaN or infinite with a StrataError naming the stage and the epoch,
    before anything of that epoch is checkpointed or written (Lightning calls the checkpoint callbacks last).

    Each step's loss (what `training_step` returns) is folded into one flag on the device, with no synchronisation
    per step, and read at the epoch's end.
    """

    def __init__(self, label: str):
        self.label = label
        self._finite = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            ok = torch.isfinite(loss.detach()).all()
            self._finite = ok if self._finite is None else self._finite & ok

    def on_train_epoch_end(self, trainer, module) -> None:
        bad = self._finite is not None and not bool(self._finite)
        self._finite = None
        if bad:
            raise StrataError(f"{self.label}: the training loss became NaN or infinite in epoch {trainer.current_epoch + 1}; "
                              "the run stops and writes no result (a learning rate too high, or NaN weights or inputs?)")


def make_trainer(options: dict | None, max_epochs: int, label: str, log_dir: str | None, version: str, **extra) -> pl.Trainer:
    """A Trainer from the config's `trainer` options; CSV logs go to `log_dir/logs/<version>` when given."""
    reuse_freed_memory()
    freeze_long_lived_objects()
    kwargs = {**DEFAULT_TRAINER, **(options or {}), **extra}
    callbacks = [StopOnNonFiniteLoss(label), *kwargs.pop("callbacks", [])]
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(StageProgressBar(label))
    logger = CSVLogger(log_dir, name="logs", version=version) if log_dir else False
    return pl.Trainer(max_epochs=max_epochs, logger=logger, callbacks=callbacks, **kwargs)
