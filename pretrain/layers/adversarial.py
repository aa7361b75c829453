"""The adversarial autoencoder's top layer (Makhzani et al. 2015), kind "adversarial".

A deterministic code z = W x + b; a small discriminator D learns to tell codes from samples of the prior p(z),
and the encoder learns to reconstruct and to fool D, alternately:

    D step:        L_D = BCE(D(z_prior), 1) + BCE(D(z), 0)            (z held fixed)
    encoder step:  L   = recon(x_hat, x) + adversarial_weight * BCE(D(z), 1)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import StrataError
from ..optimizers import make_optimizer
from .base import glorot_
from .end_to_end import Route
from .generative import GenerativeLayer
from .objectives import discriminator_loss, fooling_loss, reconstruction_loss


class AdversarialLayer(GenerativeLayer):
    """The adversarial autoencoder's encoder, decoder and discriminator; see the module docstring.

    Trained with manual optimisation: one discriminator step, then one encoder-decoder step, per batch.
    """

    kind = "adversarial"

    def __init__(self, n_in: int, n_hidden: int, disc_hidden: int = 64, adversarial_weight: float = 1.0,
                 disc_lr: float | None = None, **options):
        super().__init__(n_in, n_hidden, **options)
        if not (isinstance(disc_hidden, int) and disc_hidden > 0):
            raise StrataError(f"autoencoder.disc_hidden={disc_hidden!r} is not a positive number of discriminator units")
        if not (isinstance(adversarial_weight, (int, float)) and 0 <= adversarial_weight < math.inf):
            raise StrataError(f"autoencoder.adversarial_weight={adversarial_weight!r} is not a non-negative weight")
        if disc_lr is not None and not (isinstance(disc_lr, (int, float)) and 0 < disc_lr < math.inf):
            raise StrataError(f"autoencoder.disc_lr={disc_lr!r} is not a positive learning rate (or null: the model's lr)")
        self.automatic_optimization = False
        self.disc_hidden, self.adversarial_weight = disc_hidden, float(adversarial_weight)
        self.disc_lr = disc_lr
        self.discriminator = nn.Sequential(nn.Linear(n_hidden, disc_hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(disc_hidden, disc_hidden), nn.LeakyReLU(0.2), nn.Linear(disc_hidden, 1))
        g = self.reset_parameters(options.get("init_seed"))
        for lin in (m for m in self.discriminator if isinstance(m, nn.Linear)):
            glorot_(lin.weight, "relu", g)
            lin.bias.data.zero_()

    def spec(self) -> dict:
        return {**super().spec(), "disc_hidden": self.disc_hidden}

    @classmethod
    def from_spec(cls, spec: dict) -> "AdversarialLayer":
        return cls(spec["n_in"], spec["n_hidden"], loss=spec["loss"], prior=spec.get("prior", "normal"),
                   disc_hidden=spec.get("disc_hidden", 64))

    def fit_step(self, module, route: Route, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        opt_ae, opt_d = module.optimizers()
        z = self.encode(route.below(route.corrupt(x)))
        # the discriminator: prior samples against the (fixed) codes
        d_loss = discriminator_loss(self.discriminator(self.sample_prior(len(x))), self.discriminator(z.detach()))
        opt_d.zero_grad()
        module.manual_backward(d_loss)
        opt_d.step()
        # the encoder and decoder: reconstruct, and make the codes pass for prior samples
        recon = reconstruction_loss(route.decode_logits(z), x, route.loss_kind)
        g_loss = fooling_loss(self.discriminator(z))
        opt_ae.zero_grad()
        module.manual_backward(recon + self.adversarial_weight * g_loss)
        opt_ae.step()
        module.track(recon, len(x))
        module.track_curves(len(x), d_loss=d_loss, g_loss=g_loss)
        return (recon + self.adversarial_weight * g_loss + d_loss).detach()  # for the check of a diverged stage

    def make_optimizers(self, params, optim: dict):
        """[encoder-decoder optimizer, discriminator optimizer]; `params` may include the discriminator's, which go to the second."""
        disc = {id(p) for p in self.discriminator.parameters()}
        rest = [p for p in params if id(p) not in disc]
        return [make_optimizer(rest, **optim), make_optimizer(self.discriminator.parameters(), **{**optim, "lr": self.disc_lr or optim["lr"]})]
