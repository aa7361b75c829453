"""`python -m pretrain`: greedy layer-wise pretraining, configured by conf/pretrain.yaml."""
from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .artifact import save_autoencoder
from .config import CONF_DIR, build_data, layer_options, layer_sizes, positive_int, to_dict
from .errors import StrataError, exit_on_strata_error
from .stack import pretrain_stack


def run_pretraining(cfg: DictConfig, run_dir: Path) -> Path:
    """Pretrain as `cfg` says and write `<artifact>/` and `metrics.json` into `run_dir`; returns the artifact path."""
    resolved = to_dict(cfg)
    model = resolved["model"]
    sizes = layer_sizes(model["layers"])
    epochs = positive_int(model["epochs"], "model.epochs")
    options = layer_options(resolved["autoencoder"], model)
    artifact = run_dir / str(resolved["artifact"])
    if artifact.exists():
        raise StrataError(f"{artifact} already exists: an earlier artifact is never overwritten (set artifact=<new name>)")
    pl.seed_everything(resolved["seed"], workers=True, verbose=False)
    data = build_data(cfg)
    result = pretrain_stack(
        data.unlabeled(), data.shift, data.scale, sizes, options, epochs=epochs,
        batch_size=positive_int(model["batch_size"], "model.batch_size"), trainer_options=resolved["trainer"],
        seed=resolved["seed"], end_to_end_epochs=positive_int(model["end_to_end_epochs"], "model.end_to_end_epochs", allow_zero=True),
        end_to_end_lr=model["end_to_end_lr"], log_dir=str(run_dir))
    metrics = {"data": data.describe(), "n_train": len(data.unlabeled()), **result.metrics}
    if pl.utilities.rank_zero_only.rank == 0:
        save_autoencoder(result.model, artifact, config=resolved, metrics=metrics)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"pretrained {data.input_dim}-{'-'.join(map(str, sizes))} on {data.describe()}; artifact: {artifact}")
    return artifact


@hydra.main(config_path=CONF_DIR, config_name="pretrain", version_base="1.3")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_pretraining(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
