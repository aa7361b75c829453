"""Turning a composed Hydra config into objects, with checks that name the offending field."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data import ArrayDataModule
from .errors import StrataError
from .layer import LAYER_KINDS

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def to_dict(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise StrataError(f"config: {err.msg if hasattr(err, 'msg') else err}".splitlines()[0]) from None


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
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise StrataError(f"{field}={value!r} is not a {'non-negative' if allow_zero else 'positive'} integer")
    return value


def layer_options(autoencoder: dict, model: dict) -> dict:
    """The layer's `kind` and its class's keyword arguments, from the `autoencoder` and `model` config groups."""
    options = dict(autoencoder)
    kind = options.setdefault("kind", "deterministic")
    if kind not in LAYER_KINDS:
        raise StrataError(f"autoencoder.kind={kind!r} is not one of {', '.join(LAYER_KINDS)}")
    for key in ("optimizer", "lr", "weight_decay"):
        options[key] = model[key]
    return options
