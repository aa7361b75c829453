"""The losses the layers train on, written out where the math shows."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reconstruction_loss(logits_or_values: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-example reconstruction loss, summed over features, averaged over the batch.

    For "bce" the first argument holds the decoder's logits (stable BCE-with-logits); for "mse" its outputs.
    """
    if loss == "bce":
        total = F.binary_cross_entropy_with_logits(logits_or_values, target, reduction="sum")
    else:
        total = F.mse_loss(logits_or_values, target, reduction="sum")
    return total / len(target)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example: 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I): a sample whose gradient reaches mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator).to(mu) if generator is not None else torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps


def negative_log_likelihood(logits_or_values: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """-log p(x | z) per example, in nats: Bernoulli (from logits) for "bce", unit-variance Gaussian for "mse"."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits_or_values, x, reduction="none").sum(dim=1)
    d = x.shape[1]
    return 0.5 * ((logits_or_values - x) ** 2).sum(dim=1) + 0.5 * d * math.log(2 * math.pi)


def discriminator_loss(d_prior: torch.Tensor, d_codes: torch.Tensor) -> torch.Tensor:
    """BCE of the discriminator's logits: prior samples are labelled 1, the encoder's codes 0."""
    return (F.binary_cross_entropy_with_logits(d_prior, torch.ones_like(d_prior))
            + F.binary_cross_entropy_with_logits(d_codes, torch.zeros_like(d_codes)))


def fooling_loss(d_codes: torch.Tensor) -> torch.Tensor:
    """The encoder's adversarial loss, -log D(z) (the non-saturating form): its codes should be taken for prior samples."""
    return F.binary_cross_entropy_with_logits(d_codes, torch.ones_like(d_codes))
