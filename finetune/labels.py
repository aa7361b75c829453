"""Label budgets: the labeled subset a fine-tuning run trains on and the split it validates on, as a pure function
of the data, the budget and the seed (the data module is never changed).

Realistic by default (Oliver et al. 2018): with a budget of N labels nothing uses a label beyond those N.
    val_from=none     no validation: a fixed schedule, the last step's weights are the result
    val_from=labels   `val_fraction` of the N labels validate (stratified), the rest train
    val_from=pool     the data's held-out labeled pool validates: labels beyond the budget, named in every report
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from pretrain import ArrayDataModule, StrataError
from pretrain.data import VAL_FROM
from pretrain.rows import take


class LabeledSubset(NamedTuple):
    train: tuple[torch.Tensor, torch.Tensor]            # (x, y) to train on
    val: tuple[torch.Tensor, torch.Tensor] | None       # (x, y) to validate on, or None (fixed schedule)
    validation: str                                     # what validates, in words, for metrics and reports


def balanced_indices(y: torch.Tensor, n: int, seed: int, names: list | None = None) -> torch.Tensor:
    """Draw `n` indices of `y` balanced across classes: n // C from each, the remainder to classes drawn at random.

    Reproducible from `seed`. Raises StrataError when a class has too few examples.
    """
    classes = torch.unique(y)
    g = torch.Generator().manual_seed(seed)
    per_class = torch.full((len(classes),), n // len(classes), dtype=torch.long)
    per_class[torch.randperm(len(classes), generator=g)[: n % len(classes)]] += 1
    chosen = []
    for c, k in zip(classes.tolist(), per_class.tolist()):
        members = torch.nonzero(y == c).flatten()
        if k > len(members):
            name = c if names is None else names[c]
            raise StrataError(f"data.labels={n} asks for {k} examples of class {name!r}, but the training split holds only {len(members)}")
        chosen.append(members[torch.randperm(len(members), generator=g)[:k]])
    out = torch.cat(chosen)
    return out[torch.randperm(len(out), generator=g)]


def dealt_by_class(y: torch.Tensor) -> torch.Tensor:
    """Positions of `y` dealt out class by class, round-robin (the larger classes first in each round, ties in the
    given order), so that a first part of them and the rest are both as balanced across classes as `y` allows."""
    _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    rank = torch.zeros_like(inverse)  # each position's place among the members of its class
    for c in range(len(counts)):
        rank[inverse == c] = torch.arange(int(counts[c]))
    key = rank * (len(y) + 1) + (counts.max() - counts[inverse])
    return torch.sort(key, stable=True).indices


def labeled_subset(data: ArrayDataModule, budget: int | str, seed: int, val_from: str = "none",
                   val_fraction: float = 0.2) -> LabeledSubset:
    """`budget` training labels ("all": every training example outside the pool) drawn balanced across classes by
    `seed`, never from the validation pool or the test set, and the validation `val_from` names."""
    if data.y_train is None:
        raise StrataError(f"{data.source_name()}: has no y_train, so there is nothing to fine-tune on")
    if val_from not in VAL_FROM:
        raise StrataError(f"data.val_from={val_from!r} is not one of {', '.join(VAL_FROM)}")
    if not (budget == "all" or (isinstance(budget, int) and not isinstance(budget, bool) and budget > 0)):
        raise StrataError(f"data.labels={budget!r} is not a positive integer or 'all'")
    fit = data.fit_index
    if budget == "all":
        train_idx = fit[torch.randperm(len(fit), generator=torch.Generator().manual_seed(seed))]
    else:
        if budget > len(fit):
            raise StrataError(f"data.labels={budget} exceeds the {len(fit)} labeled training examples outside the validation pool")
        train_idx = fit[balanced_indices(data.y_train[fit], budget, seed, data.classes)]
    if val_from == "none":
        return LabeledSubset((take(data.x_train, train_idx), data.y_train[train_idx]), None, "none (a fixed schedule, the last step)")
    if val_from == "pool":
        val_idx = data.val_index
        if len(val_idx) == 0:
            raise StrataError(f"{data.source_name()}: the validation pool is empty (set data.val_size > 0, or data.val_from=labels or none)")
        validation = f"the labeled pool of {len(val_idx)} training examples (labels beyond the budget)"
    else:
        k = max(1, int(round(val_fraction * len(train_idx)))) if 0 < val_fraction < 1 else 0
        if not 1 <= k < len(train_idx):
            raise StrataError(f"data.val_fraction={val_fraction} of {len(train_idx)} labels leaves no validation or nothing "
                              "to train on (expected a fraction in (0, 1) that leaves both)")
        dealt = dealt_by_class(data.y_train[train_idx])  # stratified: no class loses all its training labels
        val_idx, train_idx = train_idx[dealt[:k].sort().values], train_idx[dealt[k:].sort().values]
        validation = f"{k} of the {len(train_idx) + k} budgeted labels"
    return LabeledSubset((take(data.x_train, train_idx), data.y_train[train_idx]), (take(data.x_train, val_idx), data.y_train[val_idx]),
                         validation)
