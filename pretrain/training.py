"""The Lightning Trainer that every stage uses, with a progress bar that says which stage is running."""
from __future__ import annotations

import contextlib
import math
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from .errors import StrataError
from .process import quiet_lightning

_DEFAULT_THREADS = torch.get_num_threads()
DEFAULT_TRAINER = {"accelerator": "auto", "devices": 1, "enable_progress_bar": True, "deterministic": True,
                   "enable_model_summary": False, "enable_checkpointing": False}


SMALL_MODEL_WEIGHTS = 200_000


def set_threads(model: torch.nn.Module, threads: int | str | None = "auto") -> None:
    """Set torch's intra-op threads for training `model`: an int, None (torch's default) or "auto", which
    uses one thread for small models (their matmuls are too small to split; extra threads only add
    synchronisation, badly so on a busy machine) and torch's default otherwise."""
    if threads == "auto":
        small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_WEIGHTS
        threads = 1 if small else None
    torch.set_num_threads(threads if threads is not None else _DEFAULT_THREADS)


def meta_stack(dims: list[int]) -> torch.nn.Module:
    """A stack's encoder layers of widths `dims` on the meta device (nothing allocated): what the thread choice of
    `set_threads` is sized by before the real layers exist."""
    return torch.nn.Sequential(*(torch.nn.Linear(a, b, device="meta") for a, b in zip(dims[:-1], dims[1:])))


@contextlib.contextmanager
def threads_for(model: torch.nn.Module, threads: int | str | None = "auto"):
    """`set_threads` within, torch's thread count as it was afterwards (the library leaves the process as it found it)."""
    before = torch.get_num_threads()
    set_threads(model, threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def csv_logger(log_dir: str, version: str) -> CSVLogger:
    return CSVLogger(log_dir, name="logs", version=version)


def build_callbacks(items: list) -> list[pl.Callback]:
    """`trainer.callbacks`: each a config with `_target_` (instantiated anew for every stage, as callbacks keep
    state) or, from Python, a Callback itself."""
    from hydra.utils import instantiate

    built = []
    for k, item in enumerate(items):
        if isinstance(item, pl.Callback):
            built.append(item)
            continue
        if not isinstance(item, dict) or "_target_" not in item:
            raise StrataError(f"trainer.callbacks[{k}]={item!r} is not a config with a _target_ "
                              "(e.g. {_target_: pytorch_lightning.callbacks.LearningRateMonitor})")
        try:
            callback = instantiate(item)
        except Exception as err:  # noqa: BLE001 - Hydra's instantiation errors, one line
            raise StrataError(f"trainer.callbacks[{k}] ({item['_target_']}): {str(err.__cause__ or err).splitlines()[0]}") from None
        if not isinstance(callback, pl.Callback):
            raise StrataError(f"trainer.callbacks[{k}]: {item['_target_']} is not a pytorch_lightning Callback")
        built.append(callback)
    return built


def make_trainer(options: dict | None, max_epochs: int, label: str, log_dir: str | None, version: str, **extra) -> pl.Trainer:
    """A Trainer from the config's `trainer` options; CSV logs go to `log_dir/logs/<version>` when given."""
    kwargs = {**DEFAULT_TRAINER, **(options or {}), **extra}
    callbacks = [StopOnNonFiniteLoss(label), *build_callbacks((options or {}).get("callbacks") or []), *extra.get("callbacks", [])]
    kwargs.pop("callbacks", None)
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(StageProgressBar(label))
    loggers = kwargs.pop("logger", None) or csv_logger  # a pretrain.loggers.StageLoggers from the logger group
    logger = loggers(log_dir, version) if log_dir else False
    with quiet_lightning():
        return StageTrainer(max_epochs=max_epochs, logger=logger, callbacks=callbacks, **kwargs)


class StageTrainer(pl.Trainer):
    """Lightning's Trainer, its fitting quiet (`pretrain.process.quiet_lightning`) without changing the process."""

    def fit(self, *args, **kwargs):
        with quiet_lightning():
            return super().fit(*args, **kwargs)


def device_name(trainer: pl.Trainer) -> str:
    """The device a Trainer trains on, as a run's log line names it: `cpu`, `cuda:0 (NVIDIA H100 80GB HBM3)`."""
    device = trainer.strategy.root_device
    name = f"{device.type}:{device.index}" if device.index is not None else device.type
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    devices = trainer.num_devices * trainer.num_nodes
    return name + (f", {devices} devices" if devices > 1 else "")
