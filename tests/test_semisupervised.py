"""finetune.semisupervised: the semisup mode trains on labeled and unlabeled batches, its decoder included."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from finetune.run import build_encoder, finetune_once
from finetune.semisupervised import PairedBatches, SemiSupervisedClassifier
from conftest import denoising_artifact
from pretrain import StrataError, load_autoencoder, load_encoder
from pretrain.config import CONF_DIR

QUIET = {"enable_progress_bar": False}


def options(**unlabeled) -> dict:
    base = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "finetune" / "default.yaml"))
    return {**base, "mode": "semisup", "epochs": 8, "lr": 0.003, "dropout": 0.2,
            "unlabeled": {**base["unlabeled"], "batch_size": 64, **unlabeled}}


@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    return denoising_artifact(digits, tmp_path_factory.mktemp("semisup") / "encoder", [32, 16], epochs=3)


def train(digits, artifact, seed=0, **unlabeled):
    start = build_encoder("semisup", digits, load_autoencoder(artifact), [], [], seed=seed)
    return finetune_once(digits, start, options(**unlabeled), QUIET, seed=seed)


def test_paired_batches_cycle_the_labels_over_one_pass_of_the_unlabeled_pool():
    x, y, u = torch.arange(10.0)[:, None], torch.arange(10), torch.arange(1000.0)[:, None]
    batches = list(PairedBatches(x, y, u, batch_size=4, unlabeled_batch_size=100, seed=0))
    assert len(batches) == len(PairedBatches(x, y, u, 4, 100, 0)) == 10
    assert all(len(xb) == len(yb) <= 4 and len(ub) == 100 for (xb, yb), ub in batches)
    assert torch.equal(torch.cat([ub for _, ub in batches]).flatten().sort().values, u.flatten())  # each once
    assert torch.equal(torch.cat([xb for (xb, _), _ in batches]).flatten().unique(), x.flatten())  # all labels used
    assert len(PairedBatches(x, y, u, 4, 100, 0, min_batches=25)) == 25  # both cycled to min_batches steps


def test_paired_batches_shrink_the_unlabeled_batch_when_the_labels_need_more_steps():
    x, y, u = torch.arange(400.0)[:, None], torch.arange(400), torch.arange(1000.0)[:, None]
    batches = list(PairedBatches(x, y, u, batch_size=10, unlabeled_batch_size=100, seed=0))
    assert len(batches) == 40  # one pass over the 400 labels at 10 a step, not 10 steps of the unlabeled pool
    assert all(len(ub) == 25 for _, ub in batches)
    assert torch.equal(torch.cat([xb for (xb, _), _ in batches]).flatten().sort().values, x.flatten())  # each label once
    assert torch.equal(torch.cat([ub for _, ub in batches]).flatten().sort().values, u.flatten())  # each input once


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
    assert a["val"] == b["val"] and a["test"] == b["test"]


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
])
def test_bad_unlabeled_options_are_named(digits, artifact, field, value, message):
    start = build_encoder("semisup", digits, load_autoencoder(artifact), [], [], seed=0)
    with pytest.raises(StrataError, match=message):
        finetune_once(digits, start, options(**{field: value}), QUIET)
