"""The `strata` command: one verb per job, each a Hydra app configured by one file of the installed configs.

    strata pretrain [group=option] [key=value ...]     # python -m pretrain
    strata finetune ...                                # python -m finetune
    strata compare ...                                 # the main job: pretrain once, fine-tune over budgets x seeds x modes
    strata encode pretrained=<artifact> out=x.npz      # python -m finetune.encode
    strata table ...                                   # the MNIST table (scripts/mnist_table.py)
    strata <verb> --help | strata --version
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pretrain import __version__, run_pretraining
from pretrain.cli import COMMAND_ENV, strata_main
from pretrain.config import CONF_DIR, to_dict
from pretrain.distributed import is_global_zero
from pretrain.errors import exit_on_strata_error
from pretrain.loggers import CSV, StageLoggers

from .gather import gather_comparison
from .grid import run_comparison

DISTRIBUTION = "strata-autoencoders"
VERBS = {  # verb: (module, its Hydra main, what it does)
    "pretrain": ("pretrain.__main__", "main", "greedy layer-wise pretraining of a stacked autoencoder (writes the artifact)"),
    "finetune": ("finetune.__main__", "main", "fine-tune a classifier on a labeled subset (or train it from scratch)"),
    "compare": ("finetune.commands", "compare", "the main job: pretrain once, fine-tune over label budgets x seeds x modes"),
    "encode": ("finetune.encode", "main", "a data set through a pretrained encoder, written as features (.npz, ONNX)"),
    "table": ("finetune.table", "main", "the semi-supervised MNIST table beside scikit-learn baselines"),
}


@strata_main(CONF_DIR, "compare")
@exit_on_strata_error
def compare(cfg: DictConfig) -> None:
    """`strata compare` (scripts/compare.py): writes results.csv, report.md and accuracy_vs_labels.png."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("gather"):
        gather_comparison(cfg.gather, run_dir)
    else:
        run_comparison(cfg, run_dir, pretrain_fn=run_pretraining)
    if not is_global_zero():
        return
    StageLoggers(to_dict(cfg).get("logger", CSV)).log_images(run_dir, "compare", {"accuracy_vs_labels": run_dir / "accuracy_vs_labels.png"})
    print((run_dir / "report.md").read_text())
    print(f"results: {run_dir}/results.csv, report.md, accuracy_vs_labels.png")


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"strata {__version__}: greedy layer-wise autoencoder pretraining, fine-tuning on few labels, encoders as features",
             "", "usage: strata <command> [group=option ...] [key=value ...]   (-m: a sweep; strata <command> --help)", "",
             "commands:"]
    lines += [f"  {verb:<{width}}  {summary}" for verb, (_, _, summary) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    """The console script. The verb is passed on to the processes a run starts (Lightning's DDP reruns the command
    line without it) in the environment variable STRATA_COMMAND."""
    argv = sys.argv[1:] if argv is None else list(argv)
    inherited = os.environ.get(COMMAND_ENV)
    if argv and argv[0] in VERBS:
        verb, rest = argv[0], argv[1:]
    elif inherited in VERBS and not (argv and argv[0] in ("-h", "--help", "--version")):
        verb, rest = inherited, argv
    elif not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    elif argv[0] == "--version":
        print(f"{DISTRIBUTION} {__version__}")
        sys.exit(0)
    else:
        close = difflib.get_close_matches(argv[0], list(VERBS), n=1)
        print(f"error: {argv[0]!r} is not a strata command{f' (did you mean {close[0]}?)' if close else ''}; "
              f"its commands: {', '.join(VERBS)}", file=sys.stderr)
        sys.exit(2)
    module, attr, _ = VERBS[verb]
    os.environ[COMMAND_ENV] = verb
    sys.argv = [sys.argv[0], *rest]
    return getattr(importlib.import_module(module), attr)()


if __name__ == "__main__":
    main()
