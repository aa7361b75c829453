"""finetune.classifier and finetune.run: what each mode trains, freezes and starts from, on digits."""
import copy
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from finetune.classifier import Classifier
from finetune.run import build_encoder, finetune_once
from conftest import denoising_artifact
from pretrain import DigitsDataModule, StrataError, load_encoder
from pretrain.config import CONF_DIR

QUIET = {"enable_progress_bar": False}
SIZES = [16, 12, 8]  # three layers, so that partial can freeze one or two


def finetune_options(**overrides) -> dict:
    """conf/finetune/default.yaml with tiny settings: two short epochs of exactly `steps` (no min_passes floor)."""
    options = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "finetune" / "default.yaml"))
    return {**options, "epochs": 2, "steps": 8, "min_passes": None, "lr": 0.01, **overrides}


@pytest.fixture(scope="module")
def digits():
    data = DigitsDataModule(labels=50)
    data.setup()
    return data


@pytest.fixture(scope="module")
def pretrained(digits, tmp_path_factory):
    """A 64-16-12-8 denoising stack, one epoch per layer, loaded back from its artifact."""
    return load_encoder(denoising_artifact(digits, tmp_path_factory.mktemp("classifier") / "encoder", SIZES, epochs=1))


@pytest.fixture
def record(monkeypatch):
    """Records, at every training step, the train/eval flag of each encoder block and of the head, and the weights
    the model held before its first optimiser step."""
    seen = {"modes": [], "start": None}
    step = Classifier.training_step

    def recording_step(self, batch, batch_idx):
        if seen["start"] is None:
            seen["start"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
        seen["modes"].append(([b.training for b in self.encoder.layers], self.head.training))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(Classifier, "training_step", recording_step)
    return seen


def train(mode, digits, pretrained, seed=0, **overrides):
    encoder = build_encoder(mode, digits, pretrained, [], [], seed=seed)
    return finetune_once(digits, encoder, finetune_options(mode=mode, **overrides), QUIET, seed=seed)


def changed_layers(model, pretrained) -> list[bool]:
    """Per encoder layer: did any of its weights move away from the pretrained ones?"""
    return [not (torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias))
            for a, b in zip(model.encoder.linears, pretrained.linears)]


def test_frozen_leaves_every_encoder_weight_unchanged(digits, pretrained, record):
    before = copy.deepcopy(pretrained)
    model, metrics = train("frozen", digits, pretrained)
    head_before = {k[len("head."):]: v for k, v in record["start"].items() if k.startswith("head.")}
    for (name, a), b in zip(model.encoder.state_dict().items(), before.state_dict().values()):
        assert torch.equal(a, b), f"frozen mode changed encoder tensor {name}"
    assert not any(torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())  # the head did learn
    assert metrics["trainable_parameters"] == sum(p.numel() for p in model.head.parameters())
    assert all(modes == ([False] * len(SIZES), True) for modes in record["modes"])  # frozen blocks in eval mode


def test_unfrozen_changes_every_layer_and_leaves_the_pretrained_encoder_alone(digits, pretrained, record):
    before = copy.deepcopy(pretrained)
    model, metrics = train("unfrozen", digits, pretrained)
    assert changed_layers(model, before) == [True] * len(SIZES)
    assert metrics["trainable_parameters"] == metrics["parameters"]
    assert all(modes == ([True] * len(SIZES), True) for modes in record["modes"])
    for a, b in zip(pretrained.state_dict().values(), before.state_dict().values()):
        assert torch.equal(a, b)  # fine-tuning trained a private copy


@pytest.mark.parametrize("j", [1, 2])
def test_partial_freezes_exactly_the_lowest_layers(digits, pretrained, record, j):
    model, metrics = train("partial", digits, pretrained, frozen_layers=j)
    assert changed_layers(model, pretrained) == [False] * j + [True] * (len(SIZES) - j)
    frozen = sum(p.numel() for lin in pretrained.linears[:j] for p in lin.parameters())
    assert metrics["trainable_parameters"] == metrics["parameters"] - frozen
    # eval mode for the frozen blocks at every step, the second epoch (after validation switched modes) included
    assert len(record["modes"]) >= 8
    assert all(modes == ([False] * j + [True] * (len(SIZES) - j), True) for modes in record["modes"])


def test_scratch_has_the_pretrained_architecture_from_random_weights(digits, pretrained):
    scratch = Classifier(build_encoder("scratch", digits, pretrained, [], [], seed=0), digits.num_classes, mode="scratch")
    tuned = Classifier(build_encoder("unfrozen", digits, pretrained, [], [], seed=0), digits.num_classes, mode="unfrozen")
    assert str(scratch) == str(tuned)  # the same modules, layer by layer
    shapes = lambda m: [(n, tuple(p.shape)) for n, p in m.named_parameters()]  # noqa: E731
    assert shapes(scratch) == shapes(tuned)
    assert sum(p.numel() for p in scratch.parameters()) == sum(p.numel() for p in tuned.parameters())
    assert torch.equal(scratch.encoder.preprocess.scale, pretrained.preprocess.scale)
    assert not any(torch.equal(a.weight, b.weight) for a, b in zip(scratch.encoder.linears, pretrained.linears))

    # without an artifact (python -m finetune finetune.mode=scratch): the architecture comes from the config
    alone = build_encoder("scratch", digits, None, SIZES, pretrained.activations, seed=0)
    assert [tuple(p.shape) for p in alone.parameters()] == [tuple(p.shape) for p in pretrained.parameters()]
    assert torch.equal(alone.preprocess.scale, digits.scale)


