"""Turning a composed Hydra config into objects, with checks that name the offending field."""
from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from .data import ArrayDataModule
from .distributed import check_launch
from .errors import StrataError
from .layers import LAYER_KINDS
from .optimizers import MODEL_FIELDS
from .schema import StackConfig, checked, checked_field, given, layer_schema
from .training import device_name, make_trainer


def find_conf_dir() -> str:
    """The Hydra configs: the checkout's `conf/` beside this package (a clone, an editable install), else the copy
    installed as package data, the package `strata_conf` (a wheel)."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "pretrain.yaml").is_file():
        return str(checkout)
    import strata_conf  # noqa: PLC0415 - only an installed wheel has it

    return str(Path(strata_conf.__file__).resolve().parent)


CONF_DIR = find_conf_dir()
STAGE_TRAINER_ARGS = ("max_epochs",)  # make_trainer sets it for each stage


def to_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain containers; a missing value, a broken interpolation or a NaN or infinite number
    anywhere in it is refused, naming the field."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise StrataError(f"config: {err.full_key} has no value (set it on the command line: {err.full_key}=...)") from None
    except OmegaConfBaseException as err:
        raise StrataError(f"config: {err.msg if hasattr(err, 'msg') else err}".splitlines()[0]) from None
    check_finite(resolved)
    return resolved


def check_finite(value, field: str = "") -> None:
    """Every number in a config is finite: inf or nan in a rate, a weight or a noise level would train garbage."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            check_finite(item, f"{field}[{k}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise StrataError(f"{field}={value} is not a finite number")


def build(cfg: DictConfig, what: str):
    """`hydra.utils.instantiate`, with a strata error surfaced as itself and any other as one line naming `what`."""
    try:
        return instantiate(cfg)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, StrataError):
            raise cause from None
        raise StrataError(f"{what}: {cause or err}") from None
    except OmegaConfBaseException as err:
        raise StrataError(f"{what}: {str(err).splitlines()[0]}") from None


def build_data(cfg: DictConfig) -> ArrayDataModule:
    data = build(cfg.data, "data")
    data.setup()
    return data


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Whole epochs that give each layer at least `steps` updates of `batch_size` out of `n` inputs: a small data set
    gets as many updates per layer as a large one."""
    return max(1, -(-steps * batch_size // max(n, 1)))


def layer_options(autoencoder: dict, model: dict) -> dict:
    """The layer's `kind` and its class's keyword arguments (each typed as the class annotates it), from the
    `autoencoder` and `model` config groups; `below` (the layers under a generative top) is checked the same way."""
    options = layer_fields(autoencoder, "autoencoder")
    if isinstance(autoencoder.get("below"), dict):
        options["below"] = layer_fields(autoencoder["below"], "autoencoder.below")
    elif "below" in autoencoder:
        options["below"] = autoencoder["below"]
    for key in MODEL_FIELDS:  # the layers' optimizer settings, as the model group's schema checks them
        options[key] = checked_field(StackConfig, key, model[key], "model")
    return options


def layer_fields(options: dict, field: str) -> dict:
    """`kind` (default "deterministic") and the given fields of `options`, typed by the kind's class signature
    (`pretrain.schema.layer_schema`); the classes check the values' ranges."""
    kind = options.get("kind", "deterministic")
    if kind not in LAYER_KINDS:
        raise StrataError(f"{field}.kind={kind!r} is not one of {', '.join(LAYER_KINDS)}")
    fields = {k: v for k, v in options.items() if k not in ("kind", "below")}
    for key in fields:
        if key in MODEL_FIELDS:
            raise StrataError(f"{field}.{key}: the optimizer settings of every layer come from model.{key}; set that instead")
    schema = layer_schema(LAYER_KINDS[kind])
    accepted = sorted(f.name for f in dataclasses.fields(schema))
    typed = checked(fields, schema, field, unknown=lambda key: f"{field}.{key} is not an option of autoencoder kind {kind!r} "
                                                              f"(its options: {', '.join(accepted)})")
    return {"kind": kind, **given(typed, fields)}


def check_trainer(options: dict) -> tuple[dict, str]:
    """The `trainer` config group, checked by building a Trainer from it (a misspelt or invalid argument fails here,
    before any data is loaded, with the field named), and the device it trains on (`pretrain.training.device_name`)."""
    accepted = inspect.signature(pl.Trainer.__init__).parameters
    for key in options:
        if key == "logger":
            raise StrataError("trainer.logger: the logger is the logger group: logger=csv, tensorboard, mlflow, wandb or none "
                              "(its options as logger.<key>=...)")
        if key == "callbacks" and not isinstance(options[key], list):
            raise StrataError(f"trainer.callbacks={options[key]!r} is not a list of configs with a _target_")
        if key in STAGE_TRAINER_ARGS:
            raise StrataError(f"trainer.{key} is set by strata for each stage (the epochs by model.epochs); remove it")
        if key not in accepted:
            raise StrataError(f"trainer.{key} is not an argument of pytorch_lightning.Trainer")
    try:
        trainer = make_trainer(options, 1, "check", None, "check")
    except (TypeError, ValueError, ImportError, RuntimeError, MisconfigurationException) as err:
        raise StrataError(f"trainer: {str(err).splitlines()[0]}") from None
    check_launch(trainer)
    return options, device_name(trainer)
