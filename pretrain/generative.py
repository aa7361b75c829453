"""Generative top layers: the variational autoencoder (Kingma and Welling 2014) and the adversarial autoencoder
(Makhzani et al. 2015), each the last layer of a stack whose lower layers are deterministic.

Variational (kind "vae"), per code unit j a Gaussian posterior:

    mu = W x + b            (the `encoder`: the deterministic code, activation "linear")
    logvar = V x + d        (the `logvar` head)
    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)                        (reparameterisation)
    KL(q(z|x) || N(0, I)) = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)
    -ELBO = -log p(x|z) + KL                                              (per example, in nats)
    loss  = -log p(x|z) + beta_t KL,   beta_t = beta * min(1, epochs done / warmup_epochs)

-log p(x|z) is binary cross-entropy (a Bernoulli decoder) for inputs in [0, 1], else the Gaussian negative
log-likelihood with unit variance, 1/2 ||x - x_hat||^2 + d/2 log(2 pi).

Adversarial (kind "adversarial"): a deterministic code z = W x + b; a small discriminator D learns to tell
codes from samples of the prior p(z), and the encoder learns to reconstruct and to fool D, alternately:

    D step:        L_D = BCE(D(z_prior), 1) + BCE(D(z), 0)            (z held fixed)
    encoder step:  L   = recon(x_hat, x) + adversarial_weight * BCE(D(z), 1)

In a stack (`autoencoder=vae` or `=adversarial`), the generative kind is the top layer, the last of
`model.layers`; the layers below it are built from the options under `below` (conf/autoencoder/vae.yaml).
End-to-end training (`model.end_to_end_epochs`) then applies the top layer's own objective to the whole
model in the data space: `EndToEnd`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import StrataError
from .layer import LAYER_KINDS, LOSSES, TracksReconstruction, glorot_, make_optimizer, reconstruction_loss, register_layer
from .regularizers import CORRUPTIONS, corrupt

PRIORS = ("normal", "uniform")


# -- the math ----------------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example: 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I): a sample whose gradient reaches mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator).to(mu) if generator is not None else torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps


def negative_log_likelihood(logits_or_values: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """-log p(x | z) per example, in nats: Bernoulli (from logits) for "bce", unit-variance Gaussian for "mse"."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits_or_values, x, reduction="none").sum(dim=1)
    d = x.shape[1]
    return 0.5 * ((logits_or_values - x) ** 2).sum(dim=1) + 0.5 * d * math.log(2 * math.pi)


def discriminator_loss(d_prior: torch.Tensor, d_codes: torch.Tensor) -> torch.Tensor:
    """BCE of the discriminator's logits: prior samples are labelled 1, the encoder's codes 0."""
    return (F.binary_cross_entropy_with_logits(d_prior, torch.ones_like(d_prior))
            + F.binary_cross_entropy_with_logits(d_codes, torch.zeros_like(d_codes)))


def fooling_loss(d_codes: torch.Tensor) -> torch.Tensor:
    """The encoder's adversarial loss, -log D(z) (the non-saturating form): its codes should be taken for prior samples."""
    return F.binary_cross_entropy_with_logits(d_codes, torch.ones_like(d_codes))


# -- bookkeeping -------------------------------------------------------------------------------
class TracksCurves(TracksReconstruction):
    """`history` (reconstruction), plus `curves`: the per-epoch means of further named losses, logged by name.

    Like the reconstruction, the sums stay on the device and are read once per epoch.
    """

    def __init__(self):
        super().__init__()
        self.curves: dict[str, list[float]] = {}
        self._curve_sums: dict[str, torch.Tensor] = {}
        self._curve_count = 0

    def track_curves(self, n: int, **values: torch.Tensor) -> None:
        for name, value in values.items():
            total = value.detach().float() * n
            self._curve_sums[name] = total if name not in self._curve_sums else self._curve_sums[name] + total
        self._curve_count += n

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._curve_sums, self._curve_count = {}, 0

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if not self._curve_sums:
            return
        names = list(self._curve_sums)
        device = self._curve_sums[names[0]].device
        stats = torch.stack([*(self._curve_sums[k] for k in names), torch.tensor(float(self._curve_count), device=device)])
        if self.trainer.world_size > 1:
            stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        for name, total in zip(names, stats[:-1]):
            mean = float(total / stats[-1])
            self.curves.setdefault(name, []).append(mean)
            self.log(name, mean, prog_bar=name in ("neg_elbo", "d_loss"))

    def curve_metrics(self) -> dict:
        """`<name>_per_epoch` and the last value `<name>` of every curve, for metrics.json."""
        out = {}
        for name, values in self.curves.items():
            out[f"{name}_per_epoch"] = values
            out[name] = values[-1] if values else None
        return out