def test_scratch_with_one_seed_starts_and_ends_identically(digits, pretrained, record):
    starts, finals, metrics = [], [], []
    for _ in range(2):
        record["start"] = None
        model, m = train("scratch", digits, pretrained, seed=3)
        starts.append(record["start"])
        finals.append(model.state_dict())
        metrics.append(m)
    for start in (starts, finals):
        assert start[0].keys() == start[1].keys()
        assert all(torch.equal(start[0][k], start[1][k]) for k in start[0])
    assert metrics[0]["test"] == metrics[1]["test"]

    record["start"] = None
    train("scratch", digits, pretrained, seed=4)
    assert not torch.equal(record["start"]["encoder.layers.0.0.weight"], starts[0]["encoder.layers.0.0.weight"])


@pytest.mark.parametrize("mode, trained_layers", [("unfrozen", [0, 1, 2]), ("partial", [2]), ("frozen", [])])
def test_encoder_lr_scale_gives_the_encoder_its_own_param_group(pretrained, mode, trained_layers):
    model = Classifier(copy.deepcopy(pretrained), 10, mode=mode, frozen_layers=2, lr=0.01, encoder_lr_scale=0.1)
    groups = model.configure_optimizers().param_groups
    assert groups[0]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.head.parameters()}
    encoder_params = {id(p) for k in trained_layers for p in model.encoder.layers[k].parameters()}
    if trained_layers:
        assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.001)
        assert {id(p) for p in groups[1]["params"]} == encoder_params
    else:
        assert len(groups) == 1
    # every trainable parameter is in exactly one group, no frozen one in any
    in_groups = [id(p) for g in groups for p in g["params"]]
    assert sorted(in_groups) == sorted(id(p) for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("schedule, last_lr", [("constant", 0.01), ("cosine", 0.0)])
def test_the_cosine_schedule_decays_every_rate_to_zero_over_the_epochs(digits, pretrained, schedule, last_lr):
    model, metrics = train("unfrozen", digits, pretrained, schedule=schedule, encoder_lr_scale=0.5, patience=5)
    assert metrics["epochs_run"] == 2  # the whole schedule ran
    head, encoder = model.trainer.optimizers[0].param_groups
    assert head["lr"] == pytest.approx(last_lr, abs=1e-9) and encoder["lr"] == pytest.approx(last_lr / 2, abs=1e-9)


def test_bad_modes_and_options_are_clear_errors(digits, pretrained):
    with pytest.raises(StrataError, match="finetune.mode='bogus' is not one of scratch, frozen, unfrozen, partial"):
        Classifier(copy.deepcopy(pretrained), 10, mode="bogus")
    with pytest.raises(StrataError, match="finetune.mode=.*bogus.* is not one of"):
        build_encoder("bogus", digits, None, SIZES, ["sigmoid"] * 3, seed=0)
    with pytest.raises(StrataError, match="frozen_layers < 3"):
        Classifier(copy.deepcopy(pretrained), 10, mode="partial", frozen_layers=3)
    with pytest.raises(StrataError, match="needs a pretrained encoder"):
        build_encoder("frozen", digits, None, SIZES, ["sigmoid"] * 3, seed=0)
    with pytest.raises(StrataError, match="finetune.head='conv'"):
        Classifier(copy.deepcopy(pretrained), 10, head="conv")
    for field, value in (("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("encoder_lr_scale", -1.0), ("schedule", "step")):
        with pytest.raises(StrataError, match=f"finetune.{field}="):
            train("unfrozen", digits, pretrained, **{field: value})


def test_validating_on_a_pool_chooses_an_epoch_but_leaves_the_training_as_it_was(digits, pretrained):
    """A run that scores a labeled pool after each epoch trains exactly as one without validation: its last step's test
    figures are those of the run that never saw the pool (the realistic figure), its `test` those of the epoch the
    pool chose (the classic one)."""
    from finetune.labels import labeled_subset

    runs = {}
    for val_from in ("none", "pool"):
        encoder = build_encoder("unfrozen", digits, pretrained, [], [], seed=0)
        options = finetune_options(mode="unfrozen", dropout=0.3, epochs=4, steps=16)
        runs[val_from] = finetune_once(digits, encoder, options, QUIET, seed=0, subset=labeled_subset(digits, 50, 0, val_from))[1]
    assert runs["pool"]["test_last"] == runs["none"]["test"] and runs["pool"]["steps"] == runs["none"]["steps"] == 16
    assert "val" not in runs["none"] and runs["pool"]["val"]["n"] == len(digits.val_index)
    assert 1 <= runs["pool"]["best_epoch"] <= 4
