"""The `strata` command's dispatch (in this process): a verb runs that command's Hydra main; the verb a run was
started with reaches the processes it starts (Lightning's DDP reruns the command line without it); `--help` names
the command and lists the groups with their comments; a misspelt verb is one line with the nearest match."""
import sys

import pytest

from finetune.commands import main as strata
from pretrain import __version__
from pretrain.__main__ import main as pretrain_main
from pretrain.cli import COMMAND_ENV


def call(argv, monkeypatch, capsys, main=strata):
    monkeypatch.setattr(sys, "argv", ["strata", *argv])
    with pytest.raises(SystemExit) as done:
        main(argv) if main is strata else main()
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def test_version_usage_and_a_misspelt_verb(monkeypatch, capsys):
    monkeypatch.setenv(COMMAND_ENV, "")  # recorded, so that what the command sets is undone after the test
    monkeypatch.delenv(COMMAND_ENV)
    assert call(["--version"], monkeypatch, capsys)[:2] == (0, f"strata-autoencoders {__version__}\n")
    code, out, _ = call([], monkeypatch, capsys)
    assert code == 2 and "usage: strata <command>" in out and "  table " in out
    code, _, err = call(["pretrian"], monkeypatch, capsys)
    assert code == 2 and err.strip() == ("error: 'pretrian' is not a strata command (did you mean pretrain?); "
                                         "its commands: pretrain, finetune, compare, encode, table")


def test_a_verb_runs_its_command_and_reaches_the_processes_it_starts(monkeypatch, capsys):
    monkeypatch.setenv(COMMAND_ENV, "")  # recorded, so that what the command sets is undone after the test
    monkeypatch.delenv(COMMAND_ENV)
    code, out, _ = call(["finetune", "--help"], monkeypatch, capsys)
    assert code == 0 and out.startswith("strata finetune: Fine-tunes a classifier") and "   *default" in out
    import os

    assert os.environ[COMMAND_ENV] == "finetune"
    code, out, _ = call(["data.labels=50", "--help"], monkeypatch, capsys)  # a DDP rank: the same command, no verb
    assert code == 0 and out.startswith("strata finetune: ")


def test_python_m_help_names_the_module_and_every_group(monkeypatch, capsys):
    monkeypatch.setenv(COMMAND_ENV, "")  # recorded, so that what the command sets is undone after the test
    monkeypatch.delenv(COMMAND_ENV)
    code, out, _ = call(["--help"], monkeypatch, capsys, main=pretrain_main)
    assert code == 0 and out.startswith("python -m pretrain: Greedy layer-wise pretraining")
    for group in ("data", "autoencoder", "model", "trainer", "logger", "experiment"):
        assert f"  {group}:" in out.splitlines(), group
    assert "   *csv          Lightning's CSV logger (the default): <run dir>/logs/<stage>/metrics.csv, one folder per stage" in out
    assert "  trainer.accelerator=auto    # auto: a GPU (or Apple MPS) where there is one, else the CPU; cpu, gpu, mps" in out
