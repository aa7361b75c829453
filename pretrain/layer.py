"""One layer's autoencoder, the unit of greedy pretraining.

    h     = act(W x~ + b)              x~ = corrupt(x): masking or Gaussian noise, or x itself
    h     = wta(h)                     winner-take-all lifetime sparsity, training only
    x_hat = out(W' h + c)              W' = W^T when tied, else its own matrix; c its own bias
    loss  = recon(x_hat, x) + penalty  against the clean x; penalty = KL sparsity or L1 on h

recon is binary cross-entropy (sigmoid output) for inputs in [0, 1], else squared error (linear output),
summed over features and averaged over the batch.
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from .errors import StrataError
from .regularizers import CORRUPTIONS, SPARSITIES, corrupt, kl_sparsity, l1_sparsity, winner_take_all

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "linear": nn.Identity, "tanh": nn.Tanh}
LOSSES = ("bce", "mse")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


FUSED_DEVICES = ("cpu", "cuda")


def make_optimizer(params, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """The named optimizer over `params` (tensors or param groups), fused where the device has the kernel.

    A fused step updates every tensor in one pass instead of a chain of elementwise ops per tensor: the same
    update (to float rounding), several times faster on CPU, where it is a large part of a small layer's step.
    """
    if name not in OPTIMIZERS:
        raise StrataError(f"optimizer={name!r} is not one of {', '.join(OPTIMIZERS)}")
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in tensors) or None
    extra = {"momentum": momentum} if name == "sgd" else {}
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, fused=fused, **extra)


@torch.no_grad()
def glorot_(weight: torch.Tensor, activation: str, generator: torch.Generator | None = None) -> None:
    """Glorot-uniform init in place, 4x wider for sigmoid units (as in the classic stacked autoencoders)."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out)) * (4.0 if activation == "sigmoid" else 1.0)
    weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * bound - bound)


