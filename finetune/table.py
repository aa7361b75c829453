"""The classic semi-supervised MNIST table: strata's test error (%) over label budgets next to scikit-learn
baselines measured on the same labeled subsets in the same run, and next to published figures.

    strata table                                           # 100/600/1000/3000/all labels, seeds 1 to 5
    strata table seeds=[1,2,3] budgets=[100,1000]          # (or python scripts/mnist_table.py ...)

Writes results.csv, report.md, accuracy_vs_labels.png (compare's outputs), baselines.csv (each baseline's test
accuracy per budget and seed) and table.md into the run directory.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from finetune.baselines import BASELINES, run_baselines
from finetune.classifier import head_for
from finetune.grid import run_comparison
from finetune.report import protocol, write_csv
from finetune.summary import mean_spread
from pretrain import run_pretraining
from pretrain.cli import strata_main
from pretrain.config import CONF_DIR, build_data, to_dict
from pretrain.distributed import is_global_zero
from pretrain.errors import exit_on_strata_error
from pretrain.files import new_file, new_text_file

# Test error (%) on permutation-invariant MNIST, the strongest published methods of this setting first: Salimans et
# al. 2016 (Improved Techniques for Training GANs), Table 1; Rasmus et al. 2015 (Semi-Supervised Learning with Ladder
# Networks), Table 1; Miyato et al. 2018 (Virtual Adversarial Training), Table 2; Kingma et al. 2014 (Semi-supervised
# Learning with Deep Generative Models), Table 1; Rifai et al. 2011 (The Manifold Tangent Classifier), Table 2; with
# all labels: Makhzani and Frey 2013 (k-Sparse Autoencoders), Hinton and Salakhutdinov 2006 (Science), Vincent et al.
# 2010 (Stacked Denoising Autoencoders). Each chose its settings on a labeled validation set (the classic protocol).
PUBLISHED = {
    "Improved GAN (feature matching), Salimans et al. 2016": {100: 0.93},
    "Ladder network, Rasmus et al. 2015": {100: 1.06, 1000: 0.84, "all": 0.57},
    "VAT, Miyato et al. 2018": {100: 1.36},
    "M1+M2, Kingma et al. 2014": {100: 3.33, 600: 2.59, 1000: 2.40, 3000: 2.18},
    "M1+TSVM, Kingma et al. 2014": {100: 11.82, 600: 5.72, 1000: 4.24, 3000: 3.49},
    "MTC, Rifai et al. 2011": {100: 12.03, 600: 5.13, 1000: 3.64, 3000: 2.57},
    "CAE, Rifai et al. 2011": {100: 13.47, 600: 6.3, 1000: 4.77, 3000: 3.22},
    "NN (no pretraining), Rifai et al. 2011": {100: 25.81, 600: 11.44, 1000: 10.7, 3000: 6.04},
    "k-sparse autoencoder, fine-tuned, Makhzani and Frey 2013": {"all": 1.08},
    "784-500-500-2000 pretrained, Hinton and Salakhutdinov 2006": {"all": 1.2},
    "SdA-3, Vincent et al. 2010": {"all": 1.28},
}
MODE_NAMES = {"scratch": "strata, same network from scratch", "frozen": "strata, frozen pretrained encoder + {head} head",
              "unfrozen": "strata, pretrained and fine-tuned", "partial": "strata, lowest layers frozen",
              "semisup": "strata, semi-supervised fine-tuning", "ladder": "strata, Ladder network on the pretrained encoder"}


def error_table(rows: list[dict], budgets: list, published: bool = True, head: str = "linear") -> str:
    """Test error (%) per budget: strata's modes under the realistic protocol (the last step, no label beyond the
    budget) and, where the runs validated on a labeled pool, under the classic one (the epoch the pool chose); the
    baselines (scikit-learn's defaults, no validation); the published figures. `head` names the runs' head (linear, mlp)."""
    def cell(values):
        return mean_spread(100 * (1 - np.array(values, dtype=float)))

    def line(name, values_of):
        return f"| {name} | " + " | ".join(values_of(b) for b in budgets) + " |"

    lines = ["| test error (%) | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    strata = [r for r in rows if r["mode"] in MODE_NAMES]
    pooled = any(str(r.get("validation", "")).startswith("the labeled pool") for r in strata)
    for mode in dict.fromkeys(r["mode"] for r in strata):
        runs = lambda b: [r for r in strata if r["mode"] == mode and r["budget"] == b]  # noqa: E731
        name = MODE_NAMES[mode].format(head=head)
        lines.append(line(f"{name}, realistic (last step)", lambda b: cell([r["test_accuracy_last"] for r in runs(b)])))
        if pooled:
            lines.append(line(f"{name}, classic (epoch chosen on the labeled pool)",
                              lambda b: cell([r["test_accuracy"] for r in runs(b)])))
    for mode in dict.fromkeys(r["mode"] for r in rows if r["mode"] in BASELINES):
        lines.append(line(BASELINES[mode], lambda b: cell([r["test_accuracy"] for r in rows if r["mode"] == mode and r["budget"] == b])))
    if published:
        for name, figures in PUBLISHED.items():
            lines.append(line(f"{name} (published)", lambda b: str(figures.get(b, ""))))
    return "\n".join(lines)


@strata_main(CONF_DIR, "mnist_table")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    started = time.perf_counter()
    rows = run_comparison(cfg, run_dir, pretrain_fn=run_pretraining)
    budgets, seeds = list(cfg.budgets), list(cfg.seeds)
    resolved = to_dict(cfg)
    baselines = run_baselines(build_data(cfg), resolved["baselines"], budgets, seeds, seed=resolved["seed"],
                              rbm_epochs=resolved["rbm_epochs"], progress=resolved["progress"])
    rows += baselines
    if not is_global_zero():  # under DDP every rank ran the same grid; rank 0 tabulates, writes and prints
        return
    head = head_for("frozen", resolved["finetune"]["head"])
    table = error_table(rows, budgets, head=head) + "\n\n" + protocol([r for r in rows if r["mode"] in MODE_NAMES]) + "\n"
    new_file(run_dir / "baselines.csv", lambda tmp: write_csv(baselines, tmp))
    new_text_file(run_dir / "table.md", table)
    print(table)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(seeds)} seed(s), {minutes:.0f} min in all; strata's per-run figures: {run_dir}/results.csv")


if __name__ == "__main__":
    main()
