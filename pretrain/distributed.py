"""Distributed data parallel runs (`trainer=ddp`): which process writes, and launches that cannot work.

Under DDP every rank runs the whole command: it loads the data, builds each layer and calls `fit`, in which
it trains on its own share of every epoch (`BatchLoader` shards by rank) while gradients are averaged, so
all ranks hold the same weights after each stage and compute the same codes for the next. Only the global
rank 0 writes files (artifact, metrics, checkpoints, logs).
"""
from __future__ import annotations

import os

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from .errors import StrataError


def is_global_zero() -> bool:
    """True in the process that writes: rank 0, or the only process.

    Lightning sets the rank from the environment (RANK, LOCAL_RANK, SLURM_PROCID) at import, and from the
    process group once a distributed `fit` has started; before that, the first process of a second node that
    Lightning's own launcher serves has local rank 0 but NODE_RANK > 0.
    """
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


def wait_for_all() -> None:
    """A barrier across ranks when a process group exists (after rank 0 wrote what the others will read)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def check_launch(trainer) -> None:
    """Refuse a multirun whose trainer would start its own ranks.

    Lightning's ddp launcher starts ranks 1.. by running the same command line again; inside a Hydra multirun
    (`-m`) that line is the whole sweep, so every rank would start every job. There the ranks must be
    started from outside, one process per device (torchrun, or SLURM with tasks_per_node = devices).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    launcher = getattr(trainer.strategy, "launcher", None)
    if multirun and isinstance(launcher, _SubprocessScriptLauncher) and not launcher.cluster_environment.creates_processes_externally:
        raise StrataError("trainer.strategy=ddp in a multirun (-m): Lightning would start each rank by re-running the "
                          "whole sweep. Run each job on its own, or start the ranks from outside "
                          "(torchrun, or hydra/launcher=slurm with tasks_per_node = trainer.devices)")
