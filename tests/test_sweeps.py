"""Sweeps: a multirun of `python -m finetune` run in parallel by the joblib launcher writes each job into its own
folder; `scripts/compare.py gather=<sweep dir>` tabulates them; the SLURM launcher config composes."""
import csv
import importlib.util
import json
import shutil
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from commands import run_main
from conftest import REPO
from finetune.__main__ import main as finetune_main
from pretrain import pretrain_stack, save_autoencoder
from pretrain.config import CONF_DIR

spec = importlib.util.spec_from_file_location("compare_script", REPO / "scripts" / "compare.py")
compare_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_script)


@pytest.fixture(scope="module")
def sweep(digits, tmp_path_factory):
    """`python -m finetune -m`, 2 seeds x (scratch, frozen) with 50 labels, run 2 at a time in worker processes
    by the joblib launcher (the command's main is called in this process, the jobs run in the workers)."""
    root = tmp_path_factory.mktemp("sweep")
    result = pretrain_stack(digits.x_train, digits.shift, digits.scale, [16], {"kind": "deterministic"}, epochs=1,
                            batch_size=64, trainer_options={"enable_progress_bar": False}, seed=0)
    artifact = save_autoencoder(result.model, root / "encoder")
    argv = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={root / 'sweep'}", f"pretrained={artifact}",
            "data.labels=50", "seed=0,1", "finetune.mode=scratch,frozen", "finetune.epochs=2", "finetune.steps=8",
            "save_encoder=false", "trainer.enable_progress_bar=false"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setattr(sys, "argv", ["finetune", *argv])
        finetune_main()
    return root / "sweep", artifact


def test_each_job_writes_into_its_own_folder(sweep):
    sweep_dir, artifact = sweep
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert jobs == ["0_scratch_labels50_seed0", "1_frozen_labels50_seed0", "2_scratch_labels50_seed1", "3_frozen_labels50_seed1"]
    for job in jobs:
        m = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert job.endswith(f"{m['mode']}_labels{m['budget']}_seed{m['seed']}") and m["pretrained"] == str(artifact)


def gather(sweep_dir, out, monkeypatch, capsys):
    return run_main(compare_script.main, f"gather={sweep_dir}", f"hydra.run.dir={out}", monkeypatch=monkeypatch, capsys=capsys)


def test_compare_gathers_a_sweep(sweep, tmp_path, monkeypatch, capsys):
    sweep_dir, artifact = sweep
    code, err = gather(sweep_dir, tmp_path / "report", monkeypatch, capsys)
    assert code == 0, err
    with open(tmp_path / "report" / "results.csv") as f:
        rows = {(r["seed"], r["mode"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == [("0", "frozen"), ("0", "scratch"), ("1", "frozen"), ("1", "scratch")]
    for job in sweep_dir.iterdir():
        if job.is_dir():
            m = json.loads((job / "metrics.json").read_text())
            row = rows[(str(m["seed"]), m["mode"])]
            assert float(row["test_accuracy"]) == pytest.approx(m["test"]["accuracy"]) and row["budget"] == "50"
    report = (tmp_path / "report" / "report.md").read_text()
    gain = sum(float(rows[(s, "frozen")]["test_accuracy"]) - float(rows[(s, "scratch")]["test_accuracy"]) for s in "01") / 2
    assert f"| 50 | {100 * gain:+.2f} |" in report and str(artifact) in report
    assert (tmp_path / "report" / "accuracy_vs_labels.png").read_bytes()[:4] == b"\x89PNG"


def test_gather_names_unfinished_jobs(sweep, tmp_path, monkeypatch, capsys):
    sweep_dir = shutil.copytree(sweep[0], tmp_path / "sweep")
    (sweep_dir / "3_frozen_labels50_seed1" / "metrics.json").unlink()  # failed, or still running
    code, err = gather(sweep_dir, tmp_path / "report", monkeypatch, capsys)
    assert code == 0 and f"1 of 4 jobs have no metrics.json (failed or still running): {sweep_dir / '3_frozen_labels50_seed1'}" in err
    with open(tmp_path / "report" / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 3


def edit_metrics(job, **changes):
    m = json.loads((job / "metrics.json").read_text())
    (job / "metrics.json").write_text(json.dumps({**m, **changes}))


@pytest.mark.parametrize("damage, message", [
    (lambda d: shutil.copytree(d / "0_scratch_labels50_seed0", d / "4_again"), "are both labels=50, seed=0, mode=scratch"),
    (lambda d: edit_metrics(d / "1_frozen_labels50_seed0", pretrained="/elsewhere/encoder"), "the jobs use different artifacts"),
    (lambda d: (d / "0_scratch_labels50_seed0" / "metrics.json").write_text('{"layers": []}'),
     "not the metrics of a `python -m finetune` run"),
    (lambda d: [shutil.rmtree(p) for p in d.iterdir() if p.is_dir()], "no job there has a metrics.json"),
], ids=["a job twice", "two artifacts", "pretraining metrics", "no jobs"])
def test_gather_refuses_what_does_not_make_one_comparison(damage, message, sweep, tmp_path, monkeypatch, capsys):
    sweep_dir = shutil.copytree(sweep[0], tmp_path / "sweep")
    damage(sweep_dir)
    code, err = gather(sweep_dir, tmp_path / "report", monkeypatch, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "report" / "results.csv").exists()


def test_slurm_launcher_config_follows_the_trainer():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pretrain", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                                             "hydra.launcher.partition=gpu"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["tasks_per_node"], launcher["nodes"], launcher["partition"]) == (4, 2, "gpu")
    assert launcher["submitit_folder"].endswith("/.submitit/%j")


HAS_OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
OPTUNA = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "hydra.sweeper.direction=maximize",
          "hydra.sweeper.sampler.seed=0", "finetune.lr=interval(0.0001,0.01)", "finetune.mode=scratch", "model.layers=[8]",
          "data.labels=50", "finetune.epochs=2", "finetune.steps=8", "save_encoder=false", "trainer=fast"]


@pytest.mark.skipif(not HAS_OPTUNA, reason="the Optuna sweeper is an optional extra: pip install 'strata-autoencoders[optuna]'")
def test_an_optuna_sweep_of_two_trials_returns_the_best_validation_accuracy(tmp_path, monkeypatch, capsys):
    code, err = run_main(finetune_main, *OPTUNA, "data.val_from=pool", f"hydra.sweep.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    trials = [json.loads(p.read_text())["val"]["accuracy"] for p in tmp_path.glob("*/metrics.json")]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert len(trials) == 2 and best.best_value == max(trials) and 0 < best.best_value <= 1
    assert "finetune.lr" in best.best_params


@pytest.mark.skipif(not HAS_OPTUNA, reason="the Optuna sweeper is an optional extra: pip install 'strata-autoencoders[optuna]'")
def test_an_optuna_sweep_without_validation_is_refused(tmp_path, monkeypatch, capsys):
    code, err = run_main(finetune_main, *OPTUNA, f"hydra.sweep.dir={tmp_path}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "set data.val_from=pool" in err.strip().splitlines()[-1], err


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="TensorBoard is an optional extra: pip install 'strata-autoencoders[tensorboard]'")
def test_the_accuracy_plot_goes_to_the_logger(sweep, tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, err = run_main(compare_script.main, f"gather={sweep[0]}", f"hydra.run.dir={tmp_path / 'report'}", "logger=tensorboard",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    (events,) = (tmp_path / "report" / "logs" / "compare").glob("events.out.tfevents.*")
    assert EventAccumulator(str(events)).Reload().Tags()["images"] == ["accuracy_vs_labels"]