class Route(NamedTuple):
    """How a training objective reaches the top layer's code and comes back: for the layer alone, its own input and
    decoder; end to end, the layers below and the whole mirrored decoder, down to the data."""
    corrupt: Callable[[torch.Tensor], torch.Tensor]        # inputs -> (corrupted) inputs
    below: Callable[[torch.Tensor], torch.Tensor]          # inputs -> the top layer's input
    decode_logits: Callable[[torch.Tensor], torch.Tensor]  # codes -> logits ("bce") or values ("mse") of the target
    loss_kind: str


def epoch_progress(module, batch_idx: int) -> float:
    """Epochs done so far in this stage, fractional (for the KL warm-up)."""
    batches = module.trainer.num_training_batches
    return module.current_epoch + (batch_idx / batches if batches and math.isfinite(batches) else 0.0)


# -- the layers --------------------------------------------------------------------------------
class GenerativeLayer(TracksCurves):
    """What both generative kinds share: a linear code, an untied decoder, a prior to sample codes from.

    It is only ever the top layer of a stack (`top_only`); `encode` is deterministic (the mean, for the VAE).
    """

    top_only = True
    activation = "linear"
    tied = False

    def __init__(self, n_in: int, n_hidden: int, loss: str = "bce", corruption: str = "none", noise: float = 0.0,
                 prior: str = "normal", optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 init_seed: int | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise StrataError(f"autoencoder.loss={loss!r} is not one of auto, {', '.join(LOSSES)}")
        if corruption not in CORRUPTIONS:
            raise StrataError(f"autoencoder.corruption={corruption!r} is not one of {', '.join(CORRUPTIONS)}")
        if not 0 <= noise < math.inf or (corruption == "mask" and not noise < 1):
            raise StrataError(f"autoencoder.noise={noise} is not a masking probability in [0, 1) or a standard deviation >= 0")
        if prior not in PRIORS:
            raise StrataError(f"autoencoder.prior={prior!r} is not one of {', '.join(PRIORS)}")
        self.n_in, self.n_hidden, self.loss_kind = n_in, n_hidden, loss
        self.corruption, self.noise, self.prior = corruption, noise, prior
        self.optim = {"name": optimizer, "lr": lr, "weight_decay": weight_decay}
        self.encoder = nn.Linear(n_in, n_hidden)
        self.decoder_weight = nn.Parameter(torch.empty(n_in, n_hidden))
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))

    def reset_parameters(self, seed: int | None = None) -> torch.Generator | None:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        glorot_(self.encoder.weight, self.activation, g)
        self.encoder.bias.data.zero_()
        glorot_(self.decoder_weight, self.activation, g)
        self.decoder_bias.data.zero_()
        return g

    def spec(self) -> dict:
        return {"kind": self.kind, "n_in": self.n_in, "n_hidden": self.n_hidden, "activation": self.activation,
                "tied": False, "loss": self.loss_kind, "prior": self.prior, "decoder": True}

    # -- the model -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.decoder_weight, self.decoder_bias)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.loss_kind == "bce" else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.decode_logits(self.encode(x)))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes from the prior: N(0, I), or uniform on [-1, 1]^d."""
        shape = (n, self.n_hidden)
        if self.prior == "normal":
            z = torch.randn(shape, generator=generator)
        else:
            z = torch.rand(shape, generator=generator) * 2 - 1
        return z.to(self.decoder_bias)

    def prior_quantiles(self, p: torch.Tensor) -> torch.Tensor:
        """The prior's per-unit quantiles at probabilities p (for a grid over the latent space)."""
        if self.prior == "normal":
            return torch.distributions.Normal(0.0, 1.0).icdf(p)
        return p * 2 - 1

    def own_route(self) -> Route:
        return Route(lambda x: corrupt(x, self.corruption, self.noise), lambda x: x, self.decode_logits, self.loss_kind)

    def end_to_end(self, model) -> "EndToEnd":
        """The Lightning module that trains `model` (a DeepAutoencoder with this layer on top) with this layer's objective."""
        return EndToEnd(model)

    # -- Lightning: the layer alone --------------------------------------------------------------
    def training_step(self, x, batch_idx):
        return self.fit_step(self, self.own_route(), x, batch_idx)

    def configure_optimizers(self):
        return self.make_optimizers(self.parameters(), self.optim)


