"""scripts/mnist_table.py end to end on a small fake MNIST: strata's rows, the baselines measured on the same
labeled subsets, and the published figures, in one table."""
import gzip

import numpy as np
import pytest

from commands import run_process
from conftest import MNIST_FILES, idx_bytes

TINY = ["model.layers=[16,8]", "model.epochs=1", "finetune.epochs=1", "finetune.unlabeled.batch_size=64",
        "data.val_size=50", "budgets=[20,all]", "seeds=[0,1]", "modes=[frozen,semisup]", "baselines=[logreg,mlp]",
        "progress=false", "trainer=fast"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    y = np.arange(300) % 10
    x = (rng.random((300, 6, 6)) * 128 + 12 * y[:, None, None]).astype(np.uint8)  # classes differ in brightness
    arrays = {"x_train": x, "y_train": y, "x_test": x[:40], "y_test": y[:40]}
    for key, stem in MNIST_FILES.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arrays[key].astype(np.uint8))))
    run_dir = tmp_path_factory.mktemp("table")
    done = run_process("scripts/mnist_table.py", f"data.root={folder}", f"hydra.run.dir={run_dir}", *TINY)
    assert done.returncode == 0, done.stderr
    return (run_dir / "table.md").read_text(), done.stdout


def test_the_table_has_strata_baseline_and_published_rows(table):
    text, stdout = table
    assert text.strip() in stdout
    lines = text.splitlines()
    assert lines[0] == "| test error (%) | 20 | all |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    for name in ("strata, frozen pretrained encoder + linear head", "strata, semi-supervised fine-tuning",
                 "LogisticRegression, raw pixels", "MLPClassifier(500, 500), raw pixels, from scratch"):
        cells = rows[name].strip("| ").split(" | ")[1:]
        assert len(cells) == 2 and all(" +/- " in c for c in cells), rows[name]  # two seeds: mean +/- std
        assert all(0 <= float(c.split(" +/- ")[0]) <= 100 for c in cells)
    assert rows["SdA-3, Vincent et al. 2010 (published)"].endswith("|  | 1.28 |")
