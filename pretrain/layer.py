"""The old import path of the deterministic layer and its helpers: they live in pretrain.layers now."""
from .layers.base import ACTIVATIONS, LOSSES, glorot_
from .layers.deterministic import AutoencoderLayer, check_layer_options
from .layers.objectives import reconstruction_loss
from .layers.registry import LAYER_KINDS
from .layers.tracking import EpochMeans as TracksReconstruction
from .optimizers import FUSED_DEVICES, OPTIMIZERS, make_optimizer

__all__ = ["ACTIVATIONS", "FUSED_DEVICES", "LAYER_KINDS", "LOSSES", "OPTIMIZERS", "AutoencoderLayer", "TracksReconstruction",
           "check_layer_options", "glorot_", "make_optimizer", "reconstruction_loss"]
