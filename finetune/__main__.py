"""`python -m finetune`: fine-tune (or train from scratch) a classifier on a labeled subset."""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pretrain.cli import strata_main
from pretrain.config import CONF_DIR
from pretrain.errors import StrataError, exit_on_strata_error

from .run import run_finetuning


@strata_main(CONF_DIR, "finetune")
@exit_on_strata_error
def main(cfg: DictConfig) -> float | None:
    """Returns the validation accuracy (what a Hydra sweeper maximises); None without a validation split."""
    if "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")) and cfg.data.val_from == "none":
        raise StrataError("hydra/sweeper=optuna maximises the validation accuracy, and data.val_from=none gives no "
                          "validation split: set data.val_from=pool (or labels)")
    metrics = run_finetuning(cfg, Path(HydraConfig.get().runtime.output_dir))
    return metrics["val"]["accuracy"] if "val" in metrics else None


if __name__ == "__main__":
    main()
