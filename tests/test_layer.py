"""The autoencoder variants of conf/autoencoder/, composed by Hydra from the real files, and their mechanisms:
each lowers its reconstruction loss on digits, tied weights are one parameter, winner-take-all keeps exactly
the top k per unit, KL sparsity pulls the mean activation toward its target."""
import math
import re
from pathlib import Path

import pytest
import torch

from pretrain import StrataError, pretrain_stack
from pretrain.config import CONF_DIR, layer_options
from pretrain.layers import LAYER_KINDS, AutoencoderLayer, reconstruction_loss
from pretrain.regularizers import kl_sparsity, winner_take_all

GENERATIVE = ("vae", "adversarial")  # tested in test_generative.py
VARIANTS = sorted(p.stem for p in (Path(CONF_DIR) / "autoencoder").glob("*.yaml") if p.stem not in GENERATIVE)

# What each variant's file must switch on, beyond plain.yaml's sigmoid units with their own decoder weights.
EXPECTED = {
    "plain": {"activation": "sigmoid", "tied": False, "corruption": "none", "sparsity": "none", "wta_rate": None},
    "linear": {"activation": "linear", "loss_kind": "mse"},
    "tied": {"tied": True},
    "denoising": {"corruption": "mask"},
    "gaussian": {"corruption": "gaussian"},
    "sparse_kl": {"sparsity": "kl", "activation": "sigmoid"},
    "sparse_l1": {"sparsity": "l1"},
    "wta": {"activation": "relu", "wta_rate": 0.05},
}


def options(config, variant: str, *overrides: str) -> tuple[dict, dict]:
    """(the layer options, the whole resolved config) of `autoencoder=<variant>`."""
    cfg = config(f"autoencoder={variant}", "trainer=fast", "trainer.limit_train_batches=1.0", *overrides)
    return layer_options(cfg["autoencoder"], cfg["model"]), cfg


def train(config, digits, variant, *overrides, sizes=(32,), epochs=3, callbacks=()):
    layer_opts, cfg = options(config, variant, *overrides)
    trainer = {**cfg["trainer"], "callbacks": list(callbacks)}
    return pretrain_stack(digits.x_train, digits.shift, digits.scale, list(sizes), layer_opts, epochs=epochs,
                          batch_size=cfg["model"]["batch_size"], trainer_options=trainer, seed=0)


def test_every_variant_file_is_tested():
    assert set(VARIANTS) == set(EXPECTED), "a variant in conf/autoencoder/ without an entry here, or the reverse"


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_lowers_its_reconstruction_loss(variant, config, digits, digits_x, fit_recorder):
    def objective(layer):
        """The training objective's reconstruction term on all the data, with the same noise each time."""
        torch.manual_seed(0)
        with torch.no_grad():
            return layer.losses(digits_x)[1].item()

    recorder = fit_recorder(objective)
    layer = train(config, digits, variant, callbacks=[recorder]).model.layers[0]
    for name, value in EXPECTED[variant].items():
        assert getattr(layer, name) == value, f"autoencoder={variant}: {name}"
    before, after = recorder.start[0], recorder.end[0]
    assert after < 0.95 * before, f"autoencoder={variant}: reconstruction loss {before:.2f} -> {after:.2f}"
    assert layer.history[-1] < layer.history[0]  # and the per-epoch training curve goes down


def test_tied_decoder_is_the_encoder_weight_transposed(config, digits_x):
    def layer(variant):
        opts, _ = options(config, variant)
        opts.pop("kind")
        return AutoencoderLayer(64, 16, **{**opts, "loss": "bce"})

    tied, untied = layer("tied"), layer("plain")
    assert tied.decoder_weight is None
    assert tied.decoder_matrix.data_ptr() == tied.encoder.weight.data_ptr()  # the same storage, not a copy
    assert torch.equal(tied.decoder_matrix, tied.encoder.weight.t())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == 64 * 16
    # a training step moves the encoder, and the decoder with it
    before = tied.encoder.weight.detach().clone()
    optimizer = torch.optim.SGD(tied.parameters(), lr=0.1)
    tied.losses(digits_x)[0].backward()
    optimizer.step()
    assert not torch.equal(tied.encoder.weight, before)
    assert torch.equal(tied.decoder_matrix, tied.encoder.weight.t())


