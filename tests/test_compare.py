"""scripts/compare.py end to end on digits with tiny settings: results.csv, report.md, the plot, reuse of an
artifact, and the refusals (an existing result, an impossible budget or mode before any pretraining)."""
import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import finetune.grid
from finetune.grid import run_comparison
from finetune.report import COLUMNS
from pretrain import StrataError
from pretrain.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent
MODES = ["scratch", "frozen", "unfrozen", "partial"]
TINY = ["model.layers=[128,64]", "model.epochs=2", "finetune.epochs=2", "finetune.steps=10", "finetune.min_passes=null",
        "trainer=fast", "progress=false"]
N_FIT = 1221  # digits' training examples outside the validation pool


def config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("compare", overrides=[*TINY, *overrides])


def no_pretraining(cfg, run_dir):
    raise AssertionError("pretrained when it should not have")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("compare")
    done = subprocess.run([sys.executable, "scripts/compare.py", "budgets=[20,all]", "seeds=[0,1]",
                           f"modes=[{','.join(MODES)}]", f"hydra.run.dir={run_dir}", *TINY],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.fixture(scope="module")
def rows(run_dir):
    with open(run_dir / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_results_csv_has_one_row_per_run(rows):
    assert sorted((r["budget"], r["seed"], r["mode"]) for r in rows) == sorted(
        (b, s, m) for b in ("20", "all") for s in ("0", "1") for m in MODES)
    for r in rows:
        assert int(r["labels"]) == (20 if r["budget"] == "20" else N_FIT) and int(r["val_labels"]) == 0
        assert 0 <= float(r["test_accuracy"]) <= 1 and 0 <= float(r["test_f1_macro"]) <= 1
        # realistic by default: no validation, a fixed schedule whose last step is the result
        assert r["validation"].startswith("none") and r["val_accuracy"] == "" and r["test_accuracy_last"] == r["test_accuracy"]
        assert int(r["best_epoch"]) == int(r["epochs_run"]) == 2
    params = {r["mode"]: (int(r["trainable_parameters"]), int(r["parameters"])) for r in rows}
    total = params["scratch"][1]
    assert all(p[1] == total for p in params.values())  # one architecture for every mode
    assert params["scratch"][0] == params["unfrozen"][0] == total
    assert params["frozen"][0] == (64 * 128 + 128) + (128 * 10 + 10)  # the default MLP head on the 64 top codes, nothing else
    assert params["frozen"][0] < params["partial"][0] < total


def test_report_rows_are_the_mean_and_std_of_the_csv(run_dir, rows):
    report = (run_dir / "report.md").read_text()
    table = [line for line in report.splitlines() if re.match(r"\| (20|all \(\d+\)) \|", line) and "+/-" in line]
    assert len(table) == 2  # one row per budget
    assert table[1].startswith(f"| all ({N_FIT}) |")
    for line, budget in zip(table, ("20", "all")):
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for cell, mode in zip(cells, MODES):
            acc = np.array([float(r["test_accuracy"]) for r in rows if r["budget"] == budget and r["mode"] == mode])
            assert cell == f"{100 * acc.mean():.2f} +/- {100 * acc.std(ddof=1):.2f}"
    gain_line = next(line for line in report.splitlines() if line.startswith("| 20 |") and "+/-" not in line)
    paired = {m: np.mean([float(a["test_accuracy"]) - float(b["test_accuracy"]) for a in rows for b in rows
                          if a["budget"] == b["budget"] == "20" and a["seed"] == b["seed"] and a["mode"] == m
                          and b["mode"] == "scratch"]) for m in MODES[1:]}
    assert gain_line == "| 20 | " + " | ".join(f"{100 * paired[m]:+.2f}" for m in MODES[1:]) + " |"


def test_the_plot_is_a_png(run_dir):
    import matplotlib.image

    path = run_dir / "accuracy_vs_labels.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


def test_a_second_run_into_the_same_directory_refuses(run_dir):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(StrataError, match="results.csv already exists"):
        run_comparison(config("budgets=[20]", "seeds=[0]"), run_dir, pretrain_fn=no_pretraining)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_given_artifact_is_reused_without_pretraining(run_dir, rows, tmp_path):
    cfg = config(f"pretrained={run_dir / 'encoder'}", "budgets=[20]", "seeds=[0]", "modes=[scratch,frozen]")
    again = run_comparison(cfg, tmp_path, pretrain_fn=no_pretraining)
    assert not (tmp_path / "encoder").exists()
    report = (tmp_path / "report.md").read_text()
    assert str(run_dir / "encoder") in report
    # one seed: its figure alone, no spread of "+/- 0.00" that a single run cannot have
    assert "+/-" not in report and "Test accuracy (%), one seed" in report
    scratch = next(r for r in again if r["mode"] == "scratch")
    assert f"| 20 | {100 * scratch['test_accuracy']:.2f} |" in report
    # the same artifact, budget, seed and settings as in the first run give the same figures
    first = {r["mode"]: float(r["test_accuracy"]) for r in rows if r["budget"] == "20" and r["seed"] == "0"}
    assert {r["mode"]: r["test_accuracy"] for r in again} == pytest.approx({m: first[m] for m in ("scratch", "frozen")})


def test_every_mode_of_a_cell_takes_the_same_optimizer_steps(run_dir, tmp_path):
    """The comparison is fair in training: scratch, frozen, unfrozen, semisup and ladder (which also walk the
    unlabeled pool) take the steps of finetune.steps (no min_passes floor), at few labels and at all, and the report
    says so."""
    cfg = config(f"pretrained={run_dir / 'encoder'}", "budgets=[20,all]", "seeds=[0]", "modes=[scratch,frozen,unfrozen,semisup,ladder]",
                 "trainer.limit_train_batches=1.0", "finetune.steps=12", "finetune.epochs=3",
                 "finetune.min_passes=null")
    rows = run_comparison(cfg, tmp_path, pretrain_fn=no_pretraining)
    assert sorted((str(r["budget"]), r["mode"]) for r in rows) == sorted(
        (b, m) for b in ("20", "all") for m in ("scratch", "frozen", "unfrozen", "semisup", "ladder"))
    assert {r["steps"] for r in rows} == {12}
    assert "every run of every mode took 12 optimizer steps; validation: none" in (tmp_path / "report.md").read_text()


def test_min_passes_raises_the_steps_of_every_mode_of_a_cell_alike(run_dir, tmp_path):
    """finetune.min_passes=P: a cell whose labels need more than finetune.steps for P passes (batches of 64) takes
    ceil(P * labels / 64) steps, rounded up to whole epochs, in every mode; a few labels keep finetune.steps."""
    cfg = config(f"pretrained={run_dir / 'encoder'}", "budgets=[20,all]", "seeds=[0]", "modes=[scratch,frozen,semisup]",
                 "trainer.limit_train_batches=1.0", "finetune.steps=12", "finetune.epochs=3", "finetune.min_passes=2")
    rows = run_comparison(cfg, tmp_path, pretrain_fn=no_pretraining)
    labels = {str(r["budget"]): int(r["labels"]) for r in rows}
    raised = 3 * math.ceil(2 * labels["all"] / 64 / 3)
    assert raised > 12
    assert {(str(r["budget"]), r["mode"]): r["steps"] for r in rows} == {
        (b, m): (12 if b == "20" else raised) for b in ("20", "all") for m in ("scratch", "frozen", "semisup")}
    assert (f"every run of every mode of a cell took the same optimizer steps: 12 at 20 labels, {raised} at all labels"
            in (tmp_path / "report.md").read_text())


def test_a_grid_cut_short_leaves_the_runs_done_as_partial_results_only(run_dir, tmp_path, monkeypatch):
    done = []
    finish = finetune.grid.finetune_once

    def fail_on_third(*args, **kwargs):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        return finish(*args, **kwargs)

    monkeypatch.setattr(finetune.grid, "finetune_once", fail_on_third)
    cfg = config(f"pretrained={run_dir / 'encoder'}", "budgets=[20]", "seeds=[0,1]", "modes=[scratch,frozen]")
    with pytest.raises(KeyboardInterrupt):
        run_comparison(cfg, tmp_path, pretrain_fn=no_pretraining)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.partial.csv"]
    with open(tmp_path / "results.partial.csv", newline="") as f:
        assert [(r["seed"], r["mode"]) for r in csv.DictReader(f)] == [("0", "scratch"), ("0", "frozen")]
    with pytest.raises(StrataError, match="results.partial.csv already exists"):
        run_comparison(cfg, tmp_path, pretrain_fn=no_pretraining)


@pytest.mark.parametrize("overrides, message", [
    (["budgets=[20,5000]"], "data.labels=5000 exceeds the 1221 labeled training examples"),
    (["budgets=[20,zero]"], "budgets: 'zero' is not a positive integer or 'all'"),
    (["modes=[scratch,bogus]"], "modes: 'bogus' is not one of scratch, frozen, unfrozen, partial, semisup, ladder"),
    (["finetune.lr=0"], "finetune.lr=0 is not a number > 0"),
])
def test_impossible_settings_fail_before_pretraining(tmp_path, overrides, message):
    calls = []
    with pytest.raises(StrataError, match=re.escape(message)):
        run_comparison(config(*overrides), tmp_path, pretrain_fn=lambda cfg, run_dir: calls.append(run_dir))
    assert calls == [] and list(tmp_path.iterdir()) == []
