"""`python -m pretrain` end to end: it writes the artifact and metrics.json into Hydra's run directory, never
overwrites an earlier run, and each bad input ends with one clear line naming the problem and a non-zero exit.

Two runs are real subprocesses; the rest go through the same Hydra main in this process (no start-up cost).
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from omegaconf import OmegaConf

from commands import run_main
from conftest import REPO
from pretrain import StrataError, describe, load_encoder, run_pretraining
from pretrain.__main__ import main


def run_subprocess(run_dir, *overrides):
    return subprocess.run([sys.executable, "-m", "pretrain", "trainer=fast", f"hydra.run.dir={run_dir}", *overrides],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def run_in_process(run_dir, *overrides, monkeypatch, capsys) -> tuple[int, str]:
    """(exit status, stderr) of the Hydra main, run as `python -m pretrain` would run it."""
    return run_main(main, "trainer=fast", "model.epochs=1", "pictures=false", f"hydra.run.dir={run_dir}", *overrides,
                    monkeypatch=monkeypatch, capsys=capsys)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_subprocess(run_dir, "model.epochs=2"), run_dir


def test_cli_writes_artifact_and_metrics(cli_run, digits, config):
    result, run_dir = cli_run
    sizes = config()["model"]["layers"]  # conf/model/stack.yaml's default stack
    assert result.returncode == 0, result.stderr
    artifact = run_dir / "encoder"
    assert sorted(p.name for p in artifact.iterdir()) == ["config.json", "weights.safetensors"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"] == "digits" and metrics["n_train"] == 1437
    assert [(m["n_in"], m["n_hidden"]) for m in metrics["layers"]] == list(zip([64, *sizes], sizes))
    assert all(len(m["recon_per_epoch"]) == 2 for m in metrics["layers"])
    description = describe(artifact)
    assert description["config"]["autoencoder"]["corruption"] == "mask"  # the default variant: denoising
    assert description["config"]["trainer"]["limit_train_batches"] == 5 and description["metrics"] == metrics
    codes = load_encoder(artifact)(digits.x_test)
    assert codes.shape == (360, sizes[-1]) and torch.isfinite(codes).all()
    assert f"artifact: {artifact}" in result.stdout


def test_second_run_into_the_same_folder_overwrites_nothing(cli_run, config, monkeypatch, capsys):
    _, run_dir = cli_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, err = run_in_process(run_dir, "model.layers=[8]", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and f"hydra.run.dir={run_dir} holds an earlier run" in err and "never overwritten" in err
    # called as a library, the run refuses the earlier results themselves
    with pytest.raises(StrataError, match="an earlier run's results are never overwritten"):
        run_pretraining(OmegaConf.create(config("trainer=fast", "pictures=false")), run_dir)
    with pytest.raises(StrataError, match=re.escape(str(run_dir / "metrics.json"))):  # another name would still replace it
        run_pretraining(OmegaConf.create(config("trainer=fast", "pictures=false", "artifact=other")), run_dir)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert not (run_dir / "other").exists()


def test_bad_layer_sizes_through_the_real_process(tmp_path):
    result = run_subprocess(tmp_path, "model.layers=[0]")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model.layers=[0] is not a non-empty list of positive integers (e.g. [1000,1000,1000])")
    assert "Traceback" not in result.stderr and not (tmp_path / "encoder").exists()


def nan_npz(tmp_path):
    x = np.random.default_rng(0).random((30, 4))
    x[3, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x_train=x, x_test=x[:5], y_test=np.zeros(5, int))
    return path


BAD = [
    (["model.layers=[a]"], 'model.layers=["a"] is not a non-empty list of positive integers'),
    (["model.layers=[-3]"], "model.layers=[-3] is not a non-empty list of positive integers"),
    (["model.layers=[]"], "model.layers=[] is not a non-empty list"),
    (["model.layers=[64,0.5]"], "model.layers=[64, 0.5]"),
    (["autoencoder=nope"], "autoencoder=nope is not an option of autoencoder; its options: adversarial, denoising"),
    (["data=mnist", "data.root={tmp}/no_mnist"], "data.root={tmp}/no_mnist: no such folder"),
    (["data=npz"], "data.path has no value (set it on the command line: data.path=...)"),
    (["data=npz", "data.path={tmp}/nan.npz"], "x_train holds 1 NaN or infinite values"),
    (["model.epochs=0"], "model.epochs=0 is not a positive integer"),
    (["model.lr=-1"], "model.lr=-1 is not a positive number"),
    (["model.optimizer=rmsprop"], "model.optimizer='rmsprop' is not one of adam, sgd, adamw"),
    (["seed=abc"], "seed='abc' is not a seed (expected an integer from 0 to 4294967295)"),
    (["autoencoder.tied=maybe"], "autoencoder.tied='maybe' is not true or false"),
    (["autoencoder.noise=lots"], "autoencoder.noise='lots' is not a number"),
    (["+autoencoder.size=3"], "autoencoder.size is not an option of autoencoder kind 'deterministic'"),
    (["+trainer.fast_dev=1"], "trainer.fast_dev is not an argument of pytorch_lightning.Trainer"),
    (["+trainer.max_epochs=3"], "trainer.max_epochs is set by strata for each stage"),
    (["trainer.limit_train_batches=-1"], "trainer: You have passed invalid value -1 for limit_train_batches"),
    (["artifact=''"], "artifact='' is not a plain name"),
    (["threads=many"], "threads='many' is not auto, null or a positive number of threads"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_gives_one_clear_line_and_a_nonzero_exit(overrides, message, tmp_path, monkeypatch, capsys):
    nan_npz(tmp_path)
    run_dir = tmp_path / "run"
    code, err = run_in_process(run_dir, *(o.format(tmp=tmp_path) for o in overrides), monkeypatch=monkeypatch, capsys=capsys)
    assert code != 0
    assert message.format(tmp=tmp_path) in err
    assert "Traceback" not in err
    assert not (run_dir / "encoder").exists() and not (run_dir / "metrics.json").exists()  # nothing half-written