@pytest.mark.parametrize("batch, units, rate", [(100, 7, 0.05), (64, 10, 0.05), (10, 3, 0.01), (16, 4, 1.0), (33, 5, 0.3)])
def test_winner_take_all_keeps_exactly_the_top_k_per_unit(batch, units, rate):
    h = torch.rand(batch, units, generator=torch.Generator().manual_seed(batch)) + 0.1  # positive, distinct
    out = winner_take_all(h, rate)
    k = math.ceil(round(rate * batch, 9))  # 0.05 * 100 is 5.000000000000001 in floating point: k is 5
    for j in range(units):
        kept = torch.nonzero(out[:, j]).flatten()
        assert len(kept) == k
        assert set(kept.tolist()) == set(h[:, j].topk(k).indices.tolist())
        assert torch.equal(out[kept, j], h[kept, j])  # winners pass unchanged
        assert out[:, j].min() >= 0 and (out[:, j] == 0).sum() == batch - k


def test_winner_take_all_applies_in_training_only(config, digits_x):
    opts, _ = options(config, "wta")
    opts.pop("kind")
    layer = AutoencoderLayer(64, 40, **{**opts, "loss": "bce"}, init_seed=0)
    codes = layer.encode(digits_x[:100])
    assert (codes > 0).sum(dim=0).max() > 5  # ReLU codes: many units active on more than 5 of 100 examples
    with torch.no_grad():  # the reconstruction (inference) uses the dense codes
        assert torch.allclose(layer(digits_x[:100]), torch.sigmoid(layer.decode_logits(codes)))
        sparse = winner_take_all(codes, 0.05)
        expected = reconstruction_loss(layer.decode_logits(sparse), digits_x[:100], "bce")
        assert torch.allclose(layer.losses(digits_x[:100])[1], expected)


def test_kl_sparsity_pulls_the_mean_activation_toward_its_target(config, digits, digits_x, fit_recorder):
    target = config("autoencoder=sparse_kl")["autoencoder"]["target"]

    def distance(layer):
        """Mean over units of |rho_hat_j - target|, rho_hat_j unit j's mean activation over the data."""
        with torch.no_grad():
            return (layer.encode(digits_x).mean(dim=0) - target).abs().mean().item()

    distances = {}
    for weight in (0.0, None, 3.0):  # None: the weight conf/autoencoder/sparse_kl.yaml sets
        recorder = fit_recorder(distance)
        train(config, digits, "sparse_kl", *([f"autoencoder.sparsity_weight={weight}"] if weight is not None else []),
              epochs=10, callbacks=[recorder])
        distances[weight] = (recorder.start[0], recorder.end[0])
    start = distances[0.0][0]
    assert all(d[0] == start for d in distances.values())  # one initialisation for all three
    assert distances[None][1] < start  # the config's weight moves it toward the target ...
    assert distances[None][1] < distances[0.0][1]  # ... further than training without the penalty does
    assert distances[3.0][1] < distances[None][1]
    assert distances[3.0][1] < 0.5 * start  # a strong weight goes most of the way


def test_kl_sparsity_is_zero_at_the_target_and_grows_away_from_it():
    at_target = torch.full((50, 8), 0.05)
    assert kl_sparsity(at_target, 0.05).item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < kl_sparsity(torch.full((50, 8), 0.1), 0.05) < kl_sparsity(torch.full((50, 8), 0.5), 0.05)


@pytest.mark.parametrize("override, message", [
    ("autoencoder.activation=swish", "autoencoder.activation='swish'"),
    ("autoencoder.noise=1.5", "autoencoder.noise=1.5"),
    ("autoencoder.wta_rate=0", "autoencoder.wta_rate=0"),
    ("autoencoder.tied=maybe", "autoencoder.tied='maybe'"),
    ("+autoencoder.hidden=3", "autoencoder.hidden is not an option"),
    ("autoencoder.kind=nope", "autoencoder.kind='nope'"),
])
def test_bad_layer_options_name_the_field(override, message, config):
    with pytest.raises(StrataError, match=re.escape(message)):
        opts, _ = options(config, "denoising", override)
        LAYER_KINDS[opts.pop("kind")](64, 8, **{**opts, "loss": "bce"})


def test_sparse_kl_needs_sigmoid_units(config):
    opts, _ = options(config, "sparse_kl", "autoencoder.activation=relu")
    with pytest.raises(StrataError, match="sparsity=kl needs activation=sigmoid"):
        LAYER_KINDS[opts.pop("kind")](64, 8, **{**opts, "loss": "bce"})
