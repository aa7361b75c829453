"""A pretraining run killed in the middle of layer 2 restarts with `resume=<run dir>`: layer 1 is loaded, not
trained again, layer 2 continues from its last epoch, and the result is the uninterrupted run's, bit for bit.
The runs are real processes, killed with SIGKILL (no clean-up at all) or SIGTERM."""
import json
import shutil
import signal

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from safetensors import safe_open
from safetensors.torch import load_file

from commands import run_process
import pretrain.checkpoint as checkpoint
from pretrain import run_pretraining
from pretrain.config import CONF_DIR
from pretrain.errors import StrataError

OVERRIDES = ["trainer=fast", "model.layers=[16,8]", "model.epochs=4", "pictures=false"]

# `python -m pretrain`, killed by `signal` right after the checkpoint of epoch `epoch` of `stage` is written
KILLED_RUN = """
import os, signal, sys
import pretrain.checkpoint as checkpoint
from pretrain.__main__ import main
stage, epoch, sig = sys.argv.pop(1), int(sys.argv.pop(1)), getattr(signal, sys.argv.pop(1))
save = checkpoint.EpochCheckpoint.on_train_epoch_end
def save_then_die(self, trainer, module):
    save(self, trainer, module)
    if self.stage == stage and trainer.current_epoch + 1 == epoch:
        os.kill(os.getpid(), sig)
checkpoint.EpochCheckpoint.on_train_epoch_end = save_then_die
main()
"""


def config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("pretrain", overrides=[*OVERRIDES, *overrides])


