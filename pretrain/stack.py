"""Greedy layer-wise pretraining, and the unrolled deep autoencoder it builds.

Layer k (of a kind in `pretrain.layers`) is fitted on the codes of the trained layers 1..k-1, which are computed
once when layer k-1 is done and kept in memory or, when they do not fit, on disk (`pretrain.codes`).
An optional end-to-end stage then trains the whole stack, encoder and mirrored decoder, on the data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
from torch import nn

from .checkpoint import NoCheckpoints, RunCheckpoints
from .codes import GreedyCodes
from .data import BatchLoader
from .encoder import Encoder, Preprocess
from .errors import StrataError
from .holdout import BestHoldoutEpoch
from .layers import LAYER_KINDS, EpochMeans, Layer, reconstruction_loss, stack_layer_options
from .optimizers import make_optimizer
from .rows import Rows, Scaled, in_unit_interval
from .training import make_trainer


class DeepAutoencoder(EpochMeans):
    """Preprocessing, the encoder stack and its mirror image as decoder.

    `embed(x)` gives deterministic codes of raw inputs, `reconstruct(x)` their reconstruction in the raw
    space; `encoder()` the feature extractor alone. The `layers` are the greedy stage's own modules.
    """

    def __init__(self, preprocess: Preprocess, layers: list[Layer], optimizer: str = "adam",
                 lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        self.preprocess = preprocess
        self.layers = nn.ModuleList(layers)
        self.optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay}

    def encode_preprocessed(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer.encode(h)
        return h

    def decode_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Down the mirrored decoder; the last (lowest) layer's output is left as logits (or values, for MSE)."""
        for layer in list(self.layers)[:0:-1]:
            h = layer.output(layer.decode_logits(h))
        return self.layers[0].decode_logits(h)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_preprocessed(self.preprocess(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x))

    @torch.no_grad()
    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Top-layer codes -> the whole mirrored decoder -> the raw input space."""
        x_hat = self.layers[0].output(self.decode_logits(h))
        return x_hat * self.preprocess.scale + self.preprocess.shift

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n new examples in the raw input space: codes from a generative top layer's prior, decoded."""
        top = self.layers[-1]
        if not top.generative:
            raise StrataError(f"sampling needs a generative top layer (autoencoder=vae or adversarial), this one is {top.kind!r}")
        return self.decode(top.sample_prior(n, torch.Generator().manual_seed(seed) if seed is not None else None))

    def encoder(self) -> Encoder:
        """The feature extractor, sharing this model's encoder weights."""
        return Encoder(self.preprocess, [layer.encoder for layer in self.layers], [layer.activation for layer in self.layers])

    # -- end-to-end training on preprocessed inputs --------------------------------------------
    def training_step(self, x, batch_idx):
        bottom = self.layers[0]
        logits = self.decode_logits(self.encode_preprocessed(bottom.corrupt(x)))
        recon = reconstruction_loss(logits, x, bottom.loss_kind)
        self.track(recon, len(x))
        return recon

    def configure_optimizers(self):
        return make_optimizer(self.parameters(), **self.optim)


@dataclass
class StackResult:
    model: DeepAutoencoder
    metrics: dict = field(default_factory=dict)