def reconstruction_loss(logits_or_values: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-example reconstruction loss, summed over features, averaged over the batch.

    For "bce" the first argument holds the decoder's logits (stable BCE-with-logits); for "mse" its outputs.
    """
    if loss == "bce":
        total = F.binary_cross_entropy_with_logits(logits_or_values, target, reduction="sum")
    else:
        total = F.mse_loss(logits_or_values, target, reduction="sum")
    return total / len(target)


class TracksReconstruction(pl.LightningModule):
    """Keeps `history`, the mean reconstruction loss of each training epoch, and logs it as `recon`.

    The sum stays on the device and is read once per epoch: a per-step `self.log` costs more than
    the step of a small layer.
    """

    def __init__(self):
        super().__init__()
        self.history: list[float] = []
        self._epoch_sum, self._epoch_count = None, 0

    def track(self, recon: torch.Tensor, n: int) -> None:
        total = recon.detach() * n
        self._epoch_sum = total if self._epoch_sum is None else self._epoch_sum + total
        self._epoch_count += n

    def on_train_epoch_start(self) -> None:
        self._epoch_sum, self._epoch_count = None, 0

    def on_train_epoch_end(self) -> None:
        if self._epoch_sum is None:
            return
        stats = torch.stack([self._epoch_sum.float(), torch.tensor(float(self._epoch_count), device=self._epoch_sum.device)])
        if self.trainer.world_size > 1:
            stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        mean = float(stats[0] / stats[1])
        self.history.append(mean)
        self.log("recon", mean, prog_bar=True)


LAYER_KINDS: dict[str, type] = {}


def register_layer(kind: str):
    """Class decorator: make a layer class available as `autoencoder.kind=<kind>`."""

    def add(cls):
        cls.kind = kind
        LAYER_KINDS[kind] = cls
        return cls

    return add


@register_layer("deterministic")
class AutoencoderLayer(TracksReconstruction):
    """A one-hidden-layer autoencoder; its variants are set by the arguments (see conf/autoencoder/).

    A layer class of another kind (registered with `register_layer`) offers the same interface:
    `encoder` (the nn.Linear whose output, through `activation`, is the deterministic code), `encode`,
    `decode_logits`, `output`, `loss_kind`, `corruption`/`noise`, and `spec`/`from_spec` for the artifact.
    """

    def __init__(self, n_in: int, n_hidden: int, activation: str = "sigmoid", tied: bool = False, loss: str = "bce",
                 corruption: str = "none", noise: float = 0.0, sparsity: str = "none", target: float = 0.05,
                 sparsity_weight: float = 0.0, wta_rate: float | None = None, optimizer: str = "adam",
                 lr: float = 1e-3, weight_decay: float = 0.0, init_seed: int | None = None):
        super().__init__()
        check_layer_options(activation, loss, corruption, noise, sparsity, target, sparsity_weight, wta_rate)
        self.n_in, self.n_hidden = n_in, n_hidden
        self.activation, self.tied, self.loss_kind = activation, tied, loss
        self.corruption, self.noise = corruption, noise
        self.sparsity, self.target, self.sparsity_weight, self.wta_rate = sparsity, target, sparsity_weight, wta_rate
        self.optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay}

        self.encoder = nn.Linear(n_in, n_hidden)
        self.act = ACTIVATIONS[activation]()
        self.decoder_weight = None if tied else nn.Parameter(torch.empty(n_in, n_hidden))
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))
        self.reset_parameters(init_seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        glorot_(self.encoder.weight, self.activation, g)
        self.encoder.bias.data.zero_()
        if self.decoder_weight is not None:
            glorot_(self.decoder_weight, self.activation, g)
        self.decoder_bias.data.zero_()

    def spec(self) -> dict:
        """What the artifact records to rebuild this layer (training-only options are not needed)."""
        return {"kind": self.kind, "n_in": self.n_in, "n_hidden": self.n_hidden, "activation": self.activation,
                "tied": self.tied, "loss": self.loss_kind, "decoder": True}

    @classmethod
    def from_spec(cls, spec: dict) -> "AutoencoderLayer":
        return cls(spec["n_in"], spec["n_hidden"], activation=spec["activation"], tied=spec["tied"], loss=spec["loss"])

    # -- the model -----------------------------------------------------------------------------
    @property
    def decoder_matrix(self) -> torch.Tensor:
        return self.encoder.weight.t() if self.tied else self.decoder_weight

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.encoder(x))

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """W' h + c: logits for "bce", the reconstruction itself for "mse"."""
        return F.linear(h, self.decoder_matrix, self.decoder_bias)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.loss_kind == "bce" else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (no corruption, no winner-take-all)."""
        return self.output(self.decode_logits(self.encode(x)))

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, reconstruction loss) of one training batch."""
        h = self.encode(corrupt(x, self.corruption, self.noise))
        if self.wta_rate is not None:
            h = winner_take_all(h, self.wta_rate)
        recon = reconstruction_loss(self.decode_logits(h), x, self.loss_kind)
        if self.sparsity == "kl":
            return recon + self.sparsity_weight * kl_sparsity(h, self.target), recon
        if self.sparsity == "l1":
            return recon + self.sparsity_weight * l1_sparsity(h), recon
        return recon, recon

    # -- Lightning -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss, recon = self.losses(batch)
        self.track(recon, len(batch))
        return loss

    def configure_optimizers(self):
        return make_optimizer(self.parameters(), **self.optim)


def check_layer_options(activation, loss, corruption, noise, sparsity, target, sparsity_weight, wta_rate) -> None:
    """Reject option values that make no sense, naming the config field and what it accepts."""
    for name, value in (("noise", noise), ("target", target), ("sparsity_weight", sparsity_weight), ("wta_rate", wta_rate)):
        if value is not None and not math.isfinite(value):
            raise StrataError(f"autoencoder.{name}={value} is not a finite number")
    if activation not in ACTIVATIONS:
        raise StrataError(f"autoencoder.activation={activation!r} is not one of {', '.join(ACTIVATIONS)}")
    if loss not in LOSSES:
        raise StrataError(f"autoencoder.loss={loss!r} is not one of auto, {', '.join(LOSSES)}")
    if corruption not in CORRUPTIONS:
        raise StrataError(f"autoencoder.corruption={corruption!r} is not one of {', '.join(CORRUPTIONS)}")
    if corruption == "mask" and not 0 <= noise < 1:
        raise StrataError(f"autoencoder.noise={noise} is not a masking probability in [0, 1)")
    if noise < 0:
        raise StrataError(f"autoencoder.noise={noise} is negative (expected a probability or a standard deviation)")
    if sparsity not in SPARSITIES:
        raise StrataError(f"autoencoder.sparsity={sparsity!r} is not one of {', '.join(SPARSITIES)}")
    if sparsity == "kl" and activation != "sigmoid":
        raise StrataError(f"autoencoder.sparsity=kl needs activation=sigmoid (codes in (0, 1)), got {activation!r}")
    if sparsity == "kl" and not 0 < target < 1:
        raise StrataError(f"autoencoder.target={target} is not a firing rate in (0, 1)")
    if sparsity_weight < 0:
        raise StrataError(f"autoencoder.sparsity_weight={sparsity_weight} is negative")
    if wta_rate is not None and not 0 < wta_rate <= 1:
        raise StrataError(f"autoencoder.wta_rate={wta_rate} is not a fraction in (0, 1]")
