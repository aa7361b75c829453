"""Turning a composed Hydra config into objects, with checks that name the offending field."""
from __future__ import annotations

import inspect
import json
import math
import numbers
import types
import typing
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
from .optimizers import MODEL_FIELDS, OPTIMIZERS
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
TYPE_NAMES = {bool: "true or false", float: "a number", int: "an integer", str: "a string", type(None): "null"}


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


def layer_sizes(value, field: str = "model.layers") -> list[int]:
    """A non-empty list of positive integers, or a StrataError that says so."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [value] if isinstance(value, int) else value
    items = list(value) if not isinstance(value, str) and hasattr(value, "__iter__") else None
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
        raise StrataError(f"{field}={json.dumps(value, default=str)} is not a non-empty list of positive integers (e.g. [1000,1000,1000])")
    return items


def positive_int(value, field: str, allow_zero: bool = False) -> int:
    if not fits(value, int) or value < (0 if allow_zero else 1):
        raise StrataError(f"{field}={value!r} is not a {'non-negative' if allow_zero else 'positive'} integer")
    return int(value)


def check_seed(value, field: str = "seed") -> int:
    """A seed as numpy and Lightning accept it: an integer in [0, 2**32)."""
    if not fits(value, int) or not 0 <= value < 2**32:
        raise StrataError(f"{field}={value!r} is not a seed (expected an integer from 0 to {2**32 - 1})")
    return int(value)


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Whole epochs that give each layer at least `steps` updates of `batch_size` out of `n` inputs: a small data set
    gets as many updates per layer as a large one."""
    return max(1, -(-steps * batch_size // max(n, 1)))


def positive_number(value, field: str, allow_zero: bool = False) -> float:
    if not fits(value, float) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise StrataError(f"{field}={value!r} is not a {'non-negative' if allow_zero else 'positive'} number")
    return float(value)


def layer_options(autoencoder: dict, model: dict) -> dict:
    """The layer's `kind` and its class's keyword arguments, from the `autoencoder` and `model` config groups."""
    options = dict(autoencoder)
    check_layer_fields(options, "autoencoder")
    if isinstance(options.get("below"), dict):
        check_layer_fields(dict(options["below"]), "autoencoder.below")
    if model["optimizer"] not in OPTIMIZERS:
        raise StrataError(f"model.optimizer={model['optimizer']!r} is not one of {', '.join(OPTIMIZERS)}")
    options["optimizer"] = model["optimizer"]
    options["lr"] = positive_number(model["lr"], "model.lr")
    options["weight_decay"] = positive_number(model["weight_decay"], "model.weight_decay", allow_zero=True)
    return options


def check_layer_fields(options: dict, field: str) -> None:
    """Every field of `options` is a keyword of its kind's layer class, of the type that keyword is annotated with.

    Sets `kind` (default "deterministic"). The classes check the values' ranges; this catches what they cannot
    (a misspelt field, `tied=maybe`, a string where a number belongs) before any training starts.
    """
    kind = options.setdefault("kind", "deterministic")
    if kind not in LAYER_KINDS:
        raise StrataError(f"{field}.kind={kind!r} is not one of {', '.join(LAYER_KINDS)}")
    accepted = {k: v for k, v in layer_keywords(LAYER_KINDS[kind]).items() if k not in MODEL_FIELDS}
    for key, value in options.items():
        if key in ("kind", "below"):
            continue
        if key in MODEL_FIELDS:
            raise StrataError(f"{field}.{key}: the optimizer settings of every layer come from model.{key}; set that instead")
        if key not in accepted:
            raise StrataError(f"{field}.{key} is not an option of autoencoder kind {kind!r} (its options: {', '.join(sorted(accepted))})")
        allowed = typing.get_args(accepted[key]) if isinstance(accepted[key], types.UnionType) else (accepted[key],)
        if not any(fits(value, t) for t in allowed):
            expected = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in allowed)
            raise StrataError(f"{field}.{key}={value!r} is not {expected}")


def layer_keywords(cls) -> dict[str, type]:
    """The keyword arguments a layer class takes (following `**options` up to its base classes) and their annotated types."""
    keywords = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        hints = typing.get_type_hints(init)
        parameters = inspect.signature(init).parameters.values()
        for p in parameters:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "n_in", "n_hidden", "init_seed"):
                keywords.setdefault(p.name, hints.get(p.name, object))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return keywords


def fits(value, annotation) -> bool:
    """isinstance, where a float field takes any real number (an int, a numpy scalar), an int field any integer,
    and true/false is not a number."""
    if annotation in (float, int) and isinstance(value, bool):
        return False
    abstract = {float: numbers.Real, int: numbers.Integral}.get(annotation, typing.get_origin(annotation) or annotation)
    if annotation is typing.Any or not isinstance(abstract, type):
        return True  # an annotation isinstance cannot check
    return isinstance(value, abstract)


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
