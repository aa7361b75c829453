"""Generative top layers (pretrain.layers): the VAE's math, training on digits, sampling, artifacts, bad options."""
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.distributions import Normal, kl_divergence

from pretrain import StrataError, load_autoencoder, load_encoder, pretrain_stack, save_autoencoder
from pretrain.elbo import negative_elbo
from pretrain.layers import AdversarialLayer, VariationalLayer, stack_layer_options
from pretrain.layers.objectives import gaussian_kl, negative_log_likelihood, reparameterize

FAST = {"enable_progress_bar": False}


def options(kind: str, **extra) -> dict:
    """A generative top over deterministic sigmoid layers, as conf/autoencoder/{vae,adversarial}.yaml compose it."""
    return {"kind": kind, "loss": "auto", "below": {"kind": "deterministic", "activation": "sigmoid", "loss": "auto"},
            "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, **extra}


def train(digits, kind, sizes=(32, 2), epochs=8, end_to_end_epochs=8, seed=0, trainer=FAST, **extra):
    pl.seed_everything(seed, verbose=False)
    return pretrain_stack(digits.x_train, digits.shift, digits.scale, list(sizes), options(kind, **extra), epochs=epochs,
                          batch_size=64, trainer_options=trainer, seed=seed, end_to_end_epochs=end_to_end_epochs)


@pytest.fixture(scope="module")
def vae(digits):
    return train(digits, "vae", warmup_epochs=2)


@pytest.fixture(scope="module")
def aae(digits):
    return train(digits, "adversarial")


# -- the math ----------------------------------------------------------------------------------
def test_gaussian_kl_matches_its_closed_form():
    mu = torch.tensor([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)], [0.0, 0.0, 0.0]])
    # 1/2 (sigma^2 + mu^2 - 1 - log sigma^2) per unit
    by_hand = 0.5 * ((1 + 1 - 1 - 0) + (4 + 0 - 1 - math.log(4)) + (0.25 + 4 - 1 - math.log(0.25)))
    kl = gaussian_kl(mu, logvar)
    assert kl[0].item() == pytest.approx(by_hand, rel=1e-6)
    assert kl[1].item() == 0.0  # the prior itself
    reference = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(kl, reference)


def test_reparameterised_samples_have_the_posterior_moments_and_gradients():
    mu = torch.tensor([[2.0, -1.0]], requires_grad=True)
    logvar = torch.tensor([[math.log(9.0), math.log(0.01)]], requires_grad=True)
    z = reparameterize(mu.expand(20000, 2), logvar.expand(20000, 2), torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([2.0, -1.0]), atol=0.06, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([3.0, 0.1]), atol=0.05, rtol=0)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None and torch.all(logvar.grad != 0)


def test_gaussian_likelihood_is_the_unit_variance_normal_log_density():
    x, x_hat = torch.randn(5, 7), torch.randn(5, 7)
    expected = -Normal(x_hat, 1.0).log_prob(x).sum(dim=1)
    torch.testing.assert_close(negative_log_likelihood(x_hat, x, "mse"), expected)


