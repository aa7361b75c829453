"""scripts/devsuite.py's summary table: which pretrained modes beat scratch and whether strata's best mode beats the
best baseline, counted per cell; a tie between a float32 and a float64 accuracy is a tie, not a win."""
import importlib.util

import numpy as np
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("devsuite", REPO / "scripts" / "devsuite.py")
devsuite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(devsuite)


def rows(budget, seed=0, **accuracies):
    return [{"budget": budget, "seed": seed, "mode": m, "test_accuracy": a} for m, a in accuracies.items()]


def test_the_table_counts_wins_and_a_float32_tie_is_no_win():
    tie = float(np.float32(105 / 114))  # strata's accuracy, through float32; the baseline's is 105/114 in float64
    results = {"a": rows(20, scratch=0.5, frozen=0.6, unfrozen=0.4, semisup=tie, logreg=105 / 114)
               + rows(100, scratch=0.7, frozen=0.6, unfrozen=0.8, semisup=0.9, logreg=0.85, svm=0.88)}
    table = devsuite.summary_table(results, "val", devsuite.MODES)
    lines = table.splitlines()
    assert lines[2] == "| a | 20 | 50.00 | 60.00 | 40.00 | 92.11 | 92.11 (logreg) | frozen, semisup | **no** |"
    assert lines[3] == "| a | 100 | 70.00 | 60.00 | 80.00 | 90.00 | 88.00 (svm) | unfrozen, semisup | yes |"
    assert "frozen 1, unfrozen 1, semisup 2" in table and "best mode beats the best baseline: 1." in table


def test_several_seeds_give_the_mean_and_its_spread_and_compare_the_means():
    results = {"a": [{"budget": 100, "seed": s, "mode": m, "test_accuracy": a}
                     for s, accuracies in enumerate([dict(scratch=0.70, frozen=0.60, unfrozen=0.74, semisup=0.80, svm=0.78),
                                                     dict(scratch=0.76, frozen=0.70, unfrozen=0.74, semisup=0.74, svm=0.76)])
                     for m, a in accuracies.items()]}
    line = devsuite.summary_table(results, "test", devsuite.MODES).splitlines()[2]
    # scratch 73 +/- 4.24; unfrozen 74 beats it on the mean; semisup's mean 77 beats the svm's 77 by nothing: a tie
    assert line == ("| a | 100 | 73.00 +/- 4.24 | 65.00 +/- 7.07 | 74.00 +/- 0.00 | 77.00 +/- 4.24 | 77.00 +/- 1.41 (svm) "
                    "| unfrozen, semisup | **no** |")


def test_a_run_without_baselines_says_so_instead_of_losing_to_none():
    results = {"a": [{"budget": 20, "seed": 0, "mode": m, "test_accuracy": a} for m, a in (("scratch", 0.5), ("ladder", 0.6))]}
    lines = devsuite.summary_table(results, "val", ["scratch", "ladder"]).splitlines()
    assert lines[2] == "| a | 20 | 50.00 | 60.00 | none run | ladder | - |"
    assert lines[-1].endswith("strata's best mode beats the best baseline in 0 of the 0 cells with baselines.")


def test_the_layer_probe_reads_each_layers_code_of_the_raw_inputs():
    """scripts/probe_layers.py: one code per layer, the top one the encoder's own output, from unflattened images."""
    import torch

    from pretrain import Encoder

    spec = importlib.util.spec_from_file_location("probe_layers", REPO / "scripts" / "probe_layers.py")
    probe_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe_layers)
    encoder = Encoder.random(torch.zeros(4), torch.full((4,), 2.0), [3, 2], ["sigmoid", "sigmoid"], seed=0).eval()
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)  # two 2x2 "images"
    codes = probe_layers.layer_codes(encoder, x)
    assert [c.shape for c in codes] == [(2, 3), (2, 2)]
    with torch.no_grad():
        top = encoder(torch.as_tensor(x.reshape(2, 4)))
    np.testing.assert_allclose(codes[-1], top.numpy(), rtol=1e-6)
    assert not np.allclose(codes[0][:, :2], codes[1])  # the first layer's code is not the top one


def test_a_table_merges_the_modes_and_baselines_another_run_adds(tmp_path, monkeypatch):
    """`table --merge`: the second run's scratch is not counted twice, its baseline and its extra set are added."""
    import json

    monkeypatch.setattr(devsuite, "ROOT", tmp_path)
    for tag, results in {"first": {"a": rows(100, scratch=0.5, ladder=0.7)},
                         "second": {"a": rows(100, scratch=0.9, svm=0.6), "b": rows(20, scratch=0.4, ladder=0.3)}}.items():
        (tmp_path / "outputs" / "devsuite" / tag).mkdir(parents=True)
        (tmp_path / "outputs" / "devsuite" / tag / "results.json").write_text(json.dumps(results))
    merged = devsuite.merged_results(["first", "second"])
    assert sorted((r["mode"], r["test_accuracy"]) for r in merged["a"]) == [("ladder", 0.7), ("scratch", 0.5), ("svm", 0.6)]
    assert merged["b"] == rows(20, scratch=0.4, ladder=0.3)
    lines = devsuite.summary_table(merged, "test", ["scratch", "ladder"]).splitlines()
    assert lines[2] == "| a | 100 | 50.00 | 70.00 | 60.00 (svm) | ladder | yes |"


