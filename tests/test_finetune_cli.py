"""`python -m finetune` end to end on digits: what metrics.json holds, the saved classifier, multirun, and the
errors a user gets for an artifact or mode that does not fit."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from finetune import run_finetuning
from finetune.classifier import load_classifier
from pretrain import NpzDataModule, StrataError, pretrain_stack, save_autoencoder
from pretrain.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"enable_progress_bar": False}
TINY = ["finetune.epochs=3", "finetune.steps=9", "finetune.min_passes=null", "trainer.enable_progress_bar=false"]


def pretrain_tiny(data, path):
    data.setup()
    result = pretrain_stack(data.x_train, data.shift, data.scale, [16, 8], {"kind": "deterministic"}, epochs=1,
                            batch_size=64, trainer_options=QUIET, seed=0)
    return save_autoencoder(result.model, path)


def with_tiny(overrides) -> list[str]:
    """TINY, each setting replaced by an override of the same key."""
    keys = {o.split("=")[0] for o in overrides}
    return [o for o in TINY if o.split("=")[0] not in keys] + list(overrides)


def finetune_cli(*overrides, multirun=False):
    command = [sys.executable, "-m", "finetune", *(["-m"] if multirun else []), *with_tiny(overrides)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    return pretrain_tiny(digits, tmp_path_factory.mktemp("cli") / "encoder")


@pytest.fixture(scope="module")
def run_dir(artifact, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finetune_run")
    done = finetune_cli(f"hydra.run.dir={run_dir}", f"pretrained={artifact}", "finetune.mode=unfrozen", "data.labels=50",
                       "finetune.lr=0.05", "finetune.epochs=5", "finetune.steps=50", "data.val_from=pool")
    assert done.returncode == 0, done.stderr
    return run_dir


def config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("finetune", overrides=with_tiny(overrides))


@pytest.mark.parametrize("split", ["val", "test"])
def test_metrics_json_holds_consistent_metrics(run_dir, digits, split):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["mode"], metrics["labels"], metrics["seed"]) == ("unfrozen", 50, 0)
    m = metrics[split]
    n = len(digits.val_index) if split == "val" else len(digits.x_test)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.dtype.kind == "i" and (cm >= 0).all()
    assert cm.sum() == m["n"] == n
    assert np.trace(cm) / cm.sum() == pytest.approx(m["accuracy"], abs=1e-6)
    assert 0.0 <= m["f1_macro"] <= 1.0 and m["loss"] > 0


def test_test_metrics_match_the_saved_classifier(run_dir, digits):
    """Recompute the test figures from the saved encoder + head, with scikit-learn's definitions."""
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    model = load_classifier(run_dir)
    with torch.no_grad():
        predicted = model(digits.x_test).argmax(dim=1).numpy()
    truth = digits.y_test.numpy()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-6)
    assert metrics["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-6)
    assert metrics["confusion_matrix"] == confusion_matrix(truth, predicted, labels=range(10)).tolist()
    assert metrics["accuracy"] > 0.3  # 50 labels, five short epochs: well above chance (0.1)


def test_a_second_run_into_the_same_directory_refuses(run_dir, artifact):
    before = (run_dir / "metrics.json").read_text()
    with pytest.raises(StrataError, match="metrics.json already exists"):
        run_finetuning(config(f"pretrained={artifact}"), run_dir)
    assert (run_dir / "metrics.json").read_text() == before


def test_an_artifact_of_another_width_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ten.npz", x_train=rng.normal(size=(200, 10)).astype(np.float32),
             x_test=rng.normal(size=(50, 10)).astype(np.float32), y_test=rng.integers(0, 2, 50))
    artifact = pretrain_tiny(NpzDataModule(path=str(tmp_path / "ten.npz")), tmp_path / "ten")
    done = finetune_cli(f"hydra.run.dir={tmp_path / 'run'}", f"pretrained={artifact}", "finetune.mode=frozen")
    assert done.returncode != 0
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert "10 input features" in done.stderr and "digits has 64" in done.stderr, done.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("overrides, message", [
    (["finetune.mode=frozen"], "finetune.mode=frozen needs a pretrained encoder: set pretrained="),
    (["finetune.mode=bogus"], "finetune.mode='bogus' is not one of scratch, frozen, unfrozen, partial, semisup, ladder"),
    (["finetune.mode=ladder"], "finetune.mode=ladder needs a pretrained encoder: set pretrained="),
    (["finetune.mode=ladder", "finetune.head=mlp", "pretrained={artifact}"], "finetune.mode=ladder needs finetune.head=linear"),
    (["finetune.mode=ladder", "finetune.ladder.weights=[]", "pretrained={artifact}"],
     "finetune.ladder.weights=\\[\\] is not a non-empty list of numbers >= 0"),
    (["finetune.mode=ladder", "finetune.ladder.noise=-0.1", "pretrained={artifact}"], "finetune.ladder.noise=-0.1 is not a number >= 0"),
    (["finetune.mode=semisup"], "finetune.mode=semisup needs a pretrained autoencoder with its decoder: set pretrained="),
    (["finetune.mode=semisup", "finetune.unlabeled.balance=-1", "pretrained={artifact}"],
     "finetune.unlabeled.balance=-1 is not a number >= 0"),
    (["finetune.mode=partial", "finetune.frozen_layers=2", "pretrained={artifact}"], "frozen_layers < 2"),
    (["finetune.mode=scratch", "finetune.epochs=0"], "finetune.epochs=0 is not a positive integer"),
    (["finetune.mode=scratch", "finetune.head=mlp", "finetune.head_hidden=0"], "finetune.head_hidden=0 is not a positive integer"),
    (["finetune.mode=semisup", "finetune.unlabeled.rampup=1.5", "pretrained={artifact}"],
     "finetune.unlabeled.rampup=1.5 is not a fraction of the steps in \\[0, 1\\]"),
])
def test_modes_that_cannot_run_are_clear_errors(tmp_path, artifact, overrides, message):
    cfg = config(*(o.format(artifact=artifact) for o in overrides))
    with pytest.raises(StrataError, match=message):
        run_finetuning(cfg, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_multirun_writes_metrics_for_every_job(artifact, tmp_path):
    done = finetune_cli("data.labels=20,50", "seed=0,1", "finetune.mode=scratch,frozen", f"pretrained={artifact}",
                        f"hydra.sweep.dir={tmp_path}", "finetune.epochs=1", "finetune.steps=5", "save_encoder=false", multirun=True)
    assert done.returncode == 0, done.stderr
    jobs = {}
    for path in tmp_path.glob("*/metrics.json"):
        m = json.loads(path.read_text())
        jobs[(m["labels"], m["seed"], m["mode"])] = m
        assert path.parent.name.endswith(f"_{m['mode']}_labels{m['labels']}_seed{m['seed']}")
        assert m["pretrained"] == str(artifact)
    assert sorted(jobs) == sorted((n, s, mode) for n in (20, 50) for s in (0, 1) for mode in ("scratch", "frozen"))
    frozen, scratch = jobs[(20, 0, "frozen")], jobs[(20, 0, "scratch")]
    assert frozen["parameters"] == scratch["parameters"] and frozen["trainable_parameters"] < scratch["trainable_parameters"]


@pytest.mark.parametrize("autoencoder, activations", [("denoising", ["relu", "relu"]), ("plain", ["sigmoid", "sigmoid"]),
                                                      ("wta", ["relu", "relu"]), ("vae", ["sigmoid", "linear"])])
def test_scratch_without_an_artifact_builds_the_stack_pretraining_would(tmp_path, autoencoder, activations):
    run_finetuning(config(f"autoencoder={autoencoder}", "finetune.mode=scratch", "model.layers=[16,8]",
                          "finetune.epochs=1", "finetune.steps=5"), tmp_path)
    model = load_classifier(tmp_path)
    assert model.encoder.activations == activations and model.encoder.sizes == [16, 8]
    assert json.loads((tmp_path / "metrics.json").read_text())["mode"] == "scratch"
