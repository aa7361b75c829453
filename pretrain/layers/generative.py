"""What the generative top layers share (kinds "vae" and "adversarial"): a linear code, an untied decoder,
a prior to sample codes from, and an objective that can also train the whole stack end to end.

In a stack (`autoencoder=vae` or `=adversarial`), the generative kind is the top layer, the last of
`model.layers`; the layers below it are built from the options under `below` (conf/autoencoder/vae.yaml).
End-to-end training (`model.end_to_end_epochs`) then applies the top layer's own objective to the whole
model in the data space (`EndToEnd`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import StrataError
from ..regularizers import CORRUPTIONS
from .base import LOSSES, Layer, glorot_
from .end_to_end import EndToEnd, Route

PRIORS = ("normal", "uniform")


def epoch_progress(module, batch_idx: int) -> float:
    """Epochs done so far in this stage, fractional (for the KL warm-up)."""
    batches = module.trainer.num_training_batches
    return module.current_epoch + (batch_idx / batches if batches and math.isfinite(batches) else 0.0)


class GenerativeLayer(Layer):
    """The base of both generative kinds; `encode` is deterministic (the mean, for the VAE).

    A subclass defines `fit_step(module, route, x, batch_idx)`, one training step of its objective along `route`
    with `module` (the layer itself or an `EndToEnd`) tracking the losses, and `make_optimizers(params, optim)`.
    """

    top_only = True
    generative = True
    activation = "linear"
    tied = False

    def __init__(self, n_in: int, n_hidden: int, loss: str = "bce", corruption: str = "none", noise: float = 0.0,
                 prior: str = "normal", optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 init_seed: int | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise StrataError(f"autoencoder.loss={loss!r} is not one of auto, {', '.join(LOSSES)}")
        if corruption not in CORRUPTIONS:
            raise StrataError(f"autoencoder.corruption={corruption!r} is not one of {', '.join(CORRUPTIONS)}")
        if not 0 <= noise < math.inf or (corruption == "mask" and not noise < 1):
            raise StrataError(f"autoencoder.noise={noise} is not a masking probability in [0, 1) or a standard deviation >= 0")
        if prior not in PRIORS:
            raise StrataError(f"autoencoder.prior={prior!r} is not one of {', '.join(PRIORS)}")
        self.n_in, self.n_hidden, self.loss_kind = n_in, n_hidden, loss
        self.corruption, self.noise, self.prior = corruption, noise, prior
        self.optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay}
        self.encoder = nn.Linear(n_in, n_hidden)
        self.decoder_weight = nn.Parameter(torch.empty(n_in, n_hidden))
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))

    def reset_parameters(self, seed: int | None = None) -> torch.Generator | None:
        """The shared parameters' init; returns the generator, for a subclass to go on initialising its own."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        glorot_(self.encoder.weight, self.activation, g)
        self.encoder.bias.data.zero_()
        glorot_(self.decoder_weight, self.activation, g)
        self.decoder_bias.data.zero_()
        return g

    def spec(self) -> dict:
        return {"kind": self.kind, "n_in": self.n_in, "n_hidden": self.n_hidden, "activation": self.activation,
                "tied": False, "loss": self.loss_kind, "prior": self.prior, "decoder": True}

    # -- the model -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.decoder_weight, self.decoder_bias)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes from the prior: N(0, I), or uniform on [-1, 1]^d."""
        shape = (n, self.n_hidden)
        if self.prior == "normal":
            z = torch.randn(shape, generator=generator)
        else:
            z = torch.rand(shape, generator=generator) * 2 - 1
        return z.to(self.decoder_bias)

    def prior_quantiles(self, p: torch.Tensor) -> torch.Tensor:
        """The prior's per-unit quantiles at probabilities p (for a grid over the latent space)."""
        if self.prior == "normal":
            return torch.distributions.Normal(0.0, 1.0).icdf(p)
        return p * 2 - 1

    def own_route(self) -> Route:
        return Route(self.corrupt, lambda x: x, self.decode_logits, self.loss_kind)

    def end_to_end(self, model) -> EndToEnd:
        return EndToEnd(model)

    # -- Lightning: the layer alone --------------------------------------------------------------
    def training_step(self, x, batch_idx):
        return self.fit_step(self, self.own_route(), x, batch_idx)

    def configure_optimizers(self):
        return self.make_optimizers(self.parameters(), self.optim)