@register_layer("vae")
class VariationalLayer(GenerativeLayer):
    """The VAE's encoder (mean and log-variance heads) and decoder; see the module docstring."""

    def __init__(self, n_in: int, n_hidden: int, beta: float = 1.0, warmup_epochs: float = 0, **options):
        super().__init__(n_in, n_hidden, **options)
        if not (isinstance(beta, (int, float)) and 0 <= beta < math.inf):
            raise StrataError(f"autoencoder.beta={beta!r} is not a non-negative weight of the KL term")
        if not (isinstance(warmup_epochs, (int, float)) and 0 <= warmup_epochs < math.inf):
            raise StrataError(f"autoencoder.warmup_epochs={warmup_epochs!r} is not a non-negative number of epochs")
        self.beta, self.warmup_epochs = float(beta), warmup_epochs
        self.logvar = nn.Linear(n_in, n_hidden)
        g = self.reset_parameters(options.get("init_seed"))
        glorot_(self.logvar.weight, "linear", g)
        self.logvar.bias.data.zero_()

    @classmethod
    def from_spec(cls, spec: dict) -> "VariationalLayer":
        return cls(spec["n_in"], spec["n_hidden"], loss=spec["loss"], prior=spec.get("prior", "normal"))

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | h)."""
        return self.encoder(h), self.logvar(h)

    def kl_weight(self, progress: float) -> float:
        """beta, ramped linearly from 0 over the first `warmup_epochs` epochs of a stage."""
        return self.beta if self.warmup_epochs <= 0 else self.beta * min(1.0, progress / self.warmup_epochs)

    def objective(self, route: Route, x: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        """The batch means of the training loss, -ELBO, its two terms, and the reconstruction loss as other layers report it."""
        mu, logvar = self.posterior(route.below(route.corrupt(x)))
        logits = route.decode_logits(reparameterize(mu, logvar))
        nll = negative_log_likelihood(logits, x, route.loss_kind).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return {"loss": nll + self.kl_weight(progress) * kl, "neg_elbo": nll + kl, "nll": nll, "kl": kl,
                "recon": reconstruction_loss(logits, x, route.loss_kind)}

    def fit_step(self, module, route: Route, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self.objective(route, x, epoch_progress(module, batch_idx))
        module.track(out["recon"], len(x))
        module.track_curves(len(x), neg_elbo=out["neg_elbo"], kl=out["kl"])
        return out["loss"]

    def make_optimizers(self, params, optim: dict):
        return make_optimizer(params, **optim)


@register_layer("adversarial")
class AdversarialLayer(GenerativeLayer):
    """The adversarial autoencoder's encoder, decoder and discriminator; see the module docstring.

    Trained with manual optimisation: one discriminator step, then one encoder-decoder step, per batch.
    """

    def __init__(self, n_in: int, n_hidden: int, disc_hidden: int = 64, adversarial_weight: float = 1.0,
                 disc_lr: float | None = None, **options):
        super().__init__(n_in, n_hidden, **options)
        if not (isinstance(disc_hidden, int) and disc_hidden > 0):
            raise StrataError(f"autoencoder.disc_hidden={disc_hidden!r} is not a positive number of discriminator units")
        if not (isinstance(adversarial_weight, (int, float)) and 0 <= adversarial_weight < math.inf):
            raise StrataError(f"autoencoder.adversarial_weight={adversarial_weight!r} is not a non-negative weight")
        if disc_lr is not None and not (isinstance(disc_lr, (int, float)) and 0 < disc_lr < math.inf):
            raise StrataError(f"autoencoder.disc_lr={disc_lr!r} is not a positive learning rate (or null: the model's lr)")
        self.automatic_optimization = False
        self.disc_hidden, self.adversarial_weight = disc_hidden, float(adversarial_weight)
        self.disc_lr = disc_lr
        self.discriminator = nn.Sequential(nn.Linear(n_hidden, disc_hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(disc_hidden, disc_hidden), nn.LeakyReLU(0.2), nn.Linear(disc_hidden, 1))
        g = self.reset_parameters(options.get("init_seed"))
        for lin in (m for m in self.discriminator if isinstance(m, nn.Linear)):
            glorot_(lin.weight, "relu", g)
            lin.bias.data.zero_()

    def spec(self) -> dict:
        return {**super().spec(), "disc_hidden": self.disc_hidden}

    @classmethod
    def from_spec(cls, spec: dict) -> "AdversarialLayer":
        return cls(spec["n_in"], spec["n_hidden"], loss=spec["loss"], prior=spec.get("prior", "normal"),
                   disc_hidden=spec.get("disc_hidden", 64))

    def fit_step(self, module, route: Route, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        opt_ae, opt_d = module.optimizers()
        z = self.encode(route.below(route.corrupt(x)))
        # the discriminator: prior samples against the (fixed) codes
        d_loss = discriminator_loss(self.discriminator(self.sample_prior(len(x))), self.discriminator(z.detach()))
        opt_d.zero_grad()
        module.manual_backward(d_loss)
        opt_d.step()
        # the encoder and decoder: reconstruct, and make the codes pass for prior samples
        recon = reconstruction_loss(route.decode_logits(z), x, route.loss_kind)
        g_loss = fooling_loss(self.discriminator(z))
        opt_ae.zero_grad()
        module.manual_backward(recon + self.adversarial_weight * g_loss)
        opt_ae.step()
        module.track(recon, len(x))
        module.track_curves(len(x), d_loss=d_loss, g_loss=g_loss)
        return (recon + self.adversarial_weight * g_loss + d_loss).detach()  # for the check of a diverged stage

    def make_optimizers(self, params, optim: dict):
        """[encoder-decoder optimizer, discriminator optimizer]; `params` may include the discriminator's, which go to the second."""
        disc = {id(p) for p in self.discriminator.parameters()}
        rest = [p for p in params if id(p) not in disc]
        return [make_optimizer(rest, **optim), make_optimizer(self.discriminator.parameters(), **{**optim, "lr": self.disc_lr or optim["lr"]})]


