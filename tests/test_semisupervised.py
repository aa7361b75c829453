"""finetune.semisupervised: the semisup mode trains on labeled and unlabeled batches, its decoder included."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from finetune.run import build_encoder, finetune_once
from finetune.batches import PairedBatches
from finetune.semisupervised import SemiSupervisedClassifier
from conftest import denoising_artifact
from pretrain import StrataError, load_autoencoder, load_encoder
from pretrain.config import CONF_DIR

QUIET = {"enable_progress_bar": False}


def options(**unlabeled) -> dict:
    base = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "finetune" / "default.yaml"))
    return {**base, "mode": "semisup", "epochs": 8, "steps": 160, "min_passes": None, "schedule": "constant",
            "lr": 0.003, "dropout": 0.2, "unlabeled": {**base["unlabeled"], "batch_size": 64, **unlabeled}}


@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    return denoising_artifact(digits, tmp_path_factory.mktemp("semisup") / "encoder", [32, 16], epochs=3)


def train(digits, artifact, seed=0, **unlabeled):
    start = build_encoder("semisup", digits, load_autoencoder(artifact), [], [], seed=seed)
    return finetune_once(digits, start, options(**unlabeled), QUIET, seed=seed)


def test_paired_batches_give_as_many_steps_as_asked_cycling_the_few_labels():
    x, y, u = torch.arange(10.0)[:, None], torch.arange(10), torch.arange(1000.0)[:, None]
    batches = list(PairedBatches(x, y, u, batch_size=4, unlabeled_batch_size=100, steps=10, seed=0))
    assert len(batches) == len(PairedBatches(x, y, u, 4, 100, 10, 0)) == 10
    assert all(len(xb) == len(yb) == 4 and len(ub) == 100 for (xb, yb), ub in batches)
    assert torch.equal(torch.cat([ub for _, ub in batches]).flatten().sort().values, u.flatten())  # each once
    labels = torch.cat([yb for (_, yb), _ in batches])
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 4))  # 40 draws: four passes of ten
    assert all(torch.equal(xb[:, 0].long(), yb) for (xb, yb), _ in batches)  # inputs stay with their labels


def test_semisup_trains_encoder_head_and_decoder_and_reports_its_mode(digits, artifact):
    pretrained = load_autoencoder(artifact)
    model, metrics = train(digits, artifact, reconstruction=0.01, consistency=1.0)
    assert isinstance(model, SemiSupervisedClassifier) and metrics["mode"] == "semisup"
    for before, after in zip(pretrained.layers, model.autoencoder.layers):
        assert not torch.equal(before.encoder.weight, after.encoder.weight)
        assert not torch.equal(before.decoder_weight, after.decoder_weight)
    assert model.encoder.linears[0] is model.autoencoder.layers[0].encoder  # one set of encoder weights
    assert 0.6 < metrics["test"]["accuracy"] <= 1  # digits (chance 0.1), after eight short epochs
    assert metrics["trainable_parameters"] == sum(p.numel() for p in model.parameters())


def test_without_a_reconstruction_cost_the_decoder_does_not_move(digits, artifact):
    pretrained = load_autoencoder(artifact)
    model, _ = train(digits, artifact, reconstruction=0.0, consistency=1.0)
    for before, after in zip(pretrained.layers, model.autoencoder.layers):
        assert torch.equal(before.decoder_weight, after.decoder_weight)
        assert not torch.equal(before.encoder.weight, after.encoder.weight)


def test_the_same_seed_gives_the_same_numbers(digits, artifact):
    a, b = (train(digits, artifact, reconstruction=0.01)[1] for _ in range(2))
    assert a["test"] == b["test"] and a["steps"] == b["steps"] == 160


def test_the_adversarial_perturbation_has_the_relative_radius_and_finds_a_sensitive_direction(digits, artifact):
    torch.manual_seed(0)
    model = SemiSupervisedClassifier(load_autoencoder(artifact), 10, torch.ones(10), radius=0.3)
    x = model.encoder.preprocess(digits.unlabeled()[:200])
    with torch.no_grad():
        target = F.softmax(model.clean_logits(x), dim=1)
    r = model.adversarial_perturbation(x, target)
    assert torch.allclose(r.norm(dim=1), 0.3 * x.norm(dim=1), rtol=1e-4)
    with torch.no_grad():
        adversarial = model.divergence(x + r, target)
        random = [model.divergence(x + 0.3 * x.norm(dim=1, keepdim=True) * F.normalize(torch.randn_like(x), dim=1), target)
                  for _ in range(5)]
    assert adversarial > 3 * max(random), (adversarial, random)


def test_the_power_iteration_finds_the_most_sensitive_direction_of_a_finite_difference_hessian():
    """VAT's direction is the top eigenvector of the Hessian of KL(p(x) || p(x + r)) at r = 0. On a small network the
    Hessian is estimated by central finite differences of that divergence in float64; the power iteration, with
    its probe of norm xi |x| in float32, must find its top eigenvector."""
    torch.manual_seed(0)
    from pretrain.encoder import Encoder
    encoder = Encoder.random(torch.zeros(6), torch.ones(6), [8, 5], ["tanh", "tanh"], seed=3)
    autoencoder = denoising_autoencoder_like(encoder)
    model = SemiSupervisedClassifier(autoencoder, 4, torch.ones(4), radius=0.1, power_iterations=30)
    x = torch.rand(1, 6) + 0.5
    with torch.no_grad():
        target = F.softmax(model.clean_logits(x), dim=1)
        f = lambda r: float(model.double().divergence(x.double() + r, target.double()))  # noqa: E731
        h, eye = 1e-3, torch.eye(6, dtype=torch.float64)
        hessian = torch.tensor([[(f(h * (eye[i] + eye[j])) - f(h * (eye[i] - eye[j])) - f(h * (eye[j] - eye[i]))
                                  + f(-h * (eye[i] + eye[j]))) / (4 * h * h) for j in range(6)] for i in range(6)])
        model.float()
    top = torch.linalg.eigh(hessian).eigenvectors[:, -1]
    r = model.adversarial_perturbation(x, target.float())
    cosine = float(F.cosine_similarity(r.double(), top[None], dim=1).abs())
    assert cosine > 0.99, cosine
    assert torch.allclose(r.norm(dim=1), 0.1 * x.norm(dim=1), rtol=1e-4)


def denoising_autoencoder_like(encoder):
    """A DeepAutoencoder over `encoder`'s weights (its decoders untrained): what SemiSupervisedClassifier takes."""
    from pretrain.layers import AutoencoderLayer
    from pretrain.stack import DeepAutoencoder
    layers = []
    for linear, activation in zip(encoder.linears, encoder.activations):
        layer = AutoencoderLayer(linear.in_features, linear.out_features, activation=activation, loss="mse")
        layer.encoder.load_state_dict(linear.state_dict())
        layers.append(layer)
    return DeepAutoencoder(encoder.preprocess, layers)


