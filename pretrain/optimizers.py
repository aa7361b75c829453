"""The optimizers a config names, for the layers, the end-to-end stage and fine-tuning."""
from __future__ import annotations

import torch

from .errors import StrataError

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
FUSED_DEVICES = ("cpu", "cuda")
MODEL_FIELDS = ("optimizer", "lr", "weight_decay")  # the layers' training settings, from the model group


def make_optimizer(params, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """The named optimizer over `params` (tensors or param groups), fused where the device has the kernel.

    A fused step updates every tensor in one pass instead of a chain of elementwise ops per tensor: the same
    update (to float rounding), several times faster on CPU, where it is a large part of a small layer's step.
    """
    if name not in OPTIMIZERS:
        raise StrataError(f"optimizer={name!r} is not one of {', '.join(OPTIMIZERS)}")
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in tensors) or None
    extra = {"momentum": momentum} if name == "sgd" else {}
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, fused=fused, **extra)