class EndToEnd(TracksCurves):
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


def deep_route(model) -> Route:
    """The Route of a whole DeepAutoencoder (preprocessed inputs): the bottom layer's corruption, the layers below the
    top, and the whole mirrored decoder."""
    layers = list(model.layers)
    bottom = layers[0]

    def below(h):
        for layer in layers[:-1]:
            h = layer.encode(h)
        return h

    return Route(lambda x: corrupt(x, bottom.corruption, bottom.noise), below, model.decode_logits, bottom.loss_kind)


# -- in a stack --------------------------------------------------------------------------------
TRAINING_OPTIONS = ("optimizer", "lr", "weight_decay")


def stack_layer_options(layer_options: dict, n_layers: int) -> list[dict]:
    """Each layer's options (its `kind` and keyword arguments) for a stack of `n_layers`.

    A generative kind is the top layer only; the layers below it take the options under `below`, with the same
    optimizer settings. Any other kind applies to every layer.
    """
    options = dict(layer_options)
    kind = options.get("kind", "deterministic")
    below = options.pop("below", None)
    if not getattr(LAYER_KINDS.get(kind), "top_only", False):
        if below is not None:
            raise StrataError(f"autoencoder.below applies under a generative top layer only (vae, adversarial), not kind={kind!r}")
        return [options] * n_layers
    if n_layers == 1:
        return [options]
    if not isinstance(below, dict):
        raise StrataError(f"autoencoder.kind={kind} with {n_layers} layers needs autoencoder.below: the options of the "
                          "deterministic layers under it (see conf/autoencoder/vae.yaml)")
    below = {**below, **{key: options[key] for key in TRAINING_OPTIONS if key in options}}
    below_kind = below.setdefault("kind", "deterministic")
    if below_kind not in LAYER_KINDS or getattr(LAYER_KINDS[below_kind], "top_only", False):
        raise StrataError(f"autoencoder.below.kind={below_kind!r}: the layers below a {kind} top must be of a kind that is "
                          f"not top-only ({', '.join(k for k, c in LAYER_KINDS.items() if not getattr(c, 'top_only', False))})")
    return [below] * (n_layers - 1) + [options]


@torch.no_grad()
def negative_elbo(model, x_raw: torch.Tensor, samples: int = 1, seed: int = 0, chunk: int = 4096) -> float:
    """-ELBO per example in nats of raw inputs under a DeepAutoencoder with a VAE top, in its preprocessed space:
    E_q[-log p(x | z)] + KL(q(z | x) || N(0, I)), the expectation estimated from `samples` draws of z per example."""
    top = model.layers[-1]
    if not isinstance(top, VariationalLayer):
        raise StrataError(f"the negative ELBO needs a VAE top layer (autoencoder.kind=vae), this model's is {top.kind!r}")
    model.eval()
    route = deep_route(model)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for start in range(0, len(x_raw), chunk):
        x = model.preprocess(x_raw[start : start + chunk])
        mu, logvar = top.posterior(route.below(x))
        nll = sum(negative_log_likelihood(route.decode_logits(reparameterize(mu, logvar, g)), x, route.loss_kind)
                  for _ in range(samples)) / samples
        total += float((nll + gaussian_kl(mu, logvar)).sum())
    return total / len(x_raw)
