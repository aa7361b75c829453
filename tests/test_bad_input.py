"""Bad input as a hostile user gives it, one class at a time, through the commands as a user runs them: labels that
are not 0..C-1, numbers that are not finite, training that diverges, an artifact whose description and weights
disagree, names that escape the run directory, a second run into a finished run's directory, a full disk, a
misspelt key or option, and results only their writer could read. Each ends with one line naming the offending
file, key or value and a non-zero exit, leaves no artifact or metrics.json behind and changes no earlier file."""
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from commands import run_main, run_process
from conftest import REPO
from finetune.__main__ import main as finetune_main
from pretrain import pretrain_stack, save_autoencoder
from pretrain.__main__ import main as pretrain_main

PRETRAIN = ["trainer=fast", "model.layers=[8]", "model.epochs=1", "pictures=false"]
FINETUNE = ["trainer=fast", "finetune.mode=scratch", "model.layers=[8]", "finetune.steps=4", "finetune.epochs=1",
            "finetune.min_passes=null"]


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def results_in(folder) -> set:
    return {p.name for p in folder.rglob("*") if p.name in ("metrics.json", "encoder", "head.safetensors", "weights.safetensors")}


def one_line_error(code, err, *fragments):
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for fragment in fragments:
        assert fragment in last, (fragment, last)


@pytest.fixture
def npz(tmp_path):
    """npz(y_train, y_test): a small data set of 6 features whose classes differ in their mean."""

    def make(y_train, y_test, name="data.npz"):
        rng = np.random.default_rng(0)
        shift = {v: k for k, v in enumerate(sorted(set(np.asarray(y_train).tolist()) | set(np.asarray(y_test).tolist())))}
        x = lambda y: (rng.random((len(y), 6)) + 2.0 * np.array([shift[v] for v in np.asarray(y).tolist()])[:, None])  # noqa: E731
        path = tmp_path / name
        np.savez(path, x_train=x(y_train).astype(np.float32), y_train=np.asarray(y_train),
                 x_test=x(y_test).astype(np.float32), y_test=np.asarray(y_test))
        return path

    return make


