"""Experiment loggers from the `logger` config group (conf/logger/): each stage of a run (layer1, layer2, ...,
end_to_end, finetune) logs under its own name, and a run's pictures and plots go to the logger too.

A group option names a Lightning logger class by `_target_` with its options; `StageLoggers` adds what differs per
stage (the folder, the version, the run name) and is what `make_trainer` calls for each stage."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import get_class

from .errors import StrataError

CSV = {"_target_": "pytorch_lightning.loggers.CSVLogger"}  # the logger of a config without the logger group


def stage_arguments(cls_name: str, run_dir: str, stage: str) -> dict:
    """The keyword arguments that put a stage's log under its own name in the run directory."""
    if cls_name in ("CSVLogger", "TensorBoardLogger"):
        return {"save_dir": run_dir, "name": "logs", "version": stage}
    if cls_name == "MLFlowLogger":  # save_dir is MLflow's file store when tracking_uri is null
        return {"run_name": f"{Path(run_dir).name}/{stage}", "save_dir": str(Path(run_dir) / "mlruns")}
    if cls_name == "WandbLogger":
        return {"name": stage, "group": Path(run_dir).name, "save_dir": run_dir}
    return {}


class StageLoggers:
    """`StageLoggers(cfg)(run_dir, stage)`: a new logger for one stage; `cfg` is the `logger` group (`_target_`
    null or absent: no logger)."""

    def __init__(self, cfg: dict | None):
        cfg = dict(cfg or {})
        target = cfg.pop("_target_", None)
        self.options = cfg
        self.cls = None
        if target:
            try:
                self.cls = get_class(target)
            except Exception as err:  # noqa: BLE001 - Hydra's import errors, one line
                raise StrataError(f"logger._target_={target}: cannot be imported ({str(err).splitlines()[0]})") from None
            self.check()

    def check(self) -> None:
        """Build one logger now, so that a missing package (tensorboard, mlflow, wandb) stops the run before training."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            try:
                self.cls(**{**stage_arguments(self.cls.__name__, folder, "check"), **self.options, **self.offline()})
            except ModuleNotFoundError:
                raise StrataError(f"logger={self.extra()}: {self.cls.__name__} needs its package, not installed here "
                                  f"(pip install 'strata-autoencoders[{self.extra()}]')") from None
            except (TypeError, ValueError, ImportError) as err:
                raise StrataError(f"logger ({self.cls.__name__}): {str(err).splitlines()[0]}") from None

    def offline(self) -> dict:
        return {"offline": True} if self.cls.__name__ == "WandbLogger" else {}

    def extra(self) -> str:
        return {"TensorBoardLogger": "tensorboard", "MLFlowLogger": "mlflow", "WandbLogger": "wandb"}.get(self.cls.__name__, "...")

    def __call__(self, run_dir: str | None, stage: str):
        if self.cls is None or run_dir is None:
            return False
        return self.cls(**{**stage_arguments(self.cls.__name__, str(run_dir), stage), **self.options})

    def log_images(self, run_dir: str | Path, stage: str, images: dict[str, Path]) -> None:
        """Send PNG files to the logger under `stage` (a CSV logger has nowhere to put them: they stay files)."""
        if self.cls is None or not images or self.cls.__name__ == "CSVLogger":
            return
        logger = self(str(run_dir), stage)
        name = type(logger).__name__
        if name == "TensorBoardLogger":
            import matplotlib.image

            for key, path in images.items():
                logger.experiment.add_image(key, matplotlib.image.imread(path)[..., :3], dataformats="HWC")
        elif name == "MLFlowLogger":
            for path in images.values():
                logger.experiment.log_artifact(logger.run_id, str(path))
        elif hasattr(logger, "log_image"):  # WandbLogger and loggers like it
            for key, path in images.items():
                logger.log_image(key=key, images=[str(path)])
        logger.finalize("success")
