"""The pretrained encoder as a scikit-learn transformer: raw inputs in, codes out.

`EncoderTransformer(pretrained=path)` wraps an artifact written by `python -m pretrain`;
`EncoderTransformer(sizes=..., epochs=...)` pretrains a stack itself in `fit` (greedy, via
`pretrain.pretrain_stack`). Either way the fitted weights are kept as plain tensors (artifact naming),
so the transformer pickles and clones like any scikit-learn estimator, and `transform` rebuilds the
`pretrain.Encoder` from them.

`transform` computes in float64 so that its codes do not depend on how the rows are batched
(float32 matrix products differ in the last bits between batch sizes); the codes match the float32
encoder to about 1e-7.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from pretrain import Encoder, StrataError, pretrain_stack, save_autoencoder, save_encoder
from pretrain.artifact import autoencoder_from_tensors, encoder_from_tensors, read_artifact
from pretrain.config import layer_options
from pretrain.holdout import split_holdout
from pretrain.schema import fraction, layer_sizes, positive_int
from pretrain.data import fit_scaling
from pretrain.layers import LAYER_KINDS
from pretrain.training import meta_stack, threads_for

LAYER_CHOICES = ("top", "all")
CHUNK_SIZE = 4096  # rows encoded at a time: bounds the memory of encoding a large data set


class FeatureError(StrataError, ValueError):
    """Bad input to the feature extractor: a StrataError for strata's commands, a ValueError for scikit-learn's."""


class AllCodes(nn.Module):
    """Every layer's codes side by side, lowest layer first: the `layers="all"` features as one output."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.encoder.codes(x), dim=1)


def check_layers(layers) -> str:
    if layers not in LAYER_CHOICES:
        raise FeatureError(f"layers={layers!r} is not one of {', '.join(LAYER_CHOICES)}")
    return layers


def feature_module(encoder: Encoder, layers: str = "top") -> nn.Module:
    """The module mapping raw inputs to features: the encoder itself (top codes) or `AllCodes` around it."""
    return encoder if check_layers(layers) == "top" else AllCodes(encoder)


