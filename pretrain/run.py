"""One pretraining run as a config describes it: the stack, the artifact, metrics.json and the pictures.

`python -m pretrain` calls `run_pretraining` with Hydra's composed config and run directory; scripts and tests
call it with their own.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .artifact import save_autoencoder
from .checkpoint import RunCheckpoints
from .config import build_data, check_trainer, epochs_for_steps, layer_options, to_dict
from .distributed import is_global_zero, wait_for_all
from .errors import StrataError
from .files import new_text_file, plain_name
from .holdout import split_holdout
from .elbo import negative_elbo
from .layers import VariationalLayer
from .loggers import CSV, StageLoggers
from .pictures import save_pictures
from .schema import PretrainConfig, StackConfig, checked
from .stack import pretrain_stack
from .training import meta_stack, threads_for


def run_pretraining(cfg: DictConfig, run_dir: Path) -> Path:
    """Pretrain as `cfg` says and write `<artifact>/`, `metrics.json` and (with `pictures: true`) the PNGs in
    `<artifact>_pictures/` into `run_dir`; returns the artifact path."""
    resolved = to_dict(cfg)
    run = checked(resolved, PretrainConfig, "", ignore_unknown=True)  # the top-level fields; the groups follow
    model = checked(resolved["model"], StackConfig, "model")
    options = layer_options(resolved["autoencoder"], resolved["model"])
    trainer, device = check_trainer(resolved["trainer"])
    loggers = StageLoggers(resolved.get("logger", CSV))
    trainer = {**trainer, "logger": loggers}
    artifact = run_dir / plain_name(run.artifact, "artifact")
    pictures = run_dir / f"{artifact.name}_pictures" if run.pictures else None
    resume = run.resume
    if resume is not None and Path(resume).resolve() != run_dir.resolve():
        raise StrataError(f"resume={resume!r}: a run resumes in its own directory, but this one's is {run_dir} "
                          "(give resume=<run dir> without hydra.run.dir, and not in a multirun)")
    earlier = [path for path in (artifact, run_dir / "metrics.json", pictures) if path is not None and path.exists()]
    if earlier:
        raise StrataError(f"{', '.join(map(str, earlier))}: an earlier run's results are never overwritten "
                          f"({'the run has finished' if resume else 'choose another hydra.run.dir'})")
    checkpoints = RunCheckpoints(run_dir, resolved, resume=resume is not None)
    seed = run.seed
    pl.seed_everything(seed, workers=True, verbose=False)
    data = build_data(cfg)
    if is_global_zero():
        print(f"data: {data.summary()}")
    x_fit, x_holdout = split_holdout(data.unlabeled(), model.holdout, seed)  # (the inputs, None) with holdout=0
    if x_holdout is not None and is_global_zero():
        print(f"early stopping: {len(x_holdout)} of the {len(data.unlabeled())} training inputs held out of pretraining, "
              f"patience {model.patience} epochs per layer")
    epochs = model.epochs if model.epochs != "auto" else epochs_for_steps(model.steps, len(x_fit), model.batch_size)
    sizes = model.layers
    with threads_for(meta_stack([data.input_dim, *sizes]), run.threads):  # the library leaves torch's thread count as it found it
        try:
            result = pretrain_stack(
                x_fit, data.shift, data.scale, sizes, options, epochs=epochs, batch_size=model.batch_size,
                trainer_options=trainer, seed=seed, end_to_end_epochs=model.end_to_end_epochs, end_to_end_lr=model.end_to_end_lr,
                log_dir=str(run_dir), checkpoints=checkpoints, codes=model.codes,
                codes_dir=run_dir / "codes", codes_dtype=model.codes_dtype, holdout=x_holdout, patience=model.patience)
        except SIGTERMException:
            if is_global_zero():
                print(f"the finished layers and the last finished epoch are checkpointed: resume with resume={run_dir}", file=sys.stderr)
            raise
        metrics = {"data": data.source_name(), "n_train": len(x_fit), **result.metrics}
        if x_holdout is not None:
            metrics["n_holdout"] = len(x_holdout)
        if isinstance(result.model.layers[-1], VariationalLayer):  # the whole model's -ELBO in nats per example, training inputs
            metrics["neg_elbo_train"] = negative_elbo(result.model, x_fit, seed=seed)
        if is_global_zero():
            save_autoencoder(result.model, artifact, config=resolved, metrics=metrics)
            new_text_file(run_dir / "metrics.json", json.dumps(metrics, indent=2))
            print(f"pretrained {data.input_dim}-{'-'.join(map(str, sizes))} on {data.source_name()} on {device}; artifact: {artifact}")
            if pictures is not None:  # from training inputs only (labels colour the embedding)
                written = save_pictures(result.model, data.unlabeled(), data.y_train, pictures, seed=seed)
                loggers.log_images(run_dir, "pictures", written)
                print(f"pictures ({', '.join(written)}): {pictures}")
            checkpoints.remove()  # the artifact holds the result now
    wait_for_all()  # under DDP, the other ranks may read the artifact once this returns
    return artifact


def final_loss(metrics: dict) -> float | None:
    """The run's last reconstruction loss: the end-to-end stage's last epoch, else the top layer's (what
    `python -m pretrain` returns to a Hydra sweeper)."""
    last = metrics.get("end_to_end") or (metrics.get("layers") or [{}])[-1]
    return None if last.get("recon") is None else float(last["recon"])
