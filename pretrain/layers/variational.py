"""The variational autoencoder's top layer (Kingma and Welling 2014), kind "vae". Per code unit j a Gaussian posterior:

    mu = W x + b            (the `encoder`: the deterministic code, activation "linear")
    logvar = V x + d        (the `logvar` head)
    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)                        (reparameterisation)
    KL(q(z|x) || N(0, I)) = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)
    -ELBO = -log p(x|z) + KL                                              (per example, in nats)
    loss  = -log p(x|z) + beta_t KL,   beta_t = beta * min(1, epochs done / warmup_epochs)

-log p(x|z) is binary cross-entropy (a Bernoulli decoder) for inputs in [0, 1], else the Gaussian negative
log-likelihood with unit variance, 1/2 ||x - x_hat||^2 + d/2 log(2 pi).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import StrataError
from ..optimizers import make_optimizer
from .base import glorot_
from .end_to_end import Route
from .generative import GenerativeLayer, epoch_progress
from .objectives import gaussian_kl, negative_log_likelihood, reconstruction_loss, reparameterize


class VariationalLayer(GenerativeLayer):
    """The VAE's encoder (mean and log-variance heads) and decoder; see the module docstring."""

    kind = "vae"

    def __init__(self, n_in: int, n_hidden: int, beta: float = 1.0, warmup_epochs: float = 0, **options):
        super().__init__(n_in, n_hidden, **options)
        if not (isinstance(beta, (int, float)) and 0 <= beta < math.inf):
            raise StrataError(f"autoencoder.beta={beta!r} is not a non-negative weight of the KL term")
        if not (isinstance(warmup_epochs, (int, float)) and 0 <= warmup_epochs < math.inf):
            raise StrataError(f"autoencoder.warmup_epochs={warmup_epochs!r} is not a non-negative number of epochs")
        self.beta, self.warmup_epochs = float(beta), warmup_epochs
        self.logvar = nn.Linear(n_in, n_hidden)
        g = self.reset_parameters(options.get("init_seed"))
        glorot_(self.logvar.weight, "linear", g)
        self.logvar.bias.data.zero_()

    @classmethod
    def from_spec(cls, spec: dict) -> "VariationalLayer":
        return cls(spec["n_in"], spec["n_hidden"], loss=spec["loss"], prior=spec.get("prior", "normal"))

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | h)."""
        return self.encoder(h), self.logvar(h)

    def kl_weight(self, progress: float) -> float:
        """beta, ramped linearly from 0 over the first `warmup_epochs` epochs of a stage."""
        return self.beta if self.warmup_epochs <= 0 else self.beta * min(1.0, progress / self.warmup_epochs)

    def objective(self, route: Route, x: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        """The batch means of the training loss, -ELBO, its two terms, and the reconstruction loss as other layers report it."""
        mu, logvar = self.posterior(route.below(route.corrupt(x)))
        logits = route.decode_logits(reparameterize(mu, logvar))
        nll = negative_log_likelihood(logits, x, route.loss_kind).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return {"loss": nll + self.kl_weight(progress) * kl, "neg_elbo": nll + kl, "nll": nll, "kl": kl,
                "recon": reconstruction_loss(logits, x, route.loss_kind)}

    def fit_step(self, module, route: Route, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self.objective(route, x, epoch_progress(module, batch_idx))
        module.track(out["recon"], len(x))
        module.track_curves(len(x), neg_elbo=out["neg_elbo"], kl=out["kl"])
        return out["loss"]

    def make_optimizers(self, params, optim: dict):
        return make_optimizer(params, **optim)
