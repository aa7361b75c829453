"""Bad input and broken files, through the commands as a user runs them: a truncated or corrupted artifact, one whose
weights belong to another architecture, a checkpoint that is not strata's (or a pickle that would run code), a config
value of the wrong type, an output directory that cannot be written. Each ends with one line naming the problem and
a non-zero exit, writes no half result, and leaves every earlier file as it was."""
import errno
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import pretrain.artifact
from commands import run_main
from finetune.__main__ import main as finetune_main
from pretrain import StrataError, pretrain_stack, save_autoencoder
from pretrain.__main__ import main as pretrain_main
from test_resume import OVERRIDES, interrupted  # noqa: F401 (a fixture: a run stopped in layer 2)


class Payload:
    """Unpickling this runs code: it touches `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def artifacts(digits, tmp_path_factory):
    """Two good artifacts of different architectures: 64-16-8 and 64-32-8."""
    root = tmp_path_factory.mktemp("artifacts")
    made = {}
    for sizes in ([16, 8], [32, 8]):
        result = pretrain_stack(digits.x_train, digits.shift, digits.scale, sizes, {"kind": "deterministic"}, epochs=1,
                                batch_size=64, trainer_options={"enable_progress_bar": False, "limit_train_batches": 2}, seed=0)
        made[sizes[0]] = save_autoencoder(result.model, root / f"encoder{sizes[0]}")
    return made


def truncated(path):
    (path / "weights.safetensors").write_bytes((path / "weights.safetensors").read_bytes()[:200])


def garbled_config(path):
    (path / "config.json").write_bytes(b"\x00\xffnot json at all")


def weights_of_the_other(path, other):
    shutil.copy(other / "weights.safetensors", path / "weights.safetensors")


def pickled_weights(path):
    torch.save({"layers.0.encoder.weight": Payload(path / "ran")}, path / "weights.safetensors")


BROKEN_ARTIFACTS = {
    "truncated": (truncated, "weights.safetensors: corrupt or truncated weights file"),
    "corrupted config": (garbled_config, "config.json: not valid JSON"),
    "another architecture": (weights_of_the_other, "(an artifact of a different architecture?)"),
    "a pickle": (pickled_weights, "weights.safetensors: corrupt or truncated weights file"),
}


@pytest.mark.parametrize("breakage", BROKEN_ARTIFACTS)
def test_a_broken_artifact_fails_fine_tuning_cleanly(breakage, artifacts, tmp_path, monkeypatch, capsys):
    good = snapshot(artifacts[16].parent)
    broken = shutil.copytree(artifacts[16], tmp_path / "broken")
    damage, message = BROKEN_ARTIFACTS[breakage]
    damage(*([broken, artifacts[32]] if breakage == "another architecture" else [broken]))
    run = tmp_path / "run"
    code, err = run_main(finetune_main, f"pretrained={broken}", f"hydra.run.dir={run}", "trainer.enable_progress_bar=false",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert not (broken / "ran").exists()  # nothing was unpickled
    assert not {"metrics.json", "encoder", "head.safetensors"} & {p.name for p in run.iterdir()}
    assert snapshot(artifacts[16].parent) == good  # the good artifacts are untouched


WRONG_TYPES = [
    ("pretrain", ["model.epochs=abc"], "model.epochs='abc' is not a positive integer"),
    ("pretrain", ["seed=xyz"], "seed='xyz' is not a seed (expected an integer from 0 to 4294967295)"),
    ("finetune", ["seed=xyz"], "seed='xyz' is not a seed (expected an integer from 0 to 4294967295)"),
    ("finetune", ["finetune.epochs=abc"], "finetune.epochs='abc' is not a positive integer"),
    ("finetune", ["finetune.lr=fast"], "finetune.lr='fast' is not a number > 0"),
]


@pytest.mark.parametrize("command, overrides, message", WRONG_TYPES, ids=[f"{c} {' '.join(o)}" for c, o, _ in WRONG_TYPES])
def test_a_config_value_of_the_wrong_type(command, overrides, message, tmp_path, monkeypatch, capsys):
    main = {"pretrain": pretrain_main, "finetune": finetune_main}[command]
    extra = ["finetune.mode=scratch"] if command == "finetune" else ["pictures=false"]
    code, err = run_main(main, "trainer=fast", *extra, *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and f"error: {message}" in err and "Traceback" not in err
    assert {p.name for p in (tmp_path / "run").iterdir()} <= {".hydra", "__main__.log"}  # Hydra's records, nothing of strata's


@pytest.mark.parametrize("main", [pretrain_main, finetune_main], ids=["pretrain", "finetune"])
@pytest.mark.parametrize("mode", ["run", "multirun"])
def test_an_output_directory_that_cannot_be_written(main, mode, tmp_path, monkeypatch, capsys):
    """As root, permissions do not stop writes; a directory under a regular file cannot be created by anyone."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    argv = ["trainer=fast", "finetune.mode=scratch" if main is finetune_main else "pictures=false", f"{key}={blocker}/sub"]
    code, err = run_main(main, *(["-m", "seed=0,1"] if mode == "multirun" else []), *argv, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == f"error: {key}={blocker}/sub: cannot write the run's results there (Not a directory)"
    assert blocker.read_text() == "not a folder"


def test_a_failed_artifact_write_leaves_nothing_half_written(artifacts, tmp_path, monkeypatch):
    """The disk fills up halfway through the weights: no artifact folder appears, no temporary one stays."""
    model = pretrain.artifact.load_autoencoder(artifacts[16])

    def half_then_full(tensors, filename, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pretrain.artifact, "save_file", half_then_full)
    with pytest.raises(StrataError, match="cannot write .*encoder: No space left on device"):
        save_autoencoder(model, tmp_path / "encoder")
    assert list(tmp_path.iterdir()) == []


# -- checkpoints: resume=<run dir> of a run stopped in layer 2 ------------------------------------------------
def foreign(run):
    torch.save({"state_dict": {"weight": torch.zeros(3)}, "epoch": 1}, run / "checkpoints" / "layer2" / "last.ckpt")


def pickle_in_checkpoint(run):
    torch.save({"strata": Payload(run / "ran"), "state_dict": {}}, run / "checkpoints" / "layer2" / "last.ckpt")


def truncated_checkpoint(run):
    path = run / "checkpoints" / "layer2" / "last.ckpt"
    path.write_bytes(path.read_bytes()[:300])


def checkpoint_of_another_architecture(run):
    path = run / "checkpoints" / "layer2" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["encoder.weight"] = torch.zeros(9, 16)
    torch.save(checkpoint, path)


def checkpoint_of_another_stage(run):
    path = run / "checkpoints" / "layer2" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["strata"]["stage"] = "layer1"
    torch.save(checkpoint, path)


def truncated_layer(run):
    path = run / "checkpoints" / "layer1.safetensors"
    path.write_bytes(path.read_bytes()[:150])


def layer_of_another_architecture(run):
    path = run / "checkpoints" / "layer1.safetensors"
    tensors = load_file(path)
    tensors["encoder.bias"] = torch.zeros(5)
    save_file(tensors, path, metadata={"format": "strata.checkpoint", "stage": "layer1", "metrics": "{}"})


def garbled_run_file(run):
    (run / "checkpoints" / "run.json").write_text("[1, 2")


BROKEN_CHECKPOINTS = {
    "foreign": (foreign, "layer2/last.ckpt: not a strata checkpoint (no 'strata.checkpoint' mark"),
    "a pickle": (pickle_in_checkpoint, "layer2/last.ckpt: holds objects that are not tensors or plain containers, so it is not loaded"),
    "truncated": (truncated_checkpoint, "layer2/last.ckpt: corrupt or truncated checkpoint"),
    "another architecture": (checkpoint_of_another_architecture,
                             "encoder.weight has shape (9, 16), but this run's deterministic layer 16->8 has (8, 16)"),
    "another stage": (checkpoint_of_another_stage, "a checkpoint of stage 'layer1', expected 'layer2'"),
    "truncated layer": (truncated_layer, "layer1.safetensors: corrupt or truncated layer checkpoint"),
    "layer of another architecture": (layer_of_another_architecture, "encoder.bias has shape (5,)"),
    "garbled run.json": (garbled_run_file, "checkpoints/run.json: unreadable"),
}


@pytest.mark.parametrize("breakage", BROKEN_CHECKPOINTS)
def test_a_broken_checkpoint_stops_the_resumed_run(breakage, interrupted, tmp_path, monkeypatch, capsys):  # noqa: F811
    run = shutil.copytree(interrupted, tmp_path / "run")
    damage, message = BROKEN_CHECKPOINTS[breakage]
    damage(run)
    before = snapshot(run / "checkpoints")
    code, err = run_main(pretrain_main, *OVERRIDES, f"resume={run}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (run / "ran").exists()
    assert not (run / "encoder").exists() and snapshot(run / "checkpoints") == before  # nothing changed or removed
