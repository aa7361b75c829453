"""The main job: pretrain once, then fine-tune over label budgets x seeds x modes and compare with scratch.

    python scripts/compare.py                                   # digits, the defaults of conf/compare.yaml
    python scripts/compare.py data=mnist data.root=../shared/data/mnist budgets=[100,1000] seeds=[0]
    python scripts/compare.py gather=multirun/finetune/<date>     # tabulate a sweep of `python -m finetune -m` jobs
"""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from finetune.compare import gather_comparison, run_comparison
from pretrain import run_pretraining
from pretrain.cli import strata_main
from pretrain.config import CONF_DIR
from pretrain.distributed import is_global_zero
from pretrain.errors import exit_on_strata_error


@strata_main(CONF_DIR, "compare")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("gather"):
        gather_comparison(cfg.gather, run_dir)
    else:
        run_comparison(cfg, run_dir, pretrain_fn=run_pretraining)
    if not is_global_zero():
        return
    print((run_dir / "report.md").read_text())
    print(f"results: {run_dir}/results.csv, report.md, accuracy_vs_labels.png")


if __name__ == "__main__":
    main()
