"""The old import path of the generative top layers and their math: they live in pretrain.layers now."""
from .elbo import negative_elbo
from .layers.adversarial import AdversarialLayer
from .layers.end_to_end import EndToEnd, Route, deep_route
from .layers.generative import PRIORS, GenerativeLayer, epoch_progress
from .layers.objectives import (discriminator_loss, fooling_loss, gaussian_kl, negative_log_likelihood,
                                reconstruction_loss, reparameterize)
from .layers.registry import stack_layer_options
from .layers.tracking import EpochMeans as TracksCurves
from .layers.variational import VariationalLayer

__all__ = ["PRIORS", "AdversarialLayer", "EndToEnd", "GenerativeLayer", "Route", "TracksCurves", "VariationalLayer",
           "deep_route", "discriminator_loss", "epoch_progress", "fooling_loss", "gaussian_kl", "negative_elbo",
           "negative_log_likelihood", "reconstruction_loss", "reparameterize", "stack_layer_options"]
