"""End-to-end training of a stack whose top layer is generative, with that layer's own objective."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .tracking import EpochMeans


class Route(NamedTuple):
    """How a training objective reaches the top layer's code and comes back: for the layer alone, its own input and
    decoder; end to end, the layers below and the whole mirrored decoder, down to the data."""
    corrupt: Callable[[torch.Tensor], torch.Tensor]        # inputs -> (corrupted) inputs
    below: Callable[[torch.Tensor], torch.Tensor]          # inputs -> the top layer's input
    decode_logits: Callable[[torch.Tensor], torch.Tensor]  # codes -> logits ("bce") or values ("mse") of the target
    loss_kind: str


def deep_route(model) -> Route:
    """The Route of a whole DeepAutoencoder (preprocessed inputs): the bottom layer's corruption, the layers below the
    top, and the whole mirrored decoder."""
    layers = list(model.layers)
    bottom = layers[0]

    def below(h):
        for layer in layers[:-1]:
            h = layer.encode(h)
        return h

    return Route(bottom.corrupt, below, model.decode_logits, bottom.loss_kind)


class EndToEnd(EpochMeans):
    """Trains a DeepAutoencoder whose top layer is generative end to end, with that layer's own objective taken
    through the whole model: inputs -> layers below -> top layer's code -> whole mirrored decoder -> data.

    It shares the model's parameters; `history` and `curves` are the stage's own.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.automatic_optimization = model.layers[-1].automatic_optimization

    def training_step(self, x, batch_idx):
        return self.model.layers[-1].fit_step(self, deep_route(self.model), x, batch_idx)

    def configure_optimizers(self):
        return self.model.layers[-1].make_optimizers(self.model.parameters(), self.model.optim)
