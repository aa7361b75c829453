"""What every kind of layer offers greedy stacking, the artifact and fine-tuning."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..regularizers import corrupt
from .objectives import reconstruction_loss
from .tracking import EpochMeans

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "linear": nn.Identity, "tanh": nn.Tanh}
LOSSES = ("bce", "mse")


@torch.no_grad()
def glorot_(weight: torch.Tensor, activation: str, generator: torch.Generator | None = None) -> None:
    """Glorot-uniform init in place, 4x wider for sigmoid units (as in the classic stacked autoencoders)."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out)) * (4.0 if activation == "sigmoid" else 1.0)
    weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * bound - bound)


class Layer(EpochMeans):
    """One layer's autoencoder, the unit of greedy pretraining, of any kind (pretrain.layers.LAYER_KINDS).

    A subclass sets `encoder` (the nn.Linear whose output, through `activation`, is the deterministic code),
    `loss_kind`, `corruption` and `noise`, and defines `encode`, `decode_logits` and `spec`/`from_spec`.
    """

    kind: str            # its name in `autoencoder.kind` and in artifacts' config.json: artifacts depend on it
    top_only = False     # only ever the top layer of a stack (the layers under it are of another kind)
    generative = False   # has a prior to draw codes from: `sample_prior(n, generator)`, `prior_quantiles(p)`

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder before its output function: logits for "bce", the reconstruction itself for "mse"."""
        raise NotImplementedError

    def spec(self) -> dict:
        """What the artifact records to rebuild this layer (training-only options are not needed)."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict) -> "Layer":
        raise NotImplementedError

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The training input: `x` with this layer's corruption (masking or Gaussian noise), or `x` itself."""
        return corrupt(x, self.corruption, self.noise)

    def holdout_recon(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss of a batch held out of training (pretrain.holdout): the code of the corrupted
        input, decoded, against the clean input."""
        return reconstruction_loss(self.decode_logits(self.encode(self.corrupt(x))), x, self.loss_kind)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.loss_kind == "bce" else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (no corruption, no winner-take-all)."""
        return self.output(self.decode_logits(self.encode(x)))

    def end_to_end(self, model) -> EpochMeans:
        """The Lightning module that trains `model` (a DeepAutoencoder with this layer on top) end to end:
        the model itself, on its reconstruction loss, unless this layer's objective says otherwise."""
        return model
