"""The typed schemas of the config groups (pretrain/schema.py, finetune/schema.py): the config files and the
schemas agree, a bad value is one line naming the field, and a config of one's own can extend a schema."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from finetune.schema import FinetuneConfig, UnlabeledConfig, check_options
from pretrain import StrataError
from pretrain.config import CONF_DIR, layer_options, to_dict
from pretrain.layers import LAYER_KINDS
from pretrain.options import group_option, group_options
from pretrain.schema import StackConfig, checked, layer_schema

MODEL = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}


def composed(*overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_dict(compose("pretrain", overrides=list(overrides)))


def test_the_model_group_fits_its_schema():
    model = checked(composed()["model"], StackConfig, "model")
    assert model.layers == [1000, 256] and model.epochs == "auto" and model.steps == 5000 and model.codes == "auto"


@pytest.mark.parametrize("variant", group_options("autoencoder"))
def test_every_autoencoder_variant_fits_its_kind(variant):
    """Each conf/autoencoder file sets only keywords its kind's class takes, with values of the annotated types."""
    raw = group_option("autoencoder", variant)
    options = layer_options(raw, MODEL)
    assert options["kind"] == raw.get("kind", "deterministic")
    assert set(options) - {"kind", "below", *MODEL} == set(raw) - {"kind", "below"}


def test_the_finetune_group_fits_its_schema():
    settings = check_options(group_option("finetune", "default"))
    assert isinstance(settings, FinetuneConfig) and isinstance(settings.unlabeled, UnlabeledConfig)
    assert settings.steps % settings.epochs == 0 and settings.unlabeled.xi == pytest.approx(1e-3)


def test_a_layer_schema_is_its_class_signature():
    fields = {f.name: f for f in dataclasses.fields(layer_schema(LAYER_KINDS["deterministic"]))}
    assert set(fields) == {"activation", "tied", "loss", "corruption", "noise", "sparsity", "target", "sparsity_weight", "wta_rate"}
    assert fields["tied"].type is bool and fields["noise"].type is float and fields["wta_rate"].default is None
    vae = {f.name for f in dataclasses.fields(layer_schema(LAYER_KINDS["vae"]))}
    assert {"beta", "warmup_epochs", "prior", "noise"} <= vae and "tied" not in vae  # its own and its base's keywords


@pytest.mark.parametrize("section, schema, where, message", [
    ({"layers": ["a"]}, StackConfig, "model", 'model.layers=["a"] is not a non-empty list of positive integers'),
    ({"lr": "fast"}, StackConfig, "model", "model.lr='fast' is not a positive number"),
    ({"lr": 0}, StackConfig, "model", "model.lr=0 is not a positive number"),
    ({"steps": 2.5}, StackConfig, "model", "model.steps=2.5 is not a positive integer"),
    ({"steps": True}, StackConfig, "model", "model.steps=True is not a positive integer"),
    ({"codes": "cloud"}, StackConfig, "model", "model.codes='cloud' is not one of auto, memory, disk"),
    ({"stepz": 3}, StackConfig, "model", "model.stepz is not a field of model"),
])
def test_a_bad_value_names_its_field(section, schema, where, message):
    base = composed()["model"]
    with pytest.raises(StrataError, match=message.replace("[", "\\[").replace("(", "\\(")):
        checked({**base, **section}, schema, where)


def test_a_missing_field_is_named():
    base = composed()["model"]
    del base["steps"]
    with pytest.raises(StrataError, match=r"model.steps has no value \(set it on the command line: model.steps=...\)"):
        checked(base, StackConfig, "model")


def test_cross_field_checks():
    options = group_option("finetune", "default")
    with pytest.raises(StrataError, match="finetune.steps=2001 is not a multiple of finetune.epochs=20"):
        check_options({**options, "steps": 2001})
    with pytest.raises(StrataError, match=r"finetune.unlabeled.noise=1.0 is not a masking probability in \[0, 1\)"):
        check_options({**options, "unlabeled": {**options["unlabeled"], "noise": 1.0}})
    with pytest.raises(StrataError, match="finetune.unlabeled.nosie is not a field of finetune.unlabeled"):
        check_options({**options, "unlabeled": {**options["unlabeled"], "nosie": 0.1}})


def test_min_passes_raises_the_steps_to_whole_epochs_and_never_lowers_them():
    options = group_option("finetune", "default")
    rule = check_options({**options, "steps": 2000, "epochs": 20, "batch_size": 64, "min_passes": 40})
    assert rule.steps_for(10800) == 6760  # 40 * 10800 / 64 = 6750 steps, 338 an epoch
    assert rule.steps_for(1000) == 2000 and rule.steps_for(10) == 2000  # 625 and 40 steps: the floor holds
    assert check_options({**options, "min_passes": None}).steps_for(10**6) == options["steps"]
    with pytest.raises(StrataError, match="finetune.min_passes=0 is not null or a positive integer"):
        check_options({**options, "min_passes": 0})


def test_the_shipped_floor_raises_only_budgets_above_3200_labels():
    """conf/finetune/default.yaml: 2000 steps and 40 passes in batches of 64 meet at 3,200 labels, so every cell of
    100 or 1000 labels keeps its 2000 steps, and an all-label cell of 9,000 takes 5640."""
    shipped = check_options(group_option("finetune", "default"))
    assert [shipped.steps_for(n) for n in (100, 1000, 3200, 3300, 9000)] == [2000, 2000, 2000, 2080, 5640]


def test_a_config_of_ones_own_extends_a_registered_schema(tmp_path: Path):
    """The schemas are in Hydra's ConfigStore: a config that names one in its defaults is typed by it, so Hydra
    itself refuses a wrong type there at composition."""
    import pretrain.schema  # noqa: F401, PLC0415 - registers the schemas

    (tmp_path / "mine.yaml").write_text("defaults:\n  - /schema/model/stack@model\n  - _self_\n"
                                        "model:\n  layers: [8]\n  epochs: auto\n  steps: 10\n  batch_size: 4\n"
                                        "  optimizer: adam\n  lr: 0.01\n  weight_decay: 0.0\n  end_to_end_epochs: 0\n"
                                        "  end_to_end_lr: null\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose("mine")
        assert OmegaConf.get_type(cfg.model).__name__ == "StackConfig" and cfg.model.codes == "auto"
        with pytest.raises(ConfigCompositionException):
            compose("mine", overrides=["model.lr=fast"])
    GlobalHydra.instance().clear()
