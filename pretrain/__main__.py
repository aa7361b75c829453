"""`python -m pretrain`: greedy layer-wise pretraining, configured by conf/pretrain.yaml."""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .cli import strata_main
from .config import CONF_DIR
from .artifact import describe
from .errors import exit_on_strata_error
from .run import final_loss, run_pretraining


@strata_main(CONF_DIR, "pretrain")
@exit_on_strata_error
def main(cfg: DictConfig) -> float | None:
    """Returns the final reconstruction loss (what a Hydra sweeper minimises)."""
    artifact = run_pretraining(cfg, Path(HydraConfig.get().runtime.output_dir))
    return final_loss(describe(artifact)["metrics"])


if __name__ == "__main__":
    main()
