"""`python -m finetune`: fine-tune (or train from scratch) a classifier on a labeled subset."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pretrain.config import CONF_DIR
from pretrain.errors import exit_on_strata_error

from .run import run_finetuning


@hydra.main(config_path=CONF_DIR, config_name="finetune", version_base="1.3")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_finetuning(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
