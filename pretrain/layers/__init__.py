"""The kinds of one layer's autoencoder, the unit of greedy pretraining: one module a kind over `base.Layer`.

- `deterministic`: the autoencoder layer and its variants (denoising, sparse, tied, winner-take-all),
- `variational`, `adversarial`: the generative top layers, over `generative.GenerativeLayer`,
- `end_to_end`: a generative top's objective through a whole stack; `objectives`: the losses;
  `tracking`: per-epoch means of the losses; `registry`: the kinds by name and a stack's kinds.
"""
from .adversarial import AdversarialLayer
from .base import ACTIVATIONS, LOSSES, Layer, glorot_
from .deterministic import AutoencoderLayer
from .end_to_end import EndToEnd, deep_route
from .generative import GenerativeLayer
from .objectives import reconstruction_loss
from .registry import LAYER_KINDS, stack_layer_options
from .tracking import EpochMeans
from .variational import VariationalLayer

__all__ = ["ACTIVATIONS", "LAYER_KINDS", "LOSSES", "AdversarialLayer", "AutoencoderLayer", "EndToEnd", "EpochMeans",
           "GenerativeLayer", "Layer", "VariationalLayer", "deep_route", "glorot_", "reconstruction_loss",
           "stack_layer_options"]
