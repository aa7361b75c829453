"""`python -m finetune`: fine-tune (or train from scratch) a classifier on a labeled subset."""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pretrain import load_encoder, save_encoder
from pretrain.config import CONF_DIR, build_data, layer_sizes, to_dict
from pretrain.errors import StrataError, exit_on_strata_error

from .run import build_encoder, finetune_once


def run_finetuning(cfg: DictConfig, run_dir: Path) -> dict:
    resolved = to_dict(cfg)
    options = resolved["finetune"]
    if (run_dir / "metrics.json").exists():
        raise StrataError(f"{run_dir / 'metrics.json'} already exists: an earlier result is never overwritten")
    pretrained = load_encoder(resolved["pretrained"]) if resolved["pretrained"] else None
    data = build_data(cfg)
    sizes = layer_sizes(resolved["model"]["layers"])
    encoder = build_encoder(options["mode"], data, pretrained, sizes, [resolved["autoencoder"]["activation"]] * len(sizes),
                            seed=resolved["seed"], depth=options["depth"], source=f"pretrained={resolved['pretrained']}")
    model, metrics = finetune_once(data, encoder, options, resolved["trainer"], seed=resolved["seed"], log_dir=str(run_dir),
                                   label=f"{options['mode']} labels={data.labels}", threads=resolved["threads"])
    metrics = {"data": data.describe(), "pretrained": resolved["pretrained"], **metrics}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if resolved["save_encoder"]:
        save_encoder(model.encoder, run_dir / "encoder", config=resolved, metrics=metrics)
    print(f"{options['mode']}: {metrics['labels']} labels, test accuracy {metrics['test']['accuracy']:.4f}, "
          f"macro F1 {metrics['test']['f1_macro']:.4f}; {run_dir / 'metrics.json'}")
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="finetune", version_base="1.3")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_finetuning(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
