"""Typed schemas of fine-tuning's config: the `finetune` group (with `finetune.unlabeled`, mode semisup's costs, and
`finetune.ladder`) and the top-level fields of `python -m finetune`. What each field may be; conf/finetune/default.yaml
holds the values. See pretrain.schema for how a section is checked."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these

from pretrain import StrataError
from pretrain.schema import (POSITIVE_INT, SEED, checked, is_count, is_number, is_seed, one_of, register, spec,
                             threads_field)

from .classifier import HEAD_CHOICES, MODES, SCHEDULES
from .semisupervised import CORRUPTIONS
AT_LEAST_0 = "a number >= 0"


def at_least_0():
    return spec(AT_LEAST_0, lambda v: is_number(v, allow_zero=True))


@dataclass
class UnlabeledConfig:
    """`finetune.unlabeled`: mode semisup's unlabeled batch and the weights of its costs (finetune/semisupervised.py)."""

    batch_size: int = spec(POSITIVE_INT, is_count)
    corruption: str = spec(f"one of {', '.join(CORRUPTIONS)}", one_of(*CORRUPTIONS))
    noise: float = at_least_0()
    reconstruction: float = at_least_0()
    consistency: float = at_least_0()
    balance: float = at_least_0()
    adversarial: float = at_least_0()
    radius: float = at_least_0()
    xi: float = spec("a probe norm in (0, 1), relative to the input's (a finite difference: keep it tiny)",
                     lambda v: 0 < v < 1)
    rampup: float = spec("a fraction of the steps in [0, 1]", lambda v: 0 <= v <= 1)

    def __post_init__(self):
        if self.corruption == "mask" and not self.noise < 1:
            raise StrataError(f"finetune.unlabeled.noise={self.noise} is not a masking probability in [0, 1)")


@dataclass
class LadderConfig:
    """`finetune.ladder`: mode ladder's noise and denoising weights (finetune/ladder.py); its unlabeled batch is
    `finetune.unlabeled.batch_size`."""

    noise: float = at_least_0()
    weights: List[float] = spec("a non-empty list of numbers >= 0 (lambda_0 for the input, then one per layer; "
                                "the last repeats)", lambda v: len(v) > 0 and all(is_number(w, allow_zero=True) for w in v))


@dataclass
class FinetuneConfig:
    """The `finetune` group: how the classifier is built and trained on the labeled subset."""

    mode: str = spec(f"one of {', '.join(MODES)}", one_of(*MODES))
    depth: Optional[int] = spec("null or a positive integer", lambda v: v is None or is_count(v))
    frozen_layers: int = spec(POSITIVE_INT, is_count)
    head: str = spec(f"one of {', '.join(HEAD_CHOICES)}", one_of(*HEAD_CHOICES))
    head_hidden: int = spec(POSITIVE_INT, is_count)
    dropout: float = spec("a probability in [0, 1)", lambda v: 0 <= v < 1)
    input_dropout: float = spec("a probability in [0, 1)", lambda v: 0 <= v < 1)
    optimizer: str = spec("an optimizer name")  # checked by pretrain.optimizers.make_optimizer
    lr: float = spec("a number > 0", is_number)
    encoder_lr_scale: float = at_least_0()
    weight_decay: float = at_least_0()
    schedule: str = spec(f"one of {', '.join(SCHEDULES)}", one_of(*SCHEDULES))
    batch_size: int = spec(POSITIVE_INT, is_count)
    steps: int = spec(POSITIVE_INT, is_count)
    min_passes: Optional[int] = spec(f"null or {POSITIVE_INT}", lambda v: v is None or is_count(v))
    epochs: int = spec(POSITIVE_INT, is_count)
    patience: Optional[int] = spec(f"null or {POSITIVE_INT}", lambda v: v is None or is_count(v))
    unlabeled: UnlabeledConfig = spec("the unlabeled batch's options")
    ladder: LadderConfig = spec("mode ladder's options")

    def __post_init__(self):
        if self.steps % self.epochs:
            raise StrataError(f"finetune.steps={self.steps} is not a multiple of finetune.epochs={self.epochs} "
                              "(the steps are cut into that many epochs of equal length)")

    def steps_for(self, labels: int) -> int:
        """The optimizer steps of a run on `labels` labeled training examples: `steps`, raised where needed to
        `min_passes` passes over them in batches of `batch_size` (a multiple of `epochs`). Every mode of a cell trains
        on the same labels, so they all take the same steps."""
        if self.min_passes is None:
            return self.steps
        per_epoch = math.ceil(self.min_passes * labels / min(self.batch_size, labels) / self.epochs)
        return max(self.steps, per_epoch * self.epochs)


@dataclass
class FinetuneRunConfig:
    """The top-level fields of `python -m finetune` (the groups have schemas of their own)."""

    seed: int = spec(SEED, is_seed)
    pretrained: Optional[str] = spec("null or an artifact folder")
    save_encoder: bool = spec("true or false")
    threads: Any = threads_field()


def check_options(options: dict) -> FinetuneConfig:
    """The `finetune` group, typed, each field a one-line error naming it when out of range."""
    return checked(options, FinetuneConfig, "finetune")


register("finetune", "default", FinetuneConfig)
register("finetune", "run", FinetuneRunConfig)
