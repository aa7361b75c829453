"""The encoder as a plain torch module: preprocessing, then Linear + activation per layer.

This is what the artifact gives back (`pretrain.load_encoder`), what fine-tuning builds its classifier on,
and what is exported to TorchScript and ONNX, so it holds nothing but tensors and standard layers.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers.base import ACTIVATIONS, glorot_


class Preprocess(nn.Module):
    """x' = (x - shift) / scale, per feature, fitted on the training inputs."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.detach().clone().float())
        self.register_buffer("scale", scale.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class Encoder(nn.Module):
    """Raw inputs -> preprocessing -> act(W_k h + b_k) for k = 1..L.

    `forward(x)` gives the top layer's codes; `codes(x)` every layer's, lowest first.
    """

    def __init__(self, preprocess: Preprocess, linears: list[nn.Linear], activations: list[str]):
        super().__init__()
        if len(linears) != len(activations) or not linears:
            raise ValueError("an encoder needs one activation per linear layer, and at least one layer")
        self.preprocess = preprocess
        self.layers = nn.ModuleList(nn.Sequential(lin, ACTIVATIONS[a]()) for lin, a in zip(linears, activations))
        self.activations = list(activations)

    @classmethod
    def random(cls, shift: torch.Tensor, scale: torch.Tensor, sizes: list[int], activations: list[str], seed: int) -> "Encoder":
        """The same architecture from random initialisation (Glorot-uniform, as pretraining starts from)."""
        g = torch.Generator().manual_seed(seed)
        dims = [len(shift), *sizes]
        linears = []
        for n_in, n_out, act in zip(dims[:-1], dims[1:], activations):
            lin = nn.Linear(n_in, n_out)
            glorot_(lin.weight, act, g)
            nn.init.zeros_(lin.bias)
            linears.append(lin)
        return cls(Preprocess(shift, scale), linears, activations)

    @property
    def linears(self) -> list[nn.Linear]:
        return [block[0] for block in self.layers]

    @property
    def input_dim(self) -> int:
        return self.preprocess.shift.shape[0]

    @property
    def sizes(self) -> list[int]:
        return [lin.out_features for lin in self.linears]

    def truncated(self, depth: int) -> "Encoder":
        """The lowest `depth` layers, sharing their parameters with this encoder."""
        if not 1 <= depth <= len(self.layers):
            raise ValueError(f"depth {depth} is not between 1 and {len(self.layers)}")
        return Encoder(self.preprocess, self.linears[:depth], self.activations[:depth])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.preprocess(x)
        for layer in self.layers:
            h = layer(h)
        return h

    def codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.preprocess(x)
        out = []
        for layer in self.layers:
            h = layer(h)
            out.append(h)
        return out
