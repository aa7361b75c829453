"""What strata's commands do to their own process, once, at start: quieter Lightning and a faster allocator and
garbage collector. Never done on import or by the Python API (a library must not change its user's process);
while strata trains, `quiet_lightning` silences Lightning's chatter for that call only and restores everything.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import warnings

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric")
# warnings that do not apply to strata's in-memory tensors and fixed schedules
QUIET_WARNINGS = (".*does not have many workers.*", ".*smaller than the logging interval.*", ".*LeafSpec.*is deprecated.*",
                  ".*GPU available but not used.*", ".*isinstance.treespec, LeafSpec.*",
                  ".*module.s. in eval mode at the start of training.*",
                  ".*validation_step. but have no .val_dataloader.*",  # a fixed schedule: nothing to validate on
                  # the epoch values strata logs are reduced over ranks already (TracksReconstruction, torchmetrics)
                  ".*when logging on epoch level in distributed setting.*")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def ignore_quiet_warnings() -> None:
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@contextlib.contextmanager
def quiet_lightning():
    """Within: Lightning's start-up chatter (GPU/TPU availability, tips) and the warnings above are silenced;
    the warning filters and the loggers' levels are restored on exit."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        ignore_quiet_warnings()
        for log in loggers:
            if log.getEffectiveLevel() < logging.WARNING:
                log.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for log, level in zip(loggers, levels):
                log.setLevel(level)


@functools.cache
def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse (Linux; elsewhere a no-op returning False).

    A training step frees and re-allocates the same tensors (activations, gradients: megabytes each). By default
    glibc gives blocks of that size back to the system and serves the next ones from fresh pages, which the
    kernel must fault in and zero: some 400 page faults per step of a 784-1000 layer. Serving blocks up to
    32 MB from the heap and keeping up to 256 MB of its free top removes them; larger blocks (whole data sets,
    codes) are still returned to the system when freed.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 256 << 20))
    except (OSError, AttributeError):
        return False


@functools.cache
def freeze_long_lived_objects() -> None:
    """Exempt the objects that exist when a command starts (imported modules, the config) from the cycle
    collector's full scans.

    A full collection walks every tracked object, some 450,000 once torch, Lightning and Hydra are imported:
    0.2 s, and setting up a Trainer triggers one during its fit. Frozen objects are still freed by reference
    counting; only garbage cycles among them would never be collected, so the garbage is collected first, once.
    """
    gc.collect()
    gc.freeze()


def tune_command_process() -> None:
    """What a strata command (never the library) does to its process before it trains."""
    ignore_quiet_warnings()
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    reuse_freed_memory()
    freeze_long_lived_objects()


@contextlib.contextmanager
def kept_random_state():
    """Within: seed what you like (`pl.seed_everything` seeds Python's, numpy's and torch's generators and sets
    PL_GLOBAL_SEED); on exit, every generator and those variables are as they were."""
    import os
    import random

    import numpy as np
    import torch

    python, numpy = random.getstate(), np.random.get_state()
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
