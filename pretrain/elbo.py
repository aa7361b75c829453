"""The negative ELBO of data under a stack with a VAE top: how well the generative model explains held-out inputs."""
from __future__ import annotations

import torch

from .errors import StrataError
from .layers.end_to_end import deep_route
from .layers.objectives import gaussian_kl, negative_log_likelihood, reparameterize
from .layers.variational import VariationalLayer


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
