"""A Hydra callback (conf/*.yaml, `hydra.callbacks`) that checks the output directory before a run starts.

Hydra creates the run directory itself, before the command's code runs; one it cannot create or write (under a
regular file, on a read-only file system, without permission) would end in a traceback from Hydra's internals.
This turns it into one line naming the directory and status 2, like every other bad input.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback


class CheckOutputDir(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        check_writable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")


def check_writable(path: str, field: str) -> None:
    """Create `path` (and its parents) and write a scratch file into it, or exit with a one-line error."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        print(f"error: {field}={path}: cannot write the run's results there ({err.strerror or err}"
              f"{f': {err.filename}' if err.filename and str(err.filename) != str(path) else ''})", file=sys.stderr)
        sys.exit(2)
