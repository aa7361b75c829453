"""Pretraining from Python, without Hydra's app: `pretrain.fit(x, layers=[...], autoencoder="denoising")`.

The defaults are the command's: the autoencoder is an option of conf/autoencoder/, the schedule conf/model/stack.yaml,
and the batch size and scaling those of your own data (conf/data/npz.yaml), so that `fit(x)` trains what
`strata pretrain data=npz` trains on the same inputs, number for number. Nothing of the process changes: torch's
random generator and thread count are restored, no warning filter or log level is left behind.
"""
from __future__ import annotations


import numpy as np
import torch

from .config import epochs_for_steps, layer_options
from .data import choose_scaling, fit_scaling
from .errors import StrataError
from .holdout import split_holdout
from .schema import fraction, layer_sizes, positive_int, positive_number
from .options import group_option
from .process import kept_random_state
from .stack import DeepAutoencoder, pretrain_stack
from .training import meta_stack, threads_for

MODEL, NPZ = group_option("model", "stack"), group_option("data", "npz")


def as_inputs(x, name: str = "x") -> tuple[torch.Tensor, bool]:
    """Raw inputs as a float32 tensor, one row per example (images flattened), and whether they were integers."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if array.ndim < 2 or len(array) == 0 or array.size == 0:
        raise StrataError(f"{name} has shape {array.shape}: expected one row per example (n, d), n and d at least 1")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise StrataError(f"{name} has dtype {array.dtype} (expected real numbers)")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise StrataError(f"{name} holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
    integers = not np.issubdtype(array.dtype, np.floating)
    return torch.as_tensor(np.ascontiguousarray(array.reshape(len(array), -1)), dtype=torch.float32), integers


def fit(x, layers=MODEL["layers"], autoencoder: str = "denoising", *, epochs=MODEL["epochs"], steps: int = MODEL["steps"],
        batch_size: int = NPZ["batch_size"], optimizer: str = MODEL["optimizer"], lr: float = MODEL["lr"],
        weight_decay: float = MODEL["weight_decay"], end_to_end_epochs: int = MODEL["end_to_end_epochs"],
        end_to_end_lr: float | None = MODEL["end_to_end_lr"], holdout: float = MODEL["holdout"], patience: int = MODEL["patience"],
        scaling: str = NPZ["scaling"], pixel_max: float | None = None,
        seed: int = 0, accelerator: str = "auto", threads="auto", progress: bool = False, log_dir: str | None = None,
        **options) -> DeepAutoencoder:
    """Pretrain a stacked autoencoder greedily on the rows of `x` (array or tensor, raw units) and return it.

    `autoencoder` is a variant of conf/autoencoder/ (plain, denoising, sparse_kl, wta, vae, ...); `**options`
    override its fields (noise=0.3, activation="sigmoid", ...). `epochs` per layer, or "auto": as many as make
    `steps` updates of each layer. `scaling`: auto (integers to [0, 1], other floats standardised), unit, standard,
    none. `holdout` > 0: that fraction of the rows is held out and each layer stops on its reconstruction of them
    after `patience` epochs without improvement (pretrain.holdout). `log_dir`: write Lightning's CSV logs there. The result's `metrics` hold each layer's reconstruction
    loss per epoch; `model.encoder()` is the feature extractor, `pretrain.save_autoencoder` writes the artifact.
    """
    inputs, integers = as_inputs(x)
    sizes = layer_sizes(list(layers) if not isinstance(layers, (int, str)) else layers, "layers")
    variant = group_option("autoencoder", autoencoder)
    unknown = [k for k in options if k not in variant]
    if unknown:
        raise StrataError(f"{unknown[0]} is not an option of autoencoder={autoencoder} (its options: {', '.join(sorted(variant))})")
    layer_opts = layer_options({**variant, **options}, {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay})
    seed = positive_int(seed, "seed", allow_zero=True)
    batch_size = positive_int(batch_size, "batch_size")
    holdout = fraction(holdout, "holdout")
    patience = positive_int(patience, "patience")
    end_to_end_epochs = positive_int(end_to_end_epochs, "end_to_end_epochs", allow_zero=True)
    end_to_end_lr = None if end_to_end_lr is None else positive_number(end_to_end_lr, "end_to_end_lr")
    if scaling == "auto":
        scaling, _ = choose_scaling(inputs, integers)
    shift, scale = fit_scaling(inputs, scaling, pixel_max)  # on every row, as the command does
    inputs, held_out = split_holdout(inputs, holdout, seed)
    epochs = epochs_for_steps(positive_int(steps, "steps"), len(inputs), batch_size) if epochs == "auto" else positive_int(epochs, "epochs")
    dims = [inputs.shape[1], *sizes]
    with threads_for(meta_stack(dims), threads), kept_random_state():
        result = pretrain_stack(inputs, shift, scale, sizes, layer_opts, epochs=epochs, batch_size=batch_size,
                                trainer_options={"accelerator": accelerator, "enable_progress_bar": bool(progress)},
                                seed=seed, end_to_end_epochs=end_to_end_epochs, end_to_end_lr=end_to_end_lr, log_dir=log_dir,
                                holdout=held_out, patience=patience)
    result.model.metrics = result.metrics
    return result.model
