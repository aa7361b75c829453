"""Per-layer early stopping of pretraining on held-out inputs (`model.holdout`, `model.patience`): the split, the
epoch each layer keeps, the stop, the training it leaves alone, the command, and a resumed run."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import pretrain.checkpoint as checkpoint
from commands import run_main, run_process
from pretrain import StrataError, pretrain_stack, run_pretraining
from pretrain.__main__ import main as pretrain_main
from pretrain.holdout import holdout_loss, split_holdout
from test_resume import config, same_numbers

QUIET = {"enable_progress_bar": False}


def test_the_held_out_rows_are_a_seeded_disjoint_fraction():
    x = torch.arange(200, dtype=torch.float32).repeat(3, 1).t()  # row i holds i: a row's value says which it is
    fit, held = split_holdout(x, 0.25, seed=3)
    assert len(held) == 50 and len(fit) == 150
    assert sorted(torch.cat([fit, held])[:, 0].tolist()) == list(range(200))  # every row once, in one part or the other
    again, held_again = split_holdout(x, 0.25, seed=3)
    assert torch.equal(again, fit) and torch.equal(held_again, held)
    assert not torch.equal(split_holdout(x, 0.25, seed=4)[1], held)
    same, none = split_holdout(x, 0.0, seed=3)
    assert same is x and none is None
    with pytest.raises(StrataError, match="holds out all"):
        split_holdout(x[:3], 0.9, seed=0)


@pytest.fixture(scope="module")
def overfitting(digits):
    """A 256-unit layer on 20 digits at a high learning rate, scored on 500 others: it overfits within 200 epochs."""
    fit, held = split_holdout(digits.x_train, 0.5, seed=0)
    fit = fit[:20]
    result = pretrain_stack(fit, digits.shift, digits.scale, [256, 16], {"kind": "deterministic", "lr": 0.05}, epochs=200,
                            batch_size=20, trainer_options=QUIET, seed=0, holdout=held, patience=3)
    return result, held


def test_a_layer_stops_after_patience_epochs_without_a_better_held_out_loss(overfitting):
    result, _ = overfitting
    first = result.metrics["layers"][0]
    losses = first["holdout_recon_per_epoch"]
    assert first["epochs_trained"] < 200 and len(losses) == len(first["recon_per_epoch"]) == first["epochs_trained"]
    assert first["best_epoch"] == first["epochs_trained"] - 3  # then 3 epochs without a better one
    assert first["holdout_recon"] == min(losses) == losses[first["best_epoch"] - 1] < losses[-1]


def test_each_layer_keeps_its_best_epoch_scored_on_the_codes_below(overfitting, digits):
    result, held = overfitting
    model = result.model
    h = model.preprocess(held)
    for layer, record in zip(model.layers, result.metrics["layers"]):
        # the weights are the best epoch's, not the last one's: they score the best held-out loss again
        assert holdout_loss(layer, h, batch_size=20) == pytest.approx(record["holdout_recon"], rel=1e-6)
        h = layer.encode(h)


def test_scoring_the_held_out_inputs_leaves_the_training_as_it_was(digits):
    """Same inputs, masking noise: the training curve with early stopping (a patience it never reaches) is the
    curve without it, to the bit; the held-out corruption does not draw from the training's random stream."""
    fit, held = split_holdout(digits.x_train, 0.2, seed=0)
    options = {"kind": "deterministic", "corruption": "mask", "noise": 0.3}
    runs = [pretrain_stack(fit, digits.shift, digits.scale, [16, 8], options, epochs=3, batch_size=64,
                           trainer_options=QUIET, seed=0, **extra) for extra in ({}, {"holdout": held, "patience": 50})]
    plain, scored = ([layer["recon_per_epoch"] for layer in r.metrics["layers"]] for r in runs)
    assert plain == scored
    assert all(len(layer["holdout_recon_per_epoch"]) == 3 for layer in runs[1].metrics["layers"])


