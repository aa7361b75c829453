"""Greedy layer-wise pretraining: layer k is fitted on layer k-1's codes; the deep autoencoder it builds;
the end-to-end stage; same seed, same numbers."""
import pytest
import torch

from pretrain import DeepAutoencoder, pretrain_stack
from pretrain.config import layer_options
from pretrain.layers import reconstruction_loss


def stack(config, digits, sizes=(32, 16), variant="plain", epochs=2, callbacks=(), seed=0, batches=5, **kwargs):
    cfg = config(f"autoencoder={variant}", "trainer=fast", f"trainer.limit_train_batches={batches}")
    trainer = {**cfg["trainer"], "callbacks": list(callbacks)}
    return pretrain_stack(digits.x_train, digits.shift, digits.scale, list(sizes), layer_options(cfg["autoencoder"], cfg["model"]),
                          epochs=epochs, batch_size=64, trainer_options=trainer, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def greedy(config, digits, fit_recorder):
    """A 64-32-16 stack, with the inputs each layer's fit was given."""
    recorder = fit_recorder()
    result = stack(config, digits, callbacks=[recorder], batches=1.0)  # every batch of the 2 epochs
    return result, recorder.inputs


def test_layer_k_is_fitted_on_the_codes_of_layer_k_minus_1(greedy, digits_x):
    result, inputs = greedy
    first, second = result.model.layers
    assert len(inputs) == 2
    assert torch.equal(inputs[0], digits_x)  # layer 1: the preprocessed data
    assert (second.n_in, first.n_hidden) == (32, 32)
    with torch.no_grad():
        assert torch.allclose(inputs[1], first.encode(digits_x))  # layer 2: layer 1's codes of the same data


def test_second_layer_reconstructs_first_layer_codes_best(greedy, digits_x):
    """What layer 2 learnt is layer 1's code distribution: it reconstructs those codes better than inputs of the
    same shape and range that are not layer-1 codes."""
    result, _ = greedy
    first, second = result.model.layers
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        codes = first.encode(digits_x)
        shuffled = codes[:, torch.randperm(codes.shape[1], generator=g)]  # same values, units permuted
        uniform = torch.rand(codes.shape, generator=g)
        loss = {name: reconstruction_loss(second.decode_logits(second.encode(h)), h, second.loss_kind).item()
                for name, h in (("codes", codes), ("shuffled", shuffled), ("uniform", uniform))}
    assert loss["codes"] < 0.9 * min(loss["shuffled"], loss["uniform"]), loss
    assert second.loss_kind == "bce"  # sigmoid codes lie in [0, 1], so "auto" chose cross-entropy


def test_deep_autoencoder_embeds_and_reconstructs_in_raw_space(greedy, digits):
    model: DeepAutoencoder = greedy[0].model
    x = digits.x_train[:50]
    codes = model.embed(x)
    assert codes.shape == (50, 16)
    with torch.no_grad():
        assert torch.equal(model.encoder()(x), codes)
        first, second = model.layers
        h = second.encode(first.encode((x - digits.shift) / digits.scale))
        assert torch.allclose(codes, h)
        x_hat = model.reconstruct(x)
        assert x_hat.shape == x.shape
        assert 0 <= x_hat.min() and x_hat.max() <= 16  # sigmoid outputs, scaled back to digits' pixel range 0..16
        expected = torch.sigmoid(first.decode_logits(torch.sigmoid(second.decode_logits(h)))) * 16
        assert torch.allclose(x_hat, expected, atol=1e-5)


def test_per_layer_metrics(greedy):
    result, _ = greedy
    layers = result.metrics["layers"]
    assert [m["n_in"] for m in layers] == [64, 32] and [m["n_hidden"] for m in layers] == [32, 16]
    assert all(len(m["recon_per_epoch"]) == 2 and m["recon"] == m["recon_per_epoch"][-1] for m in layers)
    assert all(m["recon_per_epoch"][1] < m["recon_per_epoch"][0] for m in layers)


def test_end_to_end_stage_lowers_the_deep_reconstruction_error(config, digits, digits_x):
    def deep_error(model):
        with torch.no_grad():
            logits = model.decode_logits(model.encode_preprocessed(digits_x))
            return reconstruction_loss(logits, digits_x, "bce").item()

    greedy_only = stack(config, digits, epochs=3)
    tuned = stack(config, digits, epochs=3, end_to_end_epochs=3)
    assert len(tuned.metrics["end_to_end"]["recon_per_epoch"]) == 3
    assert deep_error(tuned.model) < deep_error(greedy_only.model)


def test_same_seed_same_numbers_other_seed_other_numbers(config, digits):
    a, b = (stack(config, digits, variant="denoising", epochs=1).model.state_dict() for _ in range(2))
    c = stack(config, digits, variant="denoising", epochs=1, seed=1).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.encoder.weight"], c["layers.0.encoder.weight"])
