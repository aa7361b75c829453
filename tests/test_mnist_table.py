"""scripts/mnist_table.py end to end on a small fake MNIST: strata's rows under both protocols, the baselines measured
on the same labeled subsets, and the published figures, in one table."""
import csv
import gzip

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from commands import run_process
from conftest import MNIST_FILES, idx_bytes
from finetune.labels import labeled_subset
from pretrain import MNISTDataModule

TINY = ["model.layers=[16,8]", "model.epochs=1", "finetune.epochs=2", "finetune.steps=6", "finetune.unlabeled.batch_size=64",
        "data.val_size=50", "budgets=[20,all]", "seeds=[0,1]", "modes=[frozen,semisup]", "baselines=[logreg,mlp]",
        "progress=false", "trainer.enable_progress_bar=false"]


def fake_digits(rng, n):
    y = np.arange(n) % 10
    return (rng.random((n, 6, 6)) * 128 + 12 * y[:, None, None]).astype(np.uint8), y  # classes differ in brightness


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    (x, y), (x_test, y_test) = fake_digits(np.random.default_rng(0), 300), fake_digits(np.random.default_rng(1), 100)
    arrays = {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test}  # a test split of images never trained on
    for key, stem in MNIST_FILES.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arrays[key].astype(np.uint8))))
    run_dir = tmp_path_factory.mktemp("table")
    done = run_process("scripts/mnist_table.py", f"data.root={folder}", f"hydra.run.dir={run_dir}", *TINY)
    assert done.returncode == 0, done.stderr
    with open(run_dir / "results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    return (run_dir / "table.md").read_text(), done.stdout, results, folder, run_dir


def rows_of(text):
    lines = text.split("\n\n")[0].splitlines()
    return lines, {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ")[1:] for line in lines[2:]}


def error_cell(accuracies):
    err = 100 * (1 - np.array(accuracies, dtype=float))
    return f"{err.mean():.2f} +/- {err.std(ddof=1):.2f}"


def test_the_table_has_strata_rows_under_both_protocols_baselines_and_published_rows(table):
    text, stdout, results, _, _ = table
    assert text.strip() in stdout
    lines, rows = rows_of(text)
    assert lines[0] == "| test error (%) | 20 | all |"
    for mode, name in (("frozen", "strata, frozen pretrained encoder + linear head"), ("semisup", "strata, semi-supervised fine-tuning")):
        for protocol, column in (("realistic (last step)", "test_accuracy_last"),
                                 ("classic (epoch chosen on the labeled pool)", "test_accuracy")):
            cells = rows[f"{name}, {protocol}"]
            assert cells == [error_cell([r[column] for r in results if r["mode"] == mode and r["budget"] == b])
                             for b in ("20", "all")]
    for name in ("LogisticRegression, raw pixels", "MLPClassifier(500, 500), raw pixels, from scratch"):
        assert len(rows[name]) == 2 and all(" +/- " in c for c in rows[name])
    assert rows["Ladder network, Rasmus et al. 2015 (published)"] == ["", "0.57"]  # no figure at 20 labels
    assert rows["SdA-3, Vincent et al. 2010 (published)"] == ["", "1.28"]
    assert "every run of every mode took 6 optimizer steps" in text


def test_the_baseline_is_measured_on_strata_s_labels_and_a_disjoint_test_split(table):
    """The logistic regression's cells, recomputed here on the labeled subsets strata's runs drew: a figure that a
    wrong subset, a wrong scaling or the training images scored as test would change."""
    text, _, _, folder, run_dir = table
    data = MNISTDataModule(root=str(folder), val_size=50)
    data.setup()
    accuracies = {}
    for budget in (20, "all"):
        for seed in (0, 1):
            (x, y), _, _ = labeled_subset(data, budget, seed)
            clf = LogisticRegression(max_iter=1000).fit((x / 255).numpy(), y.numpy())
            accuracies.setdefault(budget, []).append(clf.score((data.x_test / 255).numpy(), data.y_test.numpy()))
    assert rows_of(text)[1]["LogisticRegression, raw pixels"] == [error_cell(accuracies[b]) for b in (20, "all")]
    with open(run_dir / "baselines.csv", newline="") as f:  # the same figures, per budget and seed
        saved = [r for r in csv.DictReader(f) if r["mode"] == "logreg"]
    assert [(r["budget"], r["seed"]) for r in saved] == [("20", "0"), ("20", "1"), ("all", "0"), ("all", "1")]
    assert [float(r["test_accuracy"]) for r in saved] == pytest.approx(accuracies[20] + accuracies["all"], abs=1e-12)
    train_rows = {r.tobytes() for r in data.x_train.numpy()}
    assert not any(r.tobytes() in train_rows for r in data.x_test.numpy())


def test_the_frozen_row_names_the_head_the_runs_had():
    from finetune.table import error_table

    rows = [{"mode": "frozen", "budget": 20, "seed": s, "test_accuracy": a, "test_accuracy_last": a, "validation": "none"}
            for s, a in ((0, 0.9), (1, 0.8))]
    assert "| strata, frozen pretrained encoder + mlp head, realistic (last step) | 15.00 +/- 7.07 |" in \
        error_table(rows, [20], published=False, head="mlp")
    assert "+ linear head, realistic" in error_table(rows, [20], published=False)
