"""Corruption of the input and constraints on the codes, each a small function where the math shows."""
from __future__ import annotations

import math

import torch

CORRUPTIONS = ("none", "mask", "gaussian")
SPARSITIES = ("none", "kl", "l1")


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """Masking noise (each input set to 0 with probability `level`) or additive Gaussian noise of std `level`."""
    if kind == "none" or level == 0:
        return x
    if kind == "mask":
        return x * (torch.rand_like(x) >= level)
    if kind == "gaussian":
        return x + level * torch.randn_like(x)
    raise ValueError(f"unknown corruption {kind!r}")


def kl_sparsity(h: torch.Tensor, target: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean activation of unit j over the batch (sigmoid codes)."""
    rho_hat = h.mean(dim=0).clamp(eps, 1 - eps)
    rho = target
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def l1_sparsity(h: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the L1 norm of the codes."""
    return h.abs().sum(dim=1).mean()


def winner_take_all(h: torch.Tensor, rate: float) -> torch.Tensor:
    """Lifetime sparsity: each unit keeps its k = ceil(rate * batch) largest activations over the batch, the rest become 0."""
    k = max(1, math.ceil(rate * h.shape[0] - 1e-9))
    winners = h.topk(k, dim=0).indices  # (k, units): the batch rows each unit keeps
    mask = torch.zeros_like(h).scatter_(0, winners, 1.0)
    return h * mask
