"""`python -m finetune`: fine-tune (or train from scratch) a classifier on a labeled subset."""
from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pretrain import load_encoder
from pretrain.config import CONF_DIR, build_data, layer_options, layer_sizes, positive_int, to_dict, trainer_options
from pretrain.distributed import is_global_zero
from pretrain.errors import StrataError, exit_on_strata_error
from pretrain.generative import stack_layer_options
from pretrain.layer import LAYER_KINDS

from .classifier import ENCODER, HEAD, save_classifier
from .run import build_encoder, check_options, finetune_once


def scratch_activations(resolved: dict, n_layers: int) -> list[str]:
    """Each layer's activation in the stack that pretraining with this config builds, for scratch without an
    artifact to copy (a generative top layer's code is linear; the layers under it follow autoencoder.below)."""
    options = stack_layer_options(layer_options(resolved["autoencoder"], resolved["model"]), n_layers)
    return [o.get("activation") or getattr(LAYER_KINDS[o.get("kind", "deterministic")], "activation", "sigmoid") for o in options]


def run_finetuning(cfg: DictConfig, run_dir: Path) -> dict:
    resolved = to_dict(cfg)
    options = resolved["finetune"]
    for name in ("metrics.json", ENCODER, HEAD):
        if (run_dir / name).exists():
            raise StrataError(f"{run_dir / name} already exists: an earlier result is never overwritten")
    check_options(options)
    seed = positive_int(resolved["seed"], "seed", allow_zero=True)
    trainer = trainer_options(resolved["trainer"])
    pretrained = load_encoder(resolved["pretrained"]) if resolved["pretrained"] else None
    data = build_data(cfg)
    sizes = layer_sizes(resolved["model"]["layers"])
    encoder = build_encoder(options["mode"], data, pretrained, sizes, scratch_activations(resolved, len(sizes)),
                            seed=seed, depth=options["depth"], source=f"pretrained={resolved['pretrained']}")
    model, metrics = finetune_once(data, encoder, options, trainer, seed=seed, log_dir=str(run_dir),
                                   label=f"{options['mode']} labels={data.labels}", threads=resolved["threads"])
    metrics = {"data": data.describe(), "pretrained": resolved["pretrained"], "budget": data.labels, **metrics}
    if not is_global_zero():  # under DDP every rank holds the same model and metrics; rank 0 writes them
        return metrics
    if resolved["save_encoder"]:
        save_classifier(model, run_dir, config=resolved, metrics=metrics)
    tmp = run_dir / ".metrics.json.tmp"  # written last and renamed into place: a metrics.json is a whole result
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, run_dir / "metrics.json")
    print(f"{options['mode']}: {metrics['labels']} labels, test accuracy {metrics['test']['accuracy']:.4f}, "
          f"macro F1 {metrics['test']['f1_macro']:.4f}; {run_dir / 'metrics.json'}")
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="finetune", version_base="1.3")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_finetuning(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