def test_kl_weight_warms_up_linearly_to_beta():
    layer = VariationalLayer(8, 2, beta=2.0, warmup_epochs=4)
    assert [layer.kl_weight(p) for p in (0, 1, 2, 4, 10)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    assert VariationalLayer(8, 2, beta=0.5).kl_weight(0) == 0.5


# -- training on digits ------------------------------------------------------------------------
def test_vae_elbo_decreases_greedily_and_end_to_end(vae, digits):
    top, deep = vae.metrics["layers"][-1], vae.metrics["end_to_end"]
    for curve in (top["neg_elbo_per_epoch"], deep["neg_elbo_per_epoch"]):
        assert all(math.isfinite(v) for v in curve)
        assert curve[-1] < curve[0]
    assert all(kl >= 0 for kl in deep["kl_per_epoch"])
    # the trained model's -ELBO on the data beats the same architecture untrained
    trained = negative_elbo(vae.model, digits.x_train)
    untrained = train(digits, "vae", epochs=1, end_to_end_epochs=0, trainer={**FAST, "limit_train_batches": 1})
    assert trained < negative_elbo(untrained.model, digits.x_train) - 5
    assert trained == pytest.approx(deep["neg_elbo"], abs=2.0)  # evaluation agrees with the last epoch's training mean


def test_embed_is_the_deterministic_posterior_mean(vae, digits):
    model, x = vae.model, digits.x_train[:50]
    first, second = model.embed(x), model.embed(x)
    assert torch.equal(first, second)
    below = model.layers[0].encode(model.preprocess(x))
    torch.testing.assert_close(first, model.layers[-1].posterior(below)[0])
    torch.testing.assert_close(model.encoder()(x), first)  # the exported feature extractor gives the means


@pytest.mark.parametrize("which", ["vae", "aae"])
def test_samples_have_the_inputs_shape_and_range(which, request, digits):
    model = request.getfixturevalue(which).model
    samples = model.sample(40, seed=3)
    assert samples.shape == (40, digits.x_train.shape[1])
    assert samples.min() >= 0 and samples.max() <= 16  # digits' pixels lie in [0, 16]
    assert samples.std(dim=0).mean() > 0.1  # different codes give different images
    assert torch.equal(samples, model.sample(40, seed=3))
    assert not torch.equal(samples, model.sample(40, seed=4))


def test_adversarial_autoencoder_trains_without_diverging(aae):
    top, deep = aae.metrics["layers"][-1], aae.metrics["end_to_end"]
    for stage in (top, deep):
        for name in ("recon_per_epoch", "d_loss_per_epoch", "g_loss_per_epoch"):
            assert all(math.isfinite(v) for v in stage[name]), name
    assert top["recon_per_epoch"][-1] < top["recon_per_epoch"][0]
    assert deep["recon_per_epoch"][-1] < deep["recon_per_epoch"][0]
    assert all(0 < d < 5 for d in top["d_loss_per_epoch"])  # log 4 = 1.39 at the game's equilibrium


def test_adversary_pulls_the_codes_toward_the_prior(digits):
    """With the adversarial term the codes' means and spreads lie closer to N(0, I) than without it."""

    def distance_to_prior(weight):
        z = train(digits, "adversarial", sizes=(32, 4), end_to_end_epochs=0, adversarial_weight=weight).model.embed(digits.x_train)
        return float((z.mean(0) ** 2).sum() + (z.std(0).log() ** 2).sum())

    assert distance_to_prior(1.0) < 0.5 * distance_to_prior(0.0)


def test_same_seed_same_numbers(digits):
    fast = {**FAST, "limit_train_batches": 3}
    runs = [train(digits, kind, epochs=2, end_to_end_epochs=1, trainer=fast) for kind in ("vae", "vae", "adversarial", "adversarial")]
    assert runs[0].metrics["end_to_end"]["neg_elbo_per_epoch"] == runs[1].metrics["end_to_end"]["neg_elbo_per_epoch"]
    assert runs[2].metrics["layers"][-1]["d_loss_per_epoch"] == runs[3].metrics["layers"][-1]["d_loss_per_epoch"]
    assert torch.equal(runs[2].model.sample(5, seed=0), runs[3].model.sample(5, seed=0))


# -- artifacts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("which, cls", [("vae", VariationalLayer), ("aae", AdversarialLayer)])
def test_artifact_round_trip(which, cls, request, digits, tmp_path):
    model = request.getfixturevalue(which).model
    path = save_autoencoder(model, tmp_path / which)
    loaded = load_autoencoder(path)
    assert isinstance(loaded.layers[-1], cls)
    x = digits.x_train[:20]
    assert torch.equal(loaded.embed(x), model.embed(x))
    assert torch.equal(loaded.sample(8, seed=1), model.sample(8, seed=1))
    assert torch.equal(load_encoder(path)(x), model.embed(x))


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("build, field", [
    (lambda: VariationalLayer(8, 2, beta=-1.0), "autoencoder.beta"),
    (lambda: VariationalLayer(8, 2, warmup_epochs=-2), "autoencoder.warmup_epochs"),
    (lambda: VariationalLayer(8, 2, prior="cauchy"), "autoencoder.prior"),
    (lambda: VariationalLayer(8, 2, loss="hinge"), "autoencoder.loss"),
    (lambda: AdversarialLayer(8, 2, disc_hidden=0), "autoencoder.disc_hidden"),
    (lambda: AdversarialLayer(8, 2, adversarial_weight=-1), "autoencoder.adversarial_weight"),
    (lambda: AdversarialLayer(8, 2, disc_lr=0), "autoencoder.disc_lr"),
    (lambda: stack_layer_options({**options("vae"), "below": {"kind": "vae"}}, 2), "autoencoder.below.kind"),
    (lambda: stack_layer_options({**options("vae"), "below": None}, 2), "autoencoder.below"),
    (lambda: stack_layer_options({"kind": "deterministic", "below": {}}, 2), "autoencoder.below"),
])
def test_bad_options_name_the_field(build, field):
    with pytest.raises(StrataError, match=field.replace(".", r"\.")):
        build()


def test_generative_kind_is_the_top_layer_only():
    per_layer = stack_layer_options(options("vae", beta=2.0), 3)
    assert [o["kind"] for o in per_layer] == ["deterministic", "deterministic", "vae"]
    assert all(o["lr"] == 3e-3 for o in per_layer)  # the optimizer settings reach the layers below too
    assert "beta" not in per_layer[0] and per_layer[2]["beta"] == 2.0
    assert [o["kind"] for o in stack_layer_options(options("vae"), 1)] == ["vae"]


def test_sampling_needs_a_generative_top(digits):
    model = pretrain_stack(digits.x_train, digits.shift, digits.scale, [4], {"kind": "deterministic"}, epochs=1,
                           batch_size=256, trainer_options={**FAST, "limit_train_batches": 1}).model
    with pytest.raises(StrataError, match="generative top layer"):
        model.sample(3)
    with pytest.raises(StrataError, match="VAE top layer"):
        negative_elbo(model, digits.x_train[:5])
