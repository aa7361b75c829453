"""finetune.ladder: mode ladder trains the pretrained encoder as a Ladder network and gives back a plain classifier
whose predictions are those of its evaluation pass."""
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import denoising_artifact
from finetune.classifier import Classifier, head_for
from finetune.ladder import LadderClassifier
from finetune.run import build_encoder, finetune_once
from pretrain import StrataError, load_encoder
from pretrain.config import CONF_DIR

QUIET = {"enable_progress_bar": False}


@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    return denoising_artifact(digits, tmp_path_factory.mktemp("ladder") / "encoder", [32, 16], epochs=3)


def options(**changes) -> dict:
    base = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "finetune" / "default.yaml"))
    return {**base, "mode": "ladder", "epochs": 4, "steps": 120, "min_passes": None, "lr": 0.003,
            "unlabeled": {**base["unlabeled"], "batch_size": 64}, **changes}


def trained_steps(model: LadderClassifier, x: torch.Tensor, steps: int, labeled=None) -> None:
    """`steps` Adam steps on the denoising costs (and on a labeled batch, where given), outside Lightning."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    torch.manual_seed(0)
    for _ in range(steps):
        loss = sum(w * c for w, c in zip(model.cost_weights, model.denoising_costs(x[torch.randint(len(x), (64,))])))
        if labeled is not None:
            loss = loss + torch.nn.functional.cross_entropy(model.encode(model.encoder.preprocess(labeled[0]), model.noise)[0], labeled[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_the_denoising_costs_fall_at_every_layer(digits, artifact):
    model = LadderClassifier(load_encoder(artifact), digits.num_classes, weights=[1000, 10, 0.1])  # the paper's: every layer
    x = digits.x_train

    def costs():
        torch.manual_seed(1)
        model.train()
        with torch.no_grad():
            return torch.stack(model.denoising_costs(x[:512]))

    before = costs()
    assert len(before) == 4  # the input, two encoder layers, the head
    assert (before[1:] >= 0.99).all()  # ^z = 0 at the start: at least z's variance, 1 (the rest from mu_l / sigma_l)
    trained_steps(model, x, 150)
    after = costs()
    assert (after < 0.7 * before).all(), (before, after)


def test_folded_classifier_predicts_as_the_ladders_evaluation_pass(digits, artifact):
    model = LadderClassifier(load_encoder(artifact), digits.num_classes, weights=[1.0, 1.0, 0.1])
    trained_steps(model, digits.x_train, 30, labeled=(digits.x_train[:50], digits.y_train[:50]))
    model.eval()
    folded = model.folded()
    assert type(folded) is Classifier and folded.mode == "ladder"
    assert all(isinstance(block[0], torch.nn.Linear) for block in folded.encoder.layers)
    x = digits.x_train[:300]
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4)
        model.train()  # normalised by a batch's own statistics, the logits differ: evaluation uses the running ones
        assert not torch.allclose(model.encode(model.encoder.preprocess(x[:5]))[0], folded(x[:5]), atol=1e-2)


def test_ladder_mode_trains_the_encoder_and_reports_its_mode(digits, artifact):
    pretrained = load_encoder(artifact)
    start = build_encoder("ladder", digits, pretrained, [], [], seed=0)
    model, metrics = finetune_once(digits, start, options(), QUIET, seed=0)
    assert type(model) is Classifier and metrics["mode"] == "ladder" and metrics["steps"] == 120
    assert not torch.equal(model.encoder.linears[0].weight, pretrained.linears[0].weight)
    assert 0.4 < metrics["test"]["accuracy"] <= 1  # digits, chance 0.1 (unfrozen gets about 0.57 from these 120 steps)
    again = finetune_once(digits, build_encoder("ladder", digits, pretrained, [], [], seed=0), options(), QUIET, seed=0)[1]
    assert again["test"] == metrics["test"]  # the same seed, the same numbers


def test_ladder_needs_a_linear_head_and_weights(digits, artifact):
    # finetune.head=auto (the default) gives the ladder its linear top layer and every other mode an MLP head
    assert head_for("ladder", "auto") == "linear" and head_for("semisup", "auto") == head_for("frozen", "auto") == "mlp"
    assert head_for("ladder", "mlp") == "mlp"  # an explicit choice is kept, and refused just below
    with pytest.raises(StrataError, match="finetune.mode=ladder needs finetune.head=linear"):
        LadderClassifier(load_encoder(artifact), digits.num_classes, head="mlp")
    model = LadderClassifier(load_encoder(artifact), digits.num_classes, weights=[5.0, 2.0])
    assert model.cost_weights == [5.0, 2.0, 2.0, 2.0]  # the last weight repeats up to the head


def test_the_saved_ladder_classifier_gives_back_its_test_figures(digits, artifact, tmp_path):
    from hydra import compose, initialize_config_dir

    from finetune import run_finetuning
    from finetune.classifier import load_classifier

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("finetune", overrides=[f"pretrained={artifact}", "finetune.mode=ladder", "data.labels=50",
                                             "finetune.steps=40", "finetune.min_passes=null", "finetune.epochs=2",
                                             "save_encoder=true",
                                             "trainer.enable_progress_bar=false"])
    metrics = run_finetuning(cfg, tmp_path)
    with torch.no_grad():
        predicted = load_classifier(tmp_path)(digits.x_test).argmax(dim=1)
    assert (predicted == digits.y_test).float().mean().item() == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert metrics["mode"] == "ladder" and metrics["labels"] == 50 and metrics["steps"] == 40


def test_the_python_api_fits_a_ladder(digits, artifact):
    import finetune

    x, y = digits.x_train[:300].numpy(), digits.y_train[:300].numpy()
    clf = finetune.fit(str(artifact), x, y, mode="ladder", steps=20, min_passes=None, epochs=2, ladder={"noise": 0.2})
    assert clf.mode == "ladder" and clf.metrics["steps"] == 20
    assert clf.predict(x[:7]).shape == (7,)
