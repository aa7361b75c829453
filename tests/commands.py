"""Running strata's commands the way a user does: as a real process, or through the same Hydra main in this process
(no start-up cost)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def run_process(*argv: str, cwd=REPO, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`python <argv...>` in a fresh process, with one torch thread (small models, a busy 2-core machine)."""
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def run_main(main, *argv: str, monkeypatch, capsys) -> tuple[int, str]:
    """(exit status, stderr) of a command's Hydra `main` called with `argv` as its command line."""
    monkeypatch.setattr(sys, "argv", ["strata", *argv])
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


class RecordReturns:
    """A Hydra callback (`+hydra.callbacks.returns._target_=commands.RecordReturns`) that keeps each job's return
    value, so that a test sees what a sweeper would optimise."""

    values: list = []

    def __init__(self, **kwargs):
        pass

    def on_job_end(self, config, job_return, **kwargs) -> None:
        RecordReturns.values.append(job_return.return_value)

    def __getattr__(self, name):  # Hydra calls the other hooks too: nothing to do there
        return lambda *args, **kwargs: None


class StageNames:
    """A callback for `trainer.callbacks` (`{_target_: commands.StageNames}`) that records, for each stage it is
    built for, its own identity and the name its logger logs under."""

    seen: list = []

    def __new__(cls, *args, **kwargs):
        import pytorch_lightning as pl

        class Recorder(pl.Callback):
            def on_train_start(self, trainer, pl_module):
                StageNames.seen.append((id(self), trainer.logger.version if trainer.logger else None))

        return Recorder()
