"""scripts/devsuite.py's summary table: which pretrained modes beat scratch and whether strata's best mode beats the
best baseline, counted per cell; a tie between a float32 and a float64 accuracy is a tie, not a win."""
import importlib.util

import numpy as np

from conftest import REPO

spec = importlib.util.spec_from_file_location("devsuite", REPO / "scripts" / "devsuite.py")
devsuite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(devsuite)


def rows(budget, **accuracies):
    return [{"budget": budget, "seed": 0, "mode": m, "test_accuracy": a} for m, a in accuracies.items()]


def test_the_table_counts_wins_and_a_float32_tie_is_no_win():
    tie = float(np.float32(105 / 114))  # strata's accuracy, through float32; the baseline's is 105/114 in float64
    results = {"a": rows(20, scratch=0.5, frozen=0.6, unfrozen=0.4, semisup=tie, logreg=105 / 114)
               + rows(100, scratch=0.7, frozen=0.6, unfrozen=0.8, semisup=0.9, logreg=0.85, svm=0.88)}
    table = devsuite.summary_table(results, "val", devsuite.MODES)
    lines = table.splitlines()
    assert lines[2] == "| a | 20 | 50.00 | 60.00 | 40.00 | 92.11 | 92.11 (logreg) | frozen, semisup | **no** |"
    assert lines[3] == "| a | 100 | 70.00 | 60.00 | 80.00 | 90.00 | 88.00 (svm) | unfrozen, semisup | yes |"
    assert "frozen 1, unfrozen 1, semisup 2" in table and "best mode beats the best baseline: 1." in table
