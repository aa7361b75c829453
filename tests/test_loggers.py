"""Loggers and callbacks from the config: the `logger` group (csv by default; tensorboard, mlflow and wandb where
their packages are installed) logs each stage under its own name and receives the run's pictures; callbacks in
`trainer.callbacks` are built by `_target_`, a new one for every stage; bad settings are one line each."""
import importlib.util

import pytest

from commands import StageNames, run_main
from pretrain.__main__ import main as pretrain_main

TINY = ["trainer=fast", "model.layers=[8,4]", "model.epochs=1"]
HAS_TENSORBOARD = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))


def pretrain(tmp_path, monkeypatch, capsys, *overrides):
    return run_main(pretrain_main, f"hydra.run.dir={tmp_path / 'run'}", *TINY, *overrides, monkeypatch=monkeypatch, capsys=capsys)


def test_each_stage_logs_under_its_own_name_and_callbacks_are_built_per_stage(tmp_path, monkeypatch, capsys):
    StageNames.seen = []
    code, err = pretrain(tmp_path, monkeypatch, capsys, "pictures=false", "model.end_to_end_epochs=1",
                         "+trainer.callbacks=[{_target_: commands.StageNames}]")
    assert code == 0, err
    assert [name for _, name in StageNames.seen] == ["layer1", "layer2", "end_to_end"]
    assert len({identity for identity, _ in StageNames.seen}) == 3  # a new callback for every stage
    assert all((tmp_path / "run" / "logs" / stage / "metrics.csv").is_file() for stage in ("layer1", "layer2", "end_to_end"))


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="TensorBoard is an optional extra: pip install 'strata-autoencoders[tensorboard]'")
def test_a_tensorboard_run_writes_event_files_with_its_pictures(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, err = pretrain(tmp_path, monkeypatch, capsys, "logger=tensorboard")
    assert code == 0, err
    logs = tmp_path / "run" / "logs"
    for stage in ("layer1", "layer2"):
        (events,) = (logs / stage).glob("events.out.tfevents.*")
        scalars = EventAccumulator(str(events)).Reload().Tags()["scalars"]
        assert any("recon" in tag for tag in scalars), scalars
    (events,) = (logs / "pictures").glob("events.out.tfevents.*")
    images = EventAccumulator(str(events)).Reload().Tags()["images"]
    assert "reconstructions" in images and len(images) >= 3, images
    assert not (logs / "layer1" / "metrics.csv").exists()


BAD = [
    (["+trainer.logger=tensorboard"], "trainer.logger: the logger is the logger group: logger=csv, tensorboard"),
    (["logger=tensorbord"], "logger=tensorbord is not an option of logger (did you mean tensorboard?)"),
    (["+trainer.callbacks=[{_target_: nowhere.Nothing}]"], "trainer.callbacks[0] (nowhere.Nothing): "),
    (["+trainer.callbacks=[{_target_: collections.OrderedDict}]"], "trainer.callbacks[0]: collections.OrderedDict is not a pytorch_lightning Callback"),
    (["+trainer.callbacks=[3]"], "trainer.callbacks[0]=3 is not a config with a _target_"),
    (["+trainer.callbacks=3"], "trainer.callbacks=3 is not a list of configs with a _target_"),
    (["logger.nope=1"], "logger.nope is not a key of the config"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_logger_and_callback_settings_are_one_line(overrides, message, tmp_path, monkeypatch, capsys):
    code, err = pretrain(tmp_path, monkeypatch, capsys, "pictures=false", *overrides)
    assert code == 2 and "Traceback" not in err and message in err.strip().splitlines()[-1], err
    assert not (tmp_path / "run" / "encoder").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_logger_whose_package_is_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    code, err = pretrain(tmp_path, monkeypatch, capsys, "pictures=false", "logger=mlflow")
    assert code == 2 and "logger=mlflow: MLFlowLogger needs its package" in err and "strata-autoencoders[mlflow]" in err, err
