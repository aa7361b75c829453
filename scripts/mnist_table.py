"""The classic semi-supervised MNIST table: strata's test error (%) over label budgets next to scikit-learn
baselines measured on the same labeled subsets in the same run, and next to published figures.

    python scripts/mnist_table.py                          # 100/600/1000/3000/all labels, 3 seeds
    python scripts/mnist_table.py seeds=[0] budgets=[100,1000]

Writes results.csv, report.md, accuracy_vs_labels.png (compare's outputs) and table.md into the run directory.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm.auto import tqdm

from finetune.baselines import BASELINES, baseline_test_accuracy, unsupervised_features
from finetune.compare import run_comparison
from pretrain import run_pretraining
from pretrain.config import CONF_DIR, build_data, to_dict
from pretrain.errors import exit_on_strata_error

# Test error (%) on MNIST. Rifai et al. 2011 (The Manifold Tangent Classifier), Table 2; Kingma et al. 2014
# (Semi-supervised Learning with Deep Generative Models), Table 1; with all labels: Vincent et al. 2010 (Stacked
# Denoising Autoencoders), Hinton and Salakhutdinov 2006 (Science), Makhzani and Frey 2013 (k-Sparse Autoencoders).
PUBLISHED = {
    "NN (no pretraining), Rifai et al. 2011": {100: 25.81, 600: 11.44, 1000: 10.7, 3000: 6.04},
    "CAE, Rifai et al. 2011": {100: 13.47, 600: 6.3, 1000: 4.77, 3000: 3.22},
    "MTC, Rifai et al. 2011": {100: 12.03, 600: 5.13, 1000: 3.64, 3000: 2.57},
    "M1+TSVM, Kingma et al. 2014": {100: 11.82, 600: 5.72, 1000: 4.24, 3000: 3.49},
    "SdA-3, Vincent et al. 2010": {"all": 1.28},
    "784-500-500-2000 pretrained, Hinton and Salakhutdinov 2006": {"all": 1.2},
    "k-sparse autoencoder, fine-tuned, Makhzani and Frey 2013": {"all": 1.08},
}
MODE_NAMES = {"scratch": "strata, same network from scratch", "frozen": "strata, frozen pretrained encoder + linear head",
              "unfrozen": "strata, pretrained and fine-tuned", "partial": "strata, lowest layers frozen",
              "semisup": "strata, semi-supervised fine-tuning"}


def run_baselines(cfg: DictConfig, budgets: list, seeds: list) -> list[dict]:
    resolved = to_dict(cfg)
    data = build_data(cfg)
    scale = lambda x: ((x - data.shift) / data.scale).numpy()  # noqa: E731 - pixels to [0, 1], as strata's encoder sees them
    x_unlabeled, (x_test, y_test) = scale(data.unlabeled()), data.test()
    rows = []
    for name in resolved["baselines"]:
        features = unsupervised_features(name, x_unlabeled, seed=resolved["seed"], rbm_epochs=resolved["rbm_epochs"])
        for budget, seed in tqdm([(b, s) for b in budgets for s in seeds], desc=name, disable=not resolved["progress"]):
            subset = copy.copy(data)
            subset.labels, subset.seed = budget, seed
            (x_train, y_train), _ = subset.labeled()
            acc = baseline_test_accuracy(name, features, scale(x_train), y_train.numpy(), scale(x_test), y_test.numpy(), seed=seed)
            rows.append({"budget": budget, "seed": seed, "mode": name, "test_accuracy": acc})
    return rows


def error_table(rows: list[dict], budgets: list) -> str:
    def cell(values):
        err = 100 * (1 - np.array(values))
        return f"{err.mean():.2f} +/- {err.std(ddof=1):.2f}" if len(err) > 1 else f"{err.mean():.2f}"

    names = {**MODE_NAMES, **BASELINES}
    lines = ["| test error (%) | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        cells = [cell([r["test_accuracy"] for r in rows if r["mode"] == mode and r["budget"] == b]) for b in budgets]
        lines.append(f"| {names.get(mode, mode)} | " + " | ".join(cells) + " |")
    for name, figures in PUBLISHED.items():
        lines.append(f"| {name} (published) | " + " | ".join(str(figures.get(b, "")) for b in budgets) + " |")
    return "\n".join(lines)


@hydra.main(config_path=CONF_DIR, config_name="mnist_table", version_base="1.3")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    started = time.perf_counter()
    rows = run_comparison(cfg, run_dir, pretrain_fn=run_pretraining)
    budgets, seeds = list(cfg.budgets), list(cfg.seeds)
    rows += run_baselines(cfg, budgets, seeds)
    table = error_table(rows, budgets)
    (run_dir / "table.md").write_text(table + "\n")
    print(table)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(seeds)} seed(s), {minutes:.0f} min in all; strata's per-run figures: {run_dir}/results.csv")


if __name__ == "__main__":
    main()