@torch.no_grad()
def compute_codes(encoder: Encoder, x, layers: str = "top", chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """Features of the raw inputs `x` (array or tensor, one example per row), `chunk_size` rows at a time.

    Computed in the encoder's dtype; the input is copied chunk by chunk, never modified.
    """
    module = feature_module(encoder, layers)
    dtype = encoder.preprocess.shift.dtype
    chunks = [module(torch.tensor(np.asarray(x[i : i + chunk_size]), dtype=dtype))
              for i in range(0, max(len(x), 1), chunk_size)]
    return torch.cat(chunks)


class EncoderTransformer(TransformerMixin, BaseEstimator):
    """Codes of a greedily pretrained stacked autoencoder as features.

    Parameters:
        pretrained: path of an artifact folder. When given, `fit` only checks the input width and loads the
            weights; the training parameters below must then stay at their defaults.
        layers: "top" (the top layer's codes) or "all" (every layer's codes side by side, lowest first).
        sizes: hidden layer sizes h1..hL to pretrain (when `pretrained` is None).
        kind, activation, tied, loss, corruption, noise, sparsity, target, sparsity_weight, wta_rate:
            the autoencoder variant, as in conf/autoencoder/ (e.g. corruption="mask", noise=0.25: denoising).
        optimizer, lr, weight_decay, epochs, batch_size: each layer's training (epochs per layer).
        end_to_end_epochs, end_to_end_lr: optional end-to-end training of the unrolled autoencoder afterwards.
        holdout, patience: holdout > 0 holds that fraction of X out of pretraining, and each layer stops once its
            reconstruction of it has not improved for `patience` epochs, keeping its best epoch (pretrain.holdout).
        scaling, pixel_max: preprocessing fitted on the training inputs ("unit": x / pixel_max, or x / max(x)
            when pixel_max is None; "standard": per-feature zero mean, unit variance; "none").
        random_state: int seed of initialisation, batch order and corruption (None: drawn from numpy's global
            generator). Pretraining with seed s repeats `python -m pretrain seed=s` on the same data.
        threads: torch's CPU threads while pretraining: "auto" (one for small stacks, whose matrix products are
            too small to split; torch's default otherwise), None (torch's default) or a number. Restored afterwards.
        accelerator: Lightning accelerator for pretraining ("auto": a GPU where there is one; "cpu", "gpu");
            `transform` runs on the CPU.
        verbose: show Lightning's progress bar while pretraining.

    Fitted attributes: `n_features_in_` (and `feature_names_in_` for data frames), `layer_specs_` and
    `weights_` (artifact-style layer descriptions and CPU tensors), `metrics_` (pretraining's per-layer
    reconstruction, or the artifact's recorded metrics).
    """

    def __init__(self, pretrained=None, *, layers="top", sizes=(64,), kind="deterministic", activation="sigmoid",
                 tied=False, loss="auto", corruption="none", noise=0.0, sparsity="none", target=0.05,
                 sparsity_weight=0.0, wta_rate=None, optimizer="adam", lr=1e-3, weight_decay=0.0, epochs=10,
                 batch_size=64, end_to_end_epochs=0, end_to_end_lr=None, holdout=0.0, patience=5,
                 scaling="standard", pixel_max=None,
                 random_state=0, threads="auto", accelerator="auto", verbose=False):
        self.pretrained = pretrained
        self.layers = layers
        self.sizes = sizes
        self.kind = kind
        self.activation = activation
        self.tied = tied
        self.loss = loss
        self.corruption = corruption
        self.noise = noise
        self.sparsity = sparsity
        self.target = target
        self.sparsity_weight = sparsity_weight
        self.wta_rate = wta_rate
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.end_to_end_epochs = end_to_end_epochs
        self.end_to_end_lr = end_to_end_lr
        self.holdout = holdout
        self.patience = patience
        self.scaling = scaling
        self.pixel_max = pixel_max
        self.random_state = random_state
        self.threads = threads
        self.accelerator = accelerator
        self.verbose = verbose

    # -- scikit-learn's protocol ---------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit(self, X, y=None):
        """Load the artifact (`pretrained` given) or pretrain a stack on X; y is ignored (unsupervised)."""
        check_layers(self.layers)
        X = validate_data(self, X, dtype=(np.float64, np.float32))
        if self.pretrained is not None:
            self._load_artifact(X.shape[1])
        else:
            self._pretrain(X)
        return self

    def transform(self, X):
        """Codes of X: float64 (float32 for float32 input), one row per row of X."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        codes = compute_codes(self.to_encoder().double(), X, self.layers)
        return codes.numpy().astype(X.dtype, copy=False)

    def score(self, X, y=None) -> float:
        """Negative reconstruction error in the raw input space, higher is better:
        -mean_i sum_j (x_ij - x^_ij)^2, x^ the unrolled autoencoder's reconstruction (decoders needed)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        if not all(spec.get("decoder", False) for spec in self.layer_specs_):
            raise FeatureError(f"pretrained={self.pretrained}: holds an encoder only (no decoder weights), "
                               "so there is no reconstruction error to score")
        model = autoencoder_from_tensors(self.layer_specs_, self.weights_).double()
        total = 0.0
        for i in range(0, len(X), CHUNK_SIZE):
            x = torch.tensor(X[i : i + CHUNK_SIZE], dtype=torch.float64)
            total += float(((x - model.reconstruct(x)) ** 2).sum())
        return -total / len(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """`layer{k}_{j}`: unit j of layer k (1 = lowest), for the layers that `layers` selects."""
        check_is_fitted(self)
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            if hasattr(self, "feature_names_in_") and not np.array_equal(input_features, self.feature_names_in_):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(input_features) != self.n_features_in_:
                raise ValueError(f"input_features should have length equal to number of features "
                                 f"({self.n_features_in_}), got {len(input_features)}")
        sizes = [spec["n_hidden"] for spec in self.layer_specs_]
        chosen = range(len(sizes) - 1, len(sizes)) if self.layers == "top" else range(len(sizes))
        return np.asarray([f"layer{k + 1}_{j}" for k in chosen for j in range(sizes[k])], dtype=object)

    # -- the fitted encoder --------------------------------------------------------------------
    def to_encoder(self) -> Encoder:
        """The fitted encoder as a `pretrain.Encoder` (float32, eval mode): for export or another torch model."""
        check_is_fitted(self)
        return encoder_from_tensors(self.layer_specs_, self.weights_)

    def save(self, path) -> Path:
        """Write the fitted model as a strata artifact (never overwriting one), loadable by `pretrain.load_encoder`."""
        check_is_fitted(self)
        config = {"source": f"{type(self).__module__}.{type(self).__name__}", "params": self.get_params()}
        if all(spec.get("decoder", False) for spec in self.layer_specs_):
            model = autoencoder_from_tensors(self.layer_specs_, self.weights_)
            return save_autoencoder(model, path, config=config, metrics=self.metrics_)
        return save_encoder(self.to_encoder(), path, config=config, metrics=self.metrics_)

    # -- fitting -------------------------------------------------------------------------------
    def _load_artifact(self, width: int) -> None:
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items() if name != "self"}
        ignored = {"pretrained", "layers", "threads", "accelerator", "verbose"}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if name not in ignored and _plain(value) != _plain(defaults[name])]
        if changed:
            raise FeatureError(f"pretrained={self.pretrained} is given, so the training parameter(s) {', '.join(changed)} "
                               "would have no effect (leave them at their defaults, or set pretrained=None to train)")
        description, tensors = read_artifact(self.pretrained)
        for key in ("preprocess.shift", "preprocess.scale"):
            if key not in tensors:
                raise FeatureError(f"pretrained={self.pretrained}: tensor {key} is missing from its weights")
        input_dim = tensors["preprocess.shift"].shape[0]
        if width != input_dim:
            raise FeatureError(f"pretrained={self.pretrained}: the encoder takes {input_dim} features per example, "
                               f"but X has {width} (data of another width than the encoder was trained on?)")
        self.layer_specs_ = list(description["layers"])
        self.weights_ = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        self.metrics_ = description.get("metrics", {})

    def _pretrain(self, X: np.ndarray) -> None:
        sizes = layer_sizes(self.sizes, "sizes")
        epochs = positive_int(self.epochs, "epochs")
        batch_size = positive_int(self.batch_size, "batch_size")
        end_to_end_epochs = positive_int(self.end_to_end_epochs, "end_to_end_epochs", allow_zero=True)
        holdout, patience = fraction(self.holdout, "holdout"), positive_int(self.patience, "patience")
        autoencoder = {"kind": self.kind, "activation": self.activation, "tied": self.tied, "loss": self.loss,
                       "corruption": self.corruption, "noise": self.noise, "sparsity": self.sparsity,
                       "target": self.target, "sparsity_weight": self.sparsity_weight, "wta_rate": self.wta_rate}
        options = layer_options(autoencoder, {"optimizer": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay})
        if LAYER_KINDS[self.kind].top_only:
            raise FeatureError(f"kind={self.kind!r} is a generative top layer with options of its own: pretrain it with "
                               f"`python -m pretrain autoencoder={self.kind}` and wrap the artifact, EncoderTransformer(pretrained=...)")
        seed = self._seed()
        x = torch.tensor(X, dtype=torch.float32)
        shift, scale = fit_scaling(x, self.scaling, self.pixel_max)  # on every row, as the command does
        x, held_out = split_holdout(x, holdout, seed)
        with threads_for(meta_stack([X.shape[1], *sizes]), self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # corruption draws from torch's generator: seed it; fork_rng restores it
            result = pretrain_stack(
                x, shift, scale, sizes, options, epochs=epochs, batch_size=batch_size,
                trainer_options={"accelerator": self.accelerator, "enable_progress_bar": bool(self.verbose)},
                seed=seed, end_to_end_epochs=end_to_end_epochs, end_to_end_lr=self.end_to_end_lr,
                holdout=held_out, patience=patience)
        model = result.model
        self.layer_specs_ = [layer.spec() for layer in model.layers]
        self.weights_ = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        self.metrics_ = result.metrics

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.randint(2**31 - 1))
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        raise FeatureError(f"random_state={self.random_state!r} is not an integer seed or None")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
