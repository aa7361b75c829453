"""The deterministic autoencoder layer (kind "deterministic"), the unit of greedy pretraining.

    h     = act(W x~ + b)              x~ = corrupt(x): masking or Gaussian noise, or x itself
    h     = wta(h)                     winner-take-all lifetime sparsity, training only
    x_hat = out(W' h + c)              W' = W^T when tied, else its own matrix; c its own bias
    loss  = recon(x_hat, x) + penalty  against the clean x; penalty = KL sparsity or L1 on h

recon is binary cross-entropy (sigmoid output) for inputs in [0, 1], else squared error (linear output),
summed over features and averaged over the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import StrataError
from ..optimizers import make_optimizer
from ..regularizers import CORRUPTIONS, SPARSITIES, kl_sparsity, l1_sparsity, winner_take_all
from .base import ACTIVATIONS, LOSSES, Layer, glorot_
from .objectives import reconstruction_loss


@dataclass(frozen=True)
class KLSparsity:
    """weight * sum_j KL(target || mean activation of unit j)."""
    weight: float
    target: float

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.weight * kl_sparsity(h, self.target)


@dataclass(frozen=True)
class L1Sparsity:
    """weight * the batch mean of ||h||_1."""
    weight: float

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.weight * l1_sparsity(h)


def sparsity_penalty(sparsity: str, weight: float, target: float):
    """The penalty on the codes that `autoencoder.sparsity` names, or None."""
    return {"kl": KLSparsity(weight, target), "l1": L1Sparsity(weight)}.get(sparsity)


class AutoencoderLayer(Layer):
    """A one-hidden-layer autoencoder; its variants are set by the arguments (see conf/autoencoder/)."""

    kind = "deterministic"

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
        self.penalty = sparsity_penalty(sparsity, sparsity_weight, target)
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
        return F.linear(h, self.decoder_matrix, self.decoder_bias)

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, reconstruction loss) of one training batch."""
        h = self.encode(self.corrupt(x))
        if self.wta_rate is not None:
            h = winner_take_all(h, self.wta_rate)
        recon = reconstruction_loss(self.decode_logits(h), x, self.loss_kind)
        if self.penalty is None:
            return recon, recon
        return recon + self.penalty(h), recon

    def holdout_recon(self, x: torch.Tensor) -> torch.Tensor:
        return self.losses(x)[1]  # as in training: winner-take-all codes included

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
