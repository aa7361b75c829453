"""Typed schemas of the config groups: what each field must be. The values, and the comments `--help` shows, live in
conf/; a schema says only what a value may be.

`checked(section, Schema, "model")` merges a composed section into its schema: OmegaConf's type system converts and
checks each value, a field's `check` its range, and any failure is one line that names the field, the value as it
was given and what was expected. The schemas are registered with Hydra's ConfigStore as `schema/<group>/<name>`,
for configs of one's own to extend (`defaults: [/schema/model/stack]`).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, List, Optional, TypeVar  # noqa: UP035 - OmegaConf reads these, not the builtin generics

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from .codes import CODE_DTYPES, CODES
from .errors import StrataError
from .layers import LAYER_KINDS
from .optimizers import OPTIMIZERS

T = TypeVar("T")
SEED_RANGE = 2**32  # numpy's and Lightning's seeds


def spec(expect: str, check: Callable[[Any], bool] | None = None, default=MISSING):
    """A schema field: `expect` completes "<field>=<value> is not ..."; `check` is its range, on the typed value."""
    return dataclasses.field(default=default, metadata={"expect": expect, "check": check})


# -- the ranges, one definition each (the Python API checks its arguments with them too) ----------------------------
def is_count(value, allow_zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= (0 if allow_zero else 1)


def is_number(value, allow_zero: bool = False) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and (value >= 0 if allow_zero else value > 0)


def is_fraction(value) -> bool:
    return is_number(value, allow_zero=True) and value < 1


def is_layer_sizes(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0 and all(is_count(v) for v in value)


def is_seed(value) -> bool:
    return is_count(value, allow_zero=True) and value < SEED_RANGE


def one_of(*choices) -> Callable[[Any], bool]:
    return lambda value: value in choices


POSITIVE_INT, NON_NEGATIVE_INT = "a positive integer", "a non-negative integer"
POSITIVE, NON_NEGATIVE = "a positive number", "a non-negative number"
SEED = f"a seed (expected an integer from 0 to {SEED_RANGE - 1})"
FRACTION = "a fraction in [0, 1)"
LAYER_SIZES = "a non-empty list of positive integers (e.g. [1000,1000,1000])"


def fail(field: str, value, expect: str) -> StrataError:
    shown = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else repr(value)
    return StrataError(f"{field}={shown} is not {expect}")


def require(value, field: str, expect: str, check: Callable[[Any], bool]):
    """`value` where `check(value)` holds, else the one-line error of a schema field."""
    if not check(value):
        raise fail(field, value, expect)
    return value


def check_seed(value, field: str = "seed") -> int:
    return int(require(value, field, SEED, is_seed))


def positive_int(value, field: str, allow_zero: bool = False) -> int:
    return int(require(value, field, NON_NEGATIVE_INT if allow_zero else POSITIVE_INT, lambda v: is_count(v, allow_zero)))


def positive_number(value, field: str, allow_zero: bool = False) -> float:
    return float(require(value, field, NON_NEGATIVE if allow_zero else POSITIVE, lambda v: is_number(v, allow_zero)))


def fraction(value, field: str) -> float:
    return float(require(value, field, FRACTION, is_fraction))


def layer_sizes(value, field: str = "model.layers") -> list[int]:
    """A non-empty list of positive integers (one integer is a list of one)."""
    return list(require([value] if is_count(value) else value, field, LAYER_SIZES, is_layer_sizes))


def checked_field(schema: type, name: str, value, where: str):
    """One field of `schema`, typed and in range (`checked` applies this to each field of a section)."""
    f = next(f for f in dataclasses.fields(schema) if f.name == name)
    typed = OmegaConf.structured(schema)
    try:
        typed[name] = value
    except ValidationError:
        raise fail(f"{where}.{name}" if where else name, value, f.metadata["expect"]) from None
    check = f.metadata.get("check")
    if check is not None and not check(typed[name]):
        raise fail(f"{where}.{name}" if where else name, value, f.metadata["expect"])
    return typed[name]


def checked(section: Mapping, schema: type[T], where: str, unknown: Callable[[str], str] | None = None,
            ignore_unknown: bool = False) -> T:
    """`section` (a composed config group, plain containers) as an instance of `schema`, each field typed and in
    range; a key the schema lacks is refused (with `unknown(key)` as the message, if given) unless `ignore_unknown`."""
    prefix = f"{where}." if where else ""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if not isinstance(section, Mapping):
        raise StrataError(f"{where}={section!r} is not a group of fields ({', '.join(fields)})")
    for key in section:
        if key not in fields and not ignore_unknown:
            raise StrataError(unknown(key) if unknown else f"{prefix}{key} is not a field of {where} (its fields: {', '.join(fields)})")
    hints = typing.get_type_hints(schema)
    typed = OmegaConf.structured(schema)
    for name, f in fields.items():
        if name not in section:
            if f.default is MISSING and f.default_factory is MISSING:
                raise StrataError(f"{prefix}{name} has no value (set it on the command line: {prefix}{name}=...)")
            continue
        value = section[name]
        if dataclasses.is_dataclass(hints[name]):  # a nested group (finetune.unlabeled)
            typed[name] = checked(value, hints[name], f"{prefix}{name}")
        else:
            typed[name] = checked_field(schema, name, value, where)
    return OmegaConf.to_object(typed)


def given(instance, section: Mapping) -> dict:
    """The typed values of the fields that `section` sets (a layer class then fills in its own defaults)."""
    return {name: getattr(instance, name) for name in section if hasattr(instance, name)}


# -- pretraining's groups -------------------------------------------------------------------------------------------
@dataclass
class StackConfig:
    """The `model` group: the stack and its training schedule."""

    layers: List[int] = spec(LAYER_SIZES, is_layer_sizes)
    epochs: Any = spec("a positive integer or auto", lambda v: v == "auto" or is_count(v))
    steps: int = spec(POSITIVE_INT, is_count)
    batch_size: int = spec(POSITIVE_INT, is_count)
    optimizer: str = spec(f"one of {', '.join(OPTIMIZERS)}", one_of(*OPTIMIZERS))
    lr: float = spec(POSITIVE, is_number)
    weight_decay: float = spec(NON_NEGATIVE, lambda v: is_number(v, allow_zero=True))
    end_to_end_epochs: int = spec(NON_NEGATIVE_INT, lambda v: is_count(v, allow_zero=True))
    end_to_end_lr: Optional[float] = spec("null or a positive number", lambda v: v is None or is_number(v))
    codes: str = spec(f"one of {', '.join(CODES)}", one_of(*CODES), default="auto")
    codes_dtype: str = spec(f"one of {', '.join(CODE_DTYPES)}", one_of(*CODE_DTYPES), default="float32")
    holdout: float = spec(FRACTION, is_fraction, default=0.0)
    patience: int = spec(POSITIVE_INT, is_count, default=5)


def threads_field():
    return spec("auto, null or a positive number of threads", lambda v: v in ("auto", None) or is_count(v), default="auto")


@dataclass
class PretrainConfig:
    """The top-level fields of `python -m pretrain` (the groups have schemas of their own); a comparison's config
    (conf/compare.yaml) pretrains with the defaults given here."""

    seed: int = spec(SEED, is_seed)
    artifact: str = spec("a folder name")
    threads: Any = threads_field()
    pictures: bool = spec("true or false", default=False)
    resume: Optional[str] = spec("null or a run directory", default=None)


# -- a layer kind's options: its class's keyword arguments are the schema -------------------------------------------
TYPE_NAMES = {bool: "true or false", float: "a number", int: "an integer", str: "a string"}
NOT_OPTIONS = ("self", "n_in", "n_hidden", "init_seed", "optimizer", "lr", "weight_decay")  # the model group sets these


@functools.cache
def layer_schema(cls) -> type:
    """A dataclass of the keyword arguments a layer class takes (following `**options` up to its base classes), typed
    as they are annotated: the class's signature is the one statement of its options."""
    found: dict[str, tuple[Any, Any]] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        hints = typing.get_type_hints(init)
        parameters = inspect.signature(init).parameters.values()
        for p in parameters:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in NOT_OPTIONS:
                found.setdefault(p.name, (hints.get(p.name, Any), p.default))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    fields = []
    for name, (hint, default) in found.items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else ()
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        expect = TYPE_NAMES.get(base, "a value")
        annotation = Optional[base] if type(None) in args else base  # noqa: UP045
        fields.append((name, annotation, spec(f"{expect} or null" if type(None) in args else expect,
                                              default=MISSING if default is inspect.Parameter.empty else default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Options", fields)


def register(group: str, name: str, schema: type) -> None:
    ConfigStore.instance().store(group=f"schema/{group}", name=name, node=schema)


register("model", "stack", StackConfig)
register("pretrain", "pretrain", PretrainConfig)
for _kind, _cls in LAYER_KINDS.items():
    register("autoencoder", _kind, layer_schema(_cls))