def same_numbers(a: dict, b: dict) -> bool:
    """Two metrics.json equal but for timings."""
    timing = ("seconds", "samples_per_second", "resumed_at_epoch")
    strip = lambda m: {k: strip(v) if isinstance(v, dict) else [strip(x) if isinstance(x, dict) else x for x in v]
                       if isinstance(v, list) else v for k, v in m.items() if k not in timing}
    return strip(a) == strip(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """uninterrupted(end_to_end_epochs): the run directory of an uninterrupted run, made once for each."""
    runs = {}

    def run(end_to_end_epochs: int):
        if end_to_end_epochs not in runs:
            runs[end_to_end_epochs] = tmp_path_factory.mktemp("uninterrupted")
            run_pretraining(config(f"model.end_to_end_epochs={end_to_end_epochs}"), runs[end_to_end_epochs])
        return runs[end_to_end_epochs]

    return run


def test_run_killed_in_layer_2_resumes_from_its_checkpoints(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    killed = run_process("-c", KILLED_RUN, "layer2", "2", "SIGKILL", *OVERRIDES, f"hydra.run.dir={run_dir}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    saved = run_dir / "checkpoints"
    assert (saved / "layer1.safetensors").is_file() and (saved / "layer2" / "last.ckpt").is_file()
    assert not (run_dir / "encoder").exists() and not (run_dir / "metrics.json").exists()
    layer1_before = load_file(saved / "layer1.safetensors")

    resumed = run_process("-m", "pretrain", *OVERRIDES, f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"artifact: {run_dir / 'encoder'}" in resumed.stdout
    weights = load_file(run_dir / "encoder" / "weights.safetensors")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # layer 1 as it was before the kill; layer 2 went on from epoch 2
    assert all(torch.equal(weights[f"layers.0.{k}"], v) for k, v in layer1_before.items())
    assert "resumed_at_epoch" not in metrics["layers"][0]
    assert metrics["layers"][1]["resumed_at_epoch"] == 2 and len(metrics["layers"][1]["recon_per_epoch"]) == 4
    assert not (run_dir / "checkpoints").exists()  # removed once the artifact is whole
    assert (run_dir / "logs" / "layer2_from_epoch2" / "metrics.csv").is_file()  # beside the killed run's log of layer 2
    # and the result is the uninterrupted run's, to the bit
    reference = load_file(uninterrupted(0) / "encoder" / "weights.safetensors")
    assert weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in weights)
    assert same_numbers(metrics, json.loads((uninterrupted(0) / "metrics.json").read_text()))


def test_finished_layers_are_loaded_not_trained(interrupted, tmp_path, monkeypatch):
    """Layer 1 finished before the stop: the resumed run fits layer 2 alone, and reports layer 1 with the metrics
    recorded when it finished (its training time included)."""
    run_dir = shutil.copytree(interrupted, tmp_path / "run")
    with safe_open(str(run_dir / "checkpoints" / "layer1.safetensors"), framework="pt") as f:
        layer1_metrics = json.loads(f.metadata()["metrics"])
    fits = []
    fit = pl.Trainer.fit
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, module, *a, **k: fits.append(module.n_in) or fit(self, module, *a, **k))
    run_pretraining(config(f"resume={run_dir}"), run_dir)
    assert fits == [16]  # layer 2 alone was fitted (its input is layer 1's 16 codes)
    assert json.loads((run_dir / "metrics.json").read_text())["layers"][0] == layer1_metrics


def test_sigterm_stops_with_a_resume_hint_and_status_143(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    stopped = run_process("-c", KILLED_RUN, "end_to_end", "2", "SIGTERM", *OVERRIDES, "model.end_to_end_epochs=3",
                          f"hydra.run.dir={run_dir}")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert f"resume with resume={run_dir}" in stopped.stderr and "error: stopped by SIGTERM" in stopped.stderr
    assert "Traceback" not in stopped.stderr and not (run_dir / "encoder").exists()
    run_pretraining(config("model.end_to_end_epochs=3", f"resume={run_dir}"), run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["end_to_end"]["resumed_at_epoch"] == 2
    weights, reference = (load_file(d / "encoder" / "weights.safetensors") for d in (run_dir, uninterrupted(3)))
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped (by an exception) after epoch 1 of layer 2: layer1.safetensors and layer2/last.ckpt exist."""
    run_dir = tmp_path_factory.mktemp("interrupted")
    save = checkpoint.EpochCheckpoint.on_train_epoch_end

    def save_then_stop(self, trainer, module):
        save(self, trainer, module)
        if self.stage == "layer2":
            raise RuntimeError("stop")

    checkpoint.EpochCheckpoint.on_train_epoch_end = save_then_stop
    try:
        with pytest.raises(RuntimeError, match="stop"):
            run_pretraining(config(), run_dir)
    finally:
        checkpoint.EpochCheckpoint.on_train_epoch_end = save
    return run_dir


@pytest.mark.parametrize("overrides, message", [
    (["model.layers=[32,8]"], "the run was started with model.layers=[16, 8], this command has model.layers=[32, 8]"),
    (["seed=1"], "the run was started with seed=0, this command has seed=1"),
    (["autoencoder=plain"], "the run was started with autoencoder."),
])
def test_resuming_with_other_overrides_is_refused(interrupted, overrides, message):
    with pytest.raises(StrataError, match="resume with the first run's overrides") as err:
        run_pretraining(config(*overrides, f"resume={interrupted}"), interrupted)
    assert message in str(err.value)


def test_resume_needs_a_run_to_resume(tmp_path):
    with pytest.raises(StrataError, match="checkpoints/run.json is missing, so this is not a strata pretraining run"):
        run_pretraining(config(f"resume={tmp_path}"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_resume_runs_in_the_resumed_directory(interrupted, tmp_path):
    with pytest.raises(StrataError, match="a run resumes in its own directory"):
        run_pretraining(config(f"resume={interrupted}"), tmp_path)


def test_a_fresh_run_never_overwrites_an_interrupted_one(interrupted):
    before = {p: p.read_bytes() for p in (interrupted / "checkpoints").rglob("*") if p.is_file()}
    with pytest.raises(StrataError, match=f"Resume it with resume={interrupted}"):
        run_pretraining(config(), interrupted)
    assert {p: p.read_bytes() for p in before} == before


def test_a_finished_run_is_not_resumed(uninterrupted):
    with pytest.raises(StrataError, match="never overwritten .the run has finished"):
        run_pretraining(config(f"resume={uninterrupted(0)}"), uninterrupted(0))