def test_a_table_merges_the_seeds_of_another_run_and_refuses_a_cell_of_unequal_seeds(tmp_path, monkeypatch):
    """`table --merge` of a run with another seed pools the seeds (mean +/- spread over both); a cell whose modes ran
    with different seeds is refused, naming each one's seeds, instead of comparing means over different draws."""
    import json

    monkeypatch.setattr(devsuite, "ROOT", tmp_path)
    for tag, results in {"s1": {"a": rows("all", 1, scratch=0.70, semisup=0.80, svm=0.75)},
                         "s2": {"a": rows("all", 2, scratch=0.76, semisup=0.84, svm=0.75)},
                         "s3": {"a": rows("all", 3, scratch=0.9)}, "ladder": {"a": rows("all", 3, ladder=0.9)}}.items():
        (tmp_path / "outputs" / "devsuite" / tag).mkdir(parents=True)
        (tmp_path / "outputs" / "devsuite" / tag / "results.json").write_text(json.dumps(results))
    # the ladder's other seed is no matter to a table without it
    line = devsuite.summary_table(devsuite.merged_results(["s1", "s2", "ladder"]), "test", ["scratch", "semisup"]).splitlines()[2]
    assert line == "| a | all | 73.00 +/- 4.24 | 82.00 +/- 2.83 | 75.00 +/- 0.00 (svm) | semisup | yes |"
    with pytest.raises(SystemExit, match=r"a at all labels: .*scratch: 1, 2, 3; semisup: 1, 2; svm: 1, 2"):
        devsuite.summary_table(devsuite.merged_results(["s1", "s2", "s3"]), "test", ["scratch", "semisup"])


def test_a_cell_without_a_mode_asked_for_is_a_clear_error_not_a_key_error():
    """A merged run cut short lacks a mode in its last sets: the table names the set, the budget and the mode."""
    results = {"a": rows(100, scratch=0.5, semisup=0.7), "b": rows(20, scratch=0.4)}
    with pytest.raises(SystemExit, match="b at 20 labels has no results for semisup"):
        devsuite.summary_table(results, "val", ["scratch", "semisup"])


def test_the_rectangles_label_says_whether_the_outline_is_taller_than_wide():
    x, y = devsuite.rectangles(50, np.random.default_rng(0))
    assert x.dtype == np.uint8 and set(np.unique(x)) == {0, 255} and set(y) == {0, 1}
    for image, label in zip(x, y):
        ys, xs = np.nonzero(image)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert abs(h - w) >= 3 and label == int(h > w)
        assert image[ys.min() + 1:ys.max(), xs.min() + 1:xs.max()].sum() == 0  # an outline, hollow inside


def test_the_random_background_keeps_the_strokes_and_fills_only_the_black():
    digit = np.zeros((2, 28, 28), np.uint8)
    digit[:, 10:18, 12:15] = 200
    out = devsuite.background(digit, np.random.default_rng(0))
    assert out.dtype == np.uint8 and (out[digit > 0] == 200).all()
    assert out[digit == 0].std() > 50  # uniform noise on 0..255 where the image was black (std about 74)


def test_the_heldout_sets_with_all_labels_stand_beside_sda3():
    results = {"rotated": rows("all", scratch=0.90, semisup=0.92, svm=0.91) + rows(100, scratch=0.3, semisup=0.4, svm=0.35),
               "digits": rows(20, scratch=0.5, semisup=0.6)}
    lines = devsuite.published_table(results, ["scratch", "semisup"]).splitlines()
    assert lines[-3:] == ["| set | scratch | semisup | best baseline | SdA-3 |", "|---|---|---|---|---|",
                          "| rotated | 10.00 | 8.00 | 9.00 (svm) | 9.53 |"]
    assert devsuite.published_table({"digits": results["digits"]}, ["scratch"]) == ""


def test_a_budget_on_the_command_line_is_a_positive_integer_or_all():
    assert devsuite.budget("all") == "all" and devsuite.budget("100") == 100
    for bad in ("0", "-5", "many", "1.5"):
        with pytest.raises(ValueError):
            devsuite.budget(bad)


def test_a_heldout_set_on_a_validation_split_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit, match="wine: held-out sets have a test split only"):
        devsuite.run(tmp_path, tmp_path / "out", "val", [], [0], ["digits", "wine"], [], ["scratch"])
    assert not (tmp_path / "out").exists()