def test_the_command_holds_out_inputs_and_records_what_each_layer_kept(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, err = run_main(pretrain_main, "model.layers=[16,8]", "model.epochs=4", "model.holdout=0.2", "model.patience=2",
                         "pictures=false", "trainer=fast", f"hydra.run.dir={run}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_holdout"] == round(0.2 * (metrics["n_train"] + metrics["n_holdout"]))
    for layer in metrics["layers"]:
        assert 1 <= layer["best_epoch"] <= layer["epochs_trained"] <= 4 and len(layer["holdout_recon_per_epoch"]) == layer["epochs_trained"]


@pytest.mark.parametrize("value, expected", [("1", "a fraction in [0, 1)"), ("-0.1", "a fraction in [0, 1)"),
                                             ("half", "a fraction in [0, 1)"), ("nan", "not a finite number")])
def test_a_holdout_that_is_not_a_fraction_is_refused(value, expected, tmp_path, monkeypatch, capsys):
    code, err = run_main(pretrain_main, f"model.holdout={value}", f"hydra.run.dir={tmp_path / 'run'}",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "model.holdout=" in err and expected in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_resumed_stage_goes_on_against_the_same_best_epoch(tmp_path, monkeypatch):
    """Stopped after epoch 2 of layer 2 and resumed: the held-out record and the weights are the uninterrupted run's."""
    overrides = ["model.holdout=0.2", "model.patience=10"]
    reference = tmp_path / "uninterrupted"
    run_pretraining(config(*overrides), reference)
    run_dir = tmp_path / "run"
    save = checkpoint.EpochCheckpoint.on_train_epoch_end

    def save_then_stop(self, trainer, module):
        save(self, trainer, module)
        if self.stage == "layer2" and trainer.current_epoch + 1 == 2:
            raise RuntimeError("stop")

    monkeypatch.setattr(checkpoint.EpochCheckpoint, "on_train_epoch_end", save_then_stop)
    with pytest.raises(RuntimeError, match="stop"):
        run_pretraining(config(*overrides), run_dir)
    monkeypatch.setattr(checkpoint.EpochCheckpoint, "on_train_epoch_end", save)
    run_pretraining(config(*overrides, f"resume={run_dir}"), run_dir)
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert metrics["layers"][1]["resumed_at_epoch"] == 2 and len(metrics["layers"][1]["holdout_recon_per_epoch"]) == 4
    assert same_numbers(metrics, expected)
    weights, wanted = (load_file(d / "encoder" / "weights.safetensors") for d in (run_dir, reference))
    assert all(torch.equal(weights[k], wanted[k]) for k in wanted)


def test_the_curves_script_prints_each_layers_record(digits, tmp_path):
    """scripts/holdout_curves.py on a one-set suite: a row per layer that adds up with the run's metrics.json."""
    x = digits.x_train.numpy().astype("int64")
    np.savez(tmp_path / "digits.val.npz", x_train=x, y_train=digits.y_train.numpy(), x_test=x[:50], y_test=digits.y_train.numpy()[:50])
    done = run_process("scripts/holdout_curves.py", "model.layers=[16,8]", "model.steps=200", "trainer=fast", "--tag", "t",
                       "--sets", "digits", "--data", str(tmp_path), "--out", str(tmp_path / "runs"), "--patience", "2")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "runs" / "t" / "digits" / "metrics.json").read_text())
    rows = [line for line in (tmp_path / "runs" / "t" / "table.md").read_text().splitlines() if line.startswith("| digits")]
    assert len(rows) == 2 and rows == [line for line in done.stdout.splitlines() if line.startswith("| digits")][-2:]
    for row, layer in zip(rows, metrics["layers"]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(layer["layer"]) and cells[2].startswith(f"{layer['epochs_trained']} / ")
        assert cells[3] == str(layer["best_epoch"]) and cells[5] == f"{layer['holdout_recon']:.3f}"