@torch.no_grad()
def encode_in_chunks(layer: Layer, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The layer's codes of all of `x`, written chunk by chunk into one tensor (no second copy to concatenate)."""
    layer.eval()
    first = layer.encode(x[:chunk])
    codes = first.new_empty((len(x), *first.shape[1:]))
    codes[: len(first)] = first
    for i in range(chunk, len(x), chunk):
        codes[i : i + chunk] = layer.encode(x[i : i + chunk])
    return codes


def release(module: pl.LightningModule, loader: BatchLoader) -> None:
    """Let go of a finished stage's data: the module drops its Trainer, and the loader, which the Trainer's
    reference cycles keep alive until a full garbage collection, drops the stage's inputs (a whole copy of
    the data or of the codes), so they are freed as soon as pretraining no longer needs them."""
    module.trainer = None
    loader.tensors = ()


def on_device(x) -> torch.device:
    return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")  # memory-mapped rows are read on the CPU


def on_trainer_device(x, trainer):
    """A tensor moved to the trainer's device once; memory-mapped rows stay where they are, read by batch."""
    return x.to(trainer.strategy.root_device) if isinstance(x, torch.Tensor) else x


def preprocessed(x_raw, preprocess: Preprocess):
    """The preprocessed inputs: a whole tensor for data in memory, a per-batch view of memory-mapped rows."""
    return Scaled(x_raw, preprocess) if isinstance(x_raw, Rows) else preprocess(x_raw)


def pretrain_stack(x_raw: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, sizes: list[int], layer_options: dict,
                   epochs: int, batch_size: int, trainer_options: dict | None = None, seed: int = 0,
                   end_to_end_epochs: int = 0, end_to_end_lr: float | None = None, log_dir: str | None = None,
                   checkpoints: RunCheckpoints | None = None, codes: str = "memory", codes_dir=None,
                   codes_dtype: str = "float32", holdout: torch.Tensor | None = None, patience: int = 5) -> StackResult:
    """Pretrain layers of `sizes` greedily on `x_raw` (training inputs only), then optionally end to end.

    `layer_options` are the layer class's keyword arguments plus its `kind`; `loss="auto"` picks binary cross-entropy for
    a layer whose inputs lie in [0, 1] and squared error otherwise. `checkpoints` (pretrain.checkpoint) saves each stage
    as it trains, and in a resumed run loads the finished layers and continues the stage that was in training.
    `x_raw` is a tensor or memory-mapped `Rows` (read and preprocessed by batch); `codes` ("memory", "disk", "auto",
    see pretrain.codes) says where each layer's codes are kept, `codes_dir` the folder for those on disk.
    `holdout` (raw inputs not in `x_raw`, see pretrain.holdout) stops each greedy layer once its reconstruction of
    them has not improved for `patience` epochs, and keeps its best epoch.
    """
    checkpoints = checkpoints or NoCheckpoints()
    greedy_codes = GreedyCodes(codes, codes_dir, codes_dtype)
    try:
        return _pretrain_stack(x_raw, shift, scale, sizes, layer_options, epochs, batch_size, trainer_options, seed,
                               end_to_end_epochs, end_to_end_lr, log_dir, checkpoints, greedy_codes, holdout, patience)
    finally:
        greedy_codes.close()


@dataclass
class Stages:
    """How every stage of a stack is trained: the trainer's settings, the logs, the checkpoints and the batches.

    `fit` trains one module (a greedy layer, or the whole model end to end) and returns what the run records of
    it; with checkpoints, a resumed stage goes on from its last finished epoch."""

    trainer_options: dict | None
    log_dir: str | None
    checkpoints: RunCheckpoints | NoCheckpoints
    batch_size: int

    def fit(self, module: pl.LightningModule, inputs, epochs: int, stage: str, label: str, seed: int,
            throughput: bool = True, stopping: BestHoldoutEpoch | None = None):
        """(the record of the stage, with its samples per second if `throughput`; `inputs` where it trained: on the
        trainer's device, where they stay). `stopping` may end the stage before `epochs`."""
        ckpt_path = self.checkpoints.resume_from(stage, module)
        extra = self.checkpoints.trainer_args(stage)
        if stopping is not None:  # before the epoch checkpoint, which then saves its state of the same epoch
            extra["callbacks"] = [stopping, *extra.get("callbacks", [])]
        trainer = make_trainer(self.trainer_options, epochs, label, self.log_dir, self.checkpoints.log_version(stage),
                               **extra)
        inputs = on_trainer_device(inputs, trainer)
        started = time.perf_counter()
        loader = BatchLoader(inputs, batch_size=self.batch_size, seed=seed)
        trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
        seconds = time.perf_counter() - started
        release(module, loader)
        start = self.checkpoints.started_at(stage)  # > 0: resumed at this epoch, and `seconds` covers the epochs after it
        record = {"recon_per_epoch": module.history, "recon": module.history[-1] if module.history else None,
                  "seconds": seconds}
        if throughput:
            trained = epochs if stopping is None else len(stopping.losses)
            record["samples_per_second"] = (trained - start) * len(inputs) / seconds if seconds else None
        if stopping is not None:
            record.update(epochs_trained=len(stopping.losses), **stopping.record())
        return {**record, **({"resumed_at_epoch": start} if start else {}), **module.curve_metrics()}, inputs


def new_layer(options: dict, inputs, n_hidden: int, init_seed: int) -> Layer:
    """A layer of `options["kind"]`; `loss="auto"` is binary cross-entropy for inputs in [0, 1], else squared error."""
    options = dict(options)
    layer_class = LAYER_KINDS[options.pop("kind", "deterministic")]
    if options.get("loss", "auto") == "auto":
        options["loss"] = "bce" if in_unit_interval(inputs) else "mse"
    return layer_class(inputs.shape[1], n_hidden, init_seed=init_seed, **options)


def _pretrain_stack(x_raw, shift, scale, sizes, layer_options, epochs, batch_size, trainer_options, seed,
                    end_to_end_epochs, end_to_end_lr, log_dir, checkpoints, greedy_codes, holdout, patience) -> StackResult:
    stages = Stages(trainer_options, log_dir, checkpoints, batch_size)
    preprocess = Preprocess(shift, scale)
    inputs, layers, per_layer = preprocessed(x_raw, preprocess), [], []  # each layer's inputs are freed once its codes exist
    held_out = None if holdout is None else preprocess(holdout)  # then each layer's codes of them, like `inputs`
    for k, (n_hidden, options) in enumerate(zip(sizes, stack_layer_options(layer_options, len(sizes)))):
        # corruption noise and sampling draw from torch's global generator, seeded for each stage: same seed, same
        # run, and a resumed stage draws what it would have drawn in an uninterrupted run
        torch.manual_seed(seed * 1000 + k)
        layer = new_layer(options, inputs, n_hidden, init_seed=seed * 1000 + k)
        stage = f"layer{k + 1}"
        finished = checkpoints.finished(stage, layer)  # a resumed run loads a finished layer instead of training it
        if finished is None:
            label = f"layer {k + 1}/{len(sizes)} ({inputs.shape[1]}->{n_hidden}, {layer.loss_kind})"
            stopping = None if held_out is None else BestHoldoutEpoch(held_out, patience, batch_size)
            record, inputs = stages.fit(layer, inputs, epochs, stage, label, seed=seed * 1000 + k, stopping=stopping)
            finished = {"layer": k + 1, "n_in": inputs.shape[1], "n_hidden": n_hidden, "loss": layer.loss_kind, **record}
            checkpoints.save_finished(stage, layer, finished)
        per_layer.append(finished)
        if k + 1 < len(sizes):  # the top layer's codes feed nothing here
            inputs = greedy_codes(layer.to(on_device(inputs)), inputs, encode_in_chunks, stage)
            if held_out is not None:
                held_out = encode_in_chunks(layer.to(held_out.device), held_out)
            layer.cpu()  # (Lightning moves a fitted module to the CPU; the codes are computed where the inputs are)
        layers.append(layer)

    model = DeepAutoencoder(preprocess, layers, optimizer=layer_options.get("optimizer", "adam"),
                            lr=end_to_end_lr or layer_options.get("lr", 1e-3), weight_decay=layer_options.get("weight_decay", 0.0))
    metrics = {"layers": per_layer}
    if "disk" in greedy_codes.placed:
        metrics["codes"] = {"placed": greedy_codes.placed, "dtype": str(greedy_codes.dtype)}
    if end_to_end_epochs > 0:
        torch.manual_seed(seed * 1000 + len(sizes))
        module = layers[-1].end_to_end(model)  # a generative top trains the whole model with its own objective
        x = preprocessed(x_raw, preprocess)  # again: cheaper than keeping a copy through the greedy stage
        metrics["end_to_end"], _ = stages.fit(module, x, end_to_end_epochs, "end_to_end",
                                              f"end-to-end ({len(sizes)} layers)", seed=seed * 1000 + len(sizes),
                                              throughput=False)
    model.eval()
    return StackResult(model, metrics)
