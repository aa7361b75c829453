"""A Hydra callback (conf/*.yaml, `hydra.callbacks`) that checks the output directory before a run starts.

Hydra writes its record of a run (`.hydra/config.yaml`, `overrides.yaml`, `hydra.yaml`) and its log into the run
directory before the command's code runs. So this callback, which runs before Hydra writes anything, is where a
run directory that holds an earlier run is refused: otherwise the earlier results would sit beside a record
rewritten by the refused run. A resumed pretraining run (`resume=<its directory>`) continues its own run: its record
goes beside the first one, into `.hydra/resumed_<k>/`. A directory that cannot be created or written (under a
regular file, on a read-only file system) is one line naming it and status 2, like every other bad input.

Under DDP every rank runs the command into the same directory: only the process that writes (global rank 0)
checks it, and the other ranks write no record of their own (they may start before or after rank 0; their job
logs, `*.log`, are not taken for an earlier run).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf, open_dict, read_write

from .distributed import is_global_zero


class CheckOutputDir(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        if not is_global_zero():
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
            return
        path = Path(config.hydra.run.dir)
        earlier = sorted(p.name for p in path.iterdir() if p.suffix != ".log") if path.is_dir() else []
        if earlier and OmegaConf.select(config, "resume", default=None) is None:
            refuse(f"hydra.run.dir={path} holds an earlier run ({', '.join(earlier[:4])}{', ...' if len(earlier) > 4 else ''}): "
                   "its results and its record are never overwritten; choose another hydra.run.dir")
        if earlier:  # a resumed run: its own record beside the first run's
            k = 1
            while (path / ".hydra" / f"resumed_{k}").exists():
                k += 1
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = f".hydra/resumed_{k}"
        check_writable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        if not is_global_zero():
            return
        path = Path(config.hydra.sweep.dir)
        if path.is_dir() and any(path.iterdir()):
            refuse(f"hydra.sweep.dir={path} holds an earlier sweep: its jobs are never overwritten; choose another hydra.sweep.dir")
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_writable(path: str, field: str) -> None:
    """Create `path` (and its parents) and write a scratch file into it, or exit with a one-line error."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        refuse(f"{field}={path}: cannot write the run's results there ({err.strerror or err}"
               f"{f': {err.filename}' if err.filename and str(err.filename) != str(path) else ''})")
