"""strata.pretrain: greedy layer-wise pretraining of stacked autoencoders."""
__version__ = "0.2.0"

from .api import fit
from .artifact import describe, load_autoencoder, load_encoder, save_autoencoder, save_encoder
from .data import ArrayDataModule, BatchLoader, DigitsDataModule, MNISTDataModule, NpyDataModule, NpzDataModule
from .encoder import Encoder, Preprocess
from .errors import StrataError
from .elbo import negative_elbo
from .layers import AdversarialLayer, AutoencoderLayer, VariationalLayer
from .pictures import (embedding_scatter, latent_manifold, reconstruction_grid, sample_grid, save_pictures,
                       weight_tiles)
from .run import run_pretraining
from .stack import DeepAutoencoder, pretrain_stack

__all__ = [
    "AdversarialLayer", "VariationalLayer", "embedding_scatter", "latent_manifold", "negative_elbo",
    "reconstruction_grid", "sample_grid", "save_pictures", "weight_tiles",
    "ArrayDataModule", "AutoencoderLayer", "BatchLoader", "DeepAutoencoder", "DigitsDataModule", "Encoder",
    "MNISTDataModule", "NpyDataModule", "NpzDataModule", "Preprocess", "StrataError", "describe", "load_autoencoder",
    "fit", "load_encoder", "pretrain_stack", "run_pretraining", "save_autoencoder", "save_encoder",
]