# 1. labels that are not 0..C-1 --------------------------------------------------------------------------------
@pytest.mark.parametrize("classes", [[3, 7], [5, 10_000_000], ["cat", "dog", "emu"]], ids=["3-7", "huge ids", "strings"])
def test_classes_are_the_distinct_training_labels_under_their_own_names(classes, npz, tmp_path, monkeypatch, capsys):
    y_train, y_test = np.array(classes * 30), np.array(classes * 5)
    path = npz(y_train, y_test)
    run = tmp_path / "run"
    code, err = run_main(finetune_main, *FINETUNE, "data=npz", f"data.path={path}", "finetune.steps=40", "finetune.lr=0.05",
                         "trainer.limit_train_batches=1.0",
                         f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == sorted(classes)
    assert np.array(metrics["test"]["confusion_matrix"]).shape == (len(classes), len(classes))
    head = load_file(run / "head.safetensors")
    output = sorted(k for k in head if k.endswith("weight"))[-1]  # the head's last layer: "weight" linear, "3.weight" mlp
    assert head[output].shape[0] == len(classes)  # one output per class, not max(label) + 1
    assert metrics["test"]["accuracy"] > 0.9  # classes that differ in their mean: the mapping is right


@pytest.mark.parametrize("y_train, y_test, message", [
    ([4] * 60, [4] * 10, "y_train holds one class only (4; a classifier needs at least two)"),
    ([0, 1] * 30, [0, 1, 2, 9] * 3, "y_test holds labels that y_train lacks: 2, 9"),
], ids=["one class", "unseen test labels"])
def test_labels_that_cannot_make_a_classifier_are_refused(y_train, y_test, message, npz, tmp_path, monkeypatch, capsys):
    path = npz(y_train, y_test)
    run = tmp_path / "run"
    code, err = run_main(finetune_main, *FINETUNE, "data=npz", f"data.path={path}", f"hydra.run.dir={run}",
                         monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, str(path), message)
    assert not results_in(run)


# 2. numbers that are not finite, seeds out of range -----------------------------------------------------------
@pytest.mark.parametrize("main, override", [
    (pretrain_main, "autoencoder.noise=inf"), (pretrain_main, "autoencoder.sparsity_weight=nan"),
    (pretrain_main, "model.lr=-inf"), (finetune_main, "finetune.encoder_lr_scale=inf"),
    (finetune_main, "finetune.unlabeled.consistency=nan"), (finetune_main, "finetune.lr=inf"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_number_that_is_not_finite_is_refused_before_training(main, override, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, err = run_main(main, *(PRETRAIN if main is pretrain_main else FINETUNE), override, f"hydra.run.dir={run}",
                         monkeypatch=monkeypatch, capsys=capsys)
    key, value = override.split("=")
    one_line_error(code, err, f"{key}={float(value)} is not a finite number")
    assert not results_in(run)


@pytest.mark.parametrize("main, override, field", [
    (pretrain_main, "seed=-1", "seed=-1"), (finetune_main, "seed=4294967296", "seed=4294967296"),
], ids=["pretrain", "finetune"])
def test_a_seed_outside_what_numpy_accepts_is_refused(main, override, field, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, err = run_main(main, *(PRETRAIN if main is pretrain_main else FINETUNE), override, f"hydra.run.dir={run}",
                         monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, f"{field} is not a seed (expected an integer from 0 to 4294967295)")
    assert not results_in(run)


def test_a_bad_seed_of_the_comparison_is_named_by_its_place_in_seeds(tmp_path):
    run = tmp_path / "run"
    done = run_process("scripts/compare.py", "seeds=[0,-1]", "budgets=[20]", "modes=[scratch]", f"hydra.run.dir={run}")
    one_line_error(done.returncode, done.stderr, "seeds[1]=-1 is not a seed")
    assert not results_in(run) and not (run / "results.csv").exists()


# 3. training that diverges ------------------------------------------------------------------------------------
@pytest.mark.parametrize("main, overrides, stage", [
    (pretrain_main, ["autoencoder=linear", "model.optimizer=sgd", "model.lr=1e9"], "layer 1/1 (64->8, mse)"),
    (finetune_main, ["finetune.optimizer=sgd", "finetune.lr=1e36", "finetune.steps=20", "finetune.epochs=2",
                    "finetune.min_passes=null"], "scratch labels=all"),
], ids=["pretrain", "finetune"])
def test_training_that_diverges_stops_naming_the_stage_and_epoch(main, overrides, stage, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, err = run_main(main, *(PRETRAIN if main is pretrain_main else FINETUNE), *overrides, f"hydra.run.dir={run}",
                         monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, f"{stage}: the training loss became NaN or infinite in epoch 1")
    assert not results_in(run)


# 4. an artifact whose description and weights disagree --------------------------------------------------------
@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    result = pretrain_stack(digits.x_train, digits.shift, digits.scale, [16, 8], {"kind": "deterministic"}, epochs=1,
                            batch_size=64, trainer_options={"enable_progress_bar": False, "limit_train_batches": 2}, seed=0)
    return save_autoencoder(result.model, tmp_path_factory.mktemp("artifact") / "encoder")


def fewer_layers_described(path):
    description = json.loads((path / "config.json").read_text())
    description["layers"] = description["layers"][:1]
    (path / "config.json").write_text(json.dumps(description))


def nan_weight(path):
    from safetensors.torch import save_file

    tensors = load_file(path / "weights.safetensors")
    tensors["layers.1.encoder.weight"][0, 0] = float("nan")
    save_file(tensors, path / "weights.safetensors")


@pytest.mark.parametrize("damage, message", [
    (fewer_layers_described, "weights.safetensors: tensor layers.1.decoder_bias and 3 more not described by config.json"),
    (nan_weight, "weights.safetensors: tensor layers.1.encoder.weight holds 1 NaN or infinite values"),
], ids=["fewer layers described", "a NaN weight"])
@pytest.mark.parametrize("mode", ["frozen", "semisup"])
def test_an_artifact_that_does_not_add_up_is_refused(artifact, damage, message, mode, tmp_path, monkeypatch, capsys):
    import shutil

    broken = shutil.copytree(artifact, tmp_path / "broken")
    damage(broken)
    run = tmp_path / "run"
    code, err = run_main(finetune_main, *FINETUNE, f"finetune.mode={mode}", f"pretrained={broken}", f"hydra.run.dir={run}",
                         monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, str(broken / "weights.safetensors"), message.split(": ", 1)[1])
    assert not results_in(run)


# 5. names that escape the run directory ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../elsewhere", "sub/dir", "..", ""])
def test_names_inside_a_run_are_plain_names(name, tmp_path, monkeypatch, capsys):
    run = tmp_path / "a" / "b" / "run"
    code, err = run_main(pretrain_main, *PRETRAIN, f"artifact='{name}'", f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, f"artifact={name!r} is not a plain name")
    assert not results_in(tmp_path)


# 6. a second run into a finished run's directory --------------------------------------------------------------
@pytest.mark.parametrize("main", [pretrain_main, finetune_main], ids=["pretrain", "finetune"])
def test_a_refused_second_run_leaves_the_first_run_and_its_record_as_they_were(main, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    base = PRETRAIN if main is pretrain_main else FINETUNE
    code, err = run_main(main, *base, f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    before = snapshot(run)
    assert {".hydra", "metrics.json"} <= {p.name for p in run.iterdir()}
    code, err = run_main(main, *base, "seed=1", f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, f"hydra.run.dir={run} holds an earlier run", "never overwritten")
    assert snapshot(run) == before  # .hydra/config.yaml, overrides.yaml, hydra.yaml and the log included


# 7. a full disk ----------------------------------------------------------------------------------------------------
def file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("layers, limit, stage", [("[64,32]", 20_000, "layer1"), ("[16,128]", 45_000, "layer2")])
def test_a_full_disk_during_pretraining_is_one_line_and_leaves_nothing_a_resume_would_trust(layers, limit, stage, tmp_path):
    """No file may grow past `limit` bytes: the checkpoint of the first epoch of layer 1 (or of layer 2, once layer 1
    has finished) cannot be written. Then, with room again, the run resumes from what was left."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "pretrain", "trainer=fast", f"model.layers={layers}", "model.epochs=2", "pictures=false",
               "trainer.enable_progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, f"hydra.run.dir={run}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit(limit), env=env)
    one_line_error(done.returncode, done.stderr, f"cannot write {run / 'checkpoints' / stage / 'last.ckpt'}: File too large")
    assert not (run / "encoder").exists() and not (run / "metrics.json").exists()
    assert not [p for p in run.rglob(".*") if p.is_file() and p.parent.name != ".hydra"]  # no temporary file left
    assert not (run / "checkpoints" / stage / "last.ckpt").exists()
    resumed = subprocess.run([*command, f"resume={run}"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "encoder" / "weights.safetensors").is_file()


# 8. a misspelt key or an unknown option ------------------------------------------------------------------------
@pytest.mark.parametrize("main, override, fragments", [
    (pretrain_main, "autoencoder=bogus", ["autoencoder=bogus is not an option of autoencoder", "denoising, gaussian"]),
    (pretrain_main, "autoencoder=denosing", ["(did you mean denoising?)"]),
    (pretrain_main, "autoencoder.nosie=0.3", ["autoencoder.nosie is not a key of the config (did you mean autoencoder.noise?)",
                                              "the keys of autoencoder: kind, activation"]),
    (finetune_main, "finetune.unlabeled.consistancy=1", ["(did you mean finetune.unlabeled.consistency?)"]),
    (finetune_main, "data=mnsit", ["data=mnsit is not an option of data (did you mean mnist?); its options: digits, mnist, npy, npz"]),
    (finetune_main, "finetun.lr=0.1", ["finetun.lr is not a key of the config (did you mean finetune.lr?)"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_misspelt_key_or_option_is_named_with_what_is_valid(main, override, fragments, tmp_path, monkeypatch, capsys):
    code, err = run_main(main, override, f"hydra.run.dir={tmp_path / 'run'}", monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, *fragments)
    assert "HYDRA_FULL_ERROR" not in err and not (tmp_path / "run").exists()


# 9. results others can read --------------------------------------------------------------------------------------
def test_what_strata_writes_gets_the_permissions_the_umask_gives(tmp_path, monkeypatch, capsys):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        code, err = run_main(pretrain_main, "trainer=fast", "model.layers=[8]", "model.epochs=1", f"hydra.run.dir={run}",
                             monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
    finally:
        os.umask(old)
    for folder in (run / "encoder", run / "encoder_pictures"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder
        for path in folder.iterdir():
            assert path.stat().st_mode & 0o777 == 0o644, path
    assert (run / "metrics.json").stat().st_mode & 0o777 == 0o644


# 10. a folder of .npy shards that do not fit together ---------------------------------------------------------------
def truncated(folder):
    path = folder / "x_train_001.npy"
    path.write_bytes(path.read_bytes()[:-100])
    return path, "truncated: its header says shape (30, 6) of uint8 = 180 bytes of data, the file holds 80"


def narrower(folder):
    path = folder / "x_train_001.npy"
    np.save(path, np.zeros((30, 5), np.uint8))
    return path, "rows of 5 features (shape (30, 5)), but x_train_000.npy has 6 (shape (30, 6)); every shard of x_train needs the same width"


def other_dtype(folder):
    path = folder / "x_test_000.npy"
    np.save(path, np.zeros((10, 6), np.float32))
    return path, "holds float32, but x_test.npy holds uint8 (every shard of x_test needs one dtype)"


def not_npy(folder):
    path = folder / "y_test.npy"
    path.write_bytes(b"<html>not found</html>")
    return path, "not an .npy file that strata can map"


def no_test_labels(folder):
    (folder / "y_test.npy").unlink()
    return folder, "no y_test*.npy in it (found x_test.npy, x_test_000.npy, x_train_000.npy"


@pytest.mark.parametrize("damage", [truncated, narrower, other_dtype, not_npy, no_test_labels],
                         ids=["truncated shard", "mismatched widths", "mismatched dtypes", "not npy", "missing file"])
@pytest.mark.parametrize("main", [pretrain_main, finetune_main], ids=["pretrain", "finetune"])
def test_npy_shards_that_do_not_fit_together_are_refused_naming_the_file(damage, main, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        np.save(folder / f"x_train_{k:03d}.npy", rng.integers(0, 256, (30, 6), dtype=np.uint8))
    np.save(folder / "y_train.npy", np.arange(60) % 2)
    np.save(folder / "x_test.npy", rng.integers(0, 256, (10, 6), dtype=np.uint8))
    np.save(folder / "x_test_000.npy", rng.integers(0, 256, (10, 6), dtype=np.uint8))
    np.save(folder / "y_test.npy", np.arange(20) % 2)
    path, message = damage(folder)
    run = tmp_path / "run"
    code, err = run_main(main, *(PRETRAIN if main is pretrain_main else FINETUNE), "data=npy", f"data.path={folder}",
                         f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    one_line_error(code, err, str(path), message)
    assert not results_in(run)
