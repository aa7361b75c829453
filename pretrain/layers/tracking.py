"""Per-epoch means of training losses, for the layers and the end-to-end stages."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

PROGRESS_BAR_CURVES = ("neg_elbo", "d_loss")


class EpochMeans(pl.LightningModule):
    """Keeps `history`, the mean reconstruction loss of each training epoch (logged as `recon`), and `curves`,
    the per-epoch means of further named losses (logged by name).

    The sums stay on the device and are read once per epoch: a per-step `self.log` costs more than
    the step of a small layer.
    """

    def __init__(self):
        super().__init__()
        self.history: list[float] = []
        self.curves: dict[str, list[float]] = {}
        self._epoch_sum, self._epoch_count = None, 0
        self._curve_sums: dict[str, torch.Tensor] = {}
        self._curve_count = 0

    def track(self, recon: torch.Tensor, n: int) -> None:
        total = recon.detach() * n
        self._epoch_sum = total if self._epoch_sum is None else self._epoch_sum + total
        self._epoch_count += n

    def track_curves(self, n: int, **values: torch.Tensor) -> None:
        for name, value in values.items():
            total = value.detach().float() * n
            self._curve_sums[name] = total if name not in self._curve_sums else self._curve_sums[name] + total
        self._curve_count += n

    def on_train_epoch_start(self) -> None:
        self._epoch_sum, self._epoch_count = None, 0
        self._curve_sums, self._curve_count = {}, 0

    def on_train_epoch_end(self) -> None:
        self._end_reconstruction_epoch()
        self._end_curves_epoch()

    def _reduced(self, stats: torch.Tensor) -> torch.Tensor:
        """Summed over the ranks of a distributed run."""
        return self.trainer.strategy.reduce(stats, reduce_op="sum") if self.trainer.world_size > 1 else stats

    def _end_reconstruction_epoch(self) -> None:
        if self._epoch_sum is None:
            return
        device = self._epoch_sum.device
        stats = self._reduced(torch.stack([self._epoch_sum.float(), torch.tensor(float(self._epoch_count), device=device)]))
        mean = float(stats[0] / stats[1])
        self.history.append(mean)
        self.log("recon", mean, prog_bar=True)

    def _end_curves_epoch(self) -> None:
        if not self._curve_sums:
            return
        names = list(self._curve_sums)
        device = self._curve_sums[names[0]].device
        stats = self._reduced(torch.stack([*(self._curve_sums[k] for k in names), torch.tensor(float(self._curve_count), device=device)]))
        for name, total in zip(names, stats[:-1]):
            mean = float(total / stats[-1])
            self.curves.setdefault(name, []).append(mean)
            self.log(name, mean, prog_bar=name in PROGRESS_BAR_CURVES)

    def curve_metrics(self) -> dict:
        """`<name>_per_epoch` and the last value `<name>` of every curve, for metrics.json (none: {})."""
        out = {}
        for name, values in self.curves.items():
            out[f"{name}_per_epoch"] = values
            out[name] = values[-1] if values else None
        return out