def test_semisup_needs_the_decoder(digits, artifact):
    with pytest.raises(StrataError, match="semisup needs a pretrained autoencoder with its decoder.*an encoder only"):
        build_encoder("semisup", digits, load_encoder(artifact), [], [], seed=0)
    with pytest.raises(StrataError, match="semisup trains the whole autoencoder: finetune.depth=1"):
        build_encoder("semisup", digits, load_autoencoder(artifact), [], [], seed=0, depth=1)


@pytest.mark.parametrize("field, value, message", [
    ("corruption", "salt", "finetune.unlabeled.corruption='salt' is not one of mask, gaussian"),
    ("noise", 1.0, "finetune.unlabeled.noise=1.0 is not a masking probability"),
    ("consistency", -1, "finetune.unlabeled.consistency=-1 is not a number >= 0"),
    ("batch_size", 0, "finetune.unlabeled.batch_size=0 is not a positive integer"),
    ("radius", -0.1, "finetune.unlabeled.radius=-0.1 is not a number >= 0"),
    ("xi", 0.0, "finetune.unlabeled.xi=0.0 is not a probe norm in \\(0, 1\\)"),
    ("rampup", -0.5, "finetune.unlabeled.rampup=-0.5 is not a fraction of the steps"),
])
def test_bad_unlabeled_options_are_named(digits, artifact, field, value, message):
    start = build_encoder("semisup", digits, load_autoencoder(artifact), [], [], seed=0)
    with pytest.raises(StrataError, match=message):
        finetune_once(digits, start, options(**{field: value}), QUIET)
