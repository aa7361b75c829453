"""strata.pretrain: greedy layer-wise pretraining of stacked autoencoders."""
from .artifact import describe, load_autoencoder, load_encoder, save_autoencoder, save_encoder
from .data import ArrayDataModule, BatchLoader, DigitsDataModule, MNISTDataModule, NpzDataModule
from .encoder import Encoder, Preprocess
from .errors import StrataError
from .layer import AutoencoderLayer
from .stack import DeepAutoencoder, pretrain_stack

__all__ = [
    "ArrayDataModule", "AutoencoderLayer", "BatchLoader", "DeepAutoencoder", "DigitsDataModule", "Encoder",
    "MNISTDataModule", "NpzDataModule", "Preprocess", "StrataError", "describe", "load_autoencoder",
    "load_encoder", "pretrain_stack", "save_autoencoder", "save_encoder",
]
