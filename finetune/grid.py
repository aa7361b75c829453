"""The comparison's grid: pretrain once (or reuse an artifact), then fine-tune and test every label budget x seed x
mode; while it runs, results.partial.csv holds the runs done so far."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from tqdm.auto import tqdm

from pretrain import StrataError
from pretrain.config import build_data, to_dict
from pretrain.schema import check_seed
from pretrain.distributed import is_global_zero
from pretrain.files import replace_file
from pretrain.stack import DeepAutoencoder

from .classifier import MODES
from .labels import labeled_subset
from .report import OUTPUTS, PARTIAL, result_row, write_csv, write_outputs
from .run import build_encoder, check_options, finetune_once, load_pretrained


def parse_budgets(values) -> list:
    budgets = []
    for v in values:
        if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            budgets.append(v)
        else:
            raise StrataError(f"budgets: {v!r} is not a positive integer or 'all'")
    if not budgets:
        raise StrataError("budgets is empty (expected e.g. [100, 1000, all])")
    return budgets


def check_modes(modes) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise StrataError(f"modes: {unknown[0]!r} is not one of {', '.join(MODES)}")
    if not modes:
        raise StrataError(f"modes is empty (expected some of {', '.join(MODES)})")


def plan_modes(modes, depth: int) -> list[str]:
    check_modes(modes)
    return [m for m in modes if not (m == "partial" and depth < 2)]  # partial needs a layer left to train


def run_comparison(cfg: DictConfig, run_dir: Path, pretrain_fn=None) -> list[dict]:
    """Run the whole grid; `pretrain_fn(cfg, run_dir) -> artifact path` pretrains when `pretrained` is not set."""
    resolved = to_dict(cfg)
    budgets, seeds = parse_budgets(resolved["budgets"]), list(resolved["seeds"])
    outputs = [run_dir / name for name in (*OUTPUTS, PARTIAL)]
    existing = [str(p) for p in outputs if p.exists()]
    if existing:
        raise StrataError(f"{existing[0]} already exists: an earlier result is never overwritten")
    if not seeds:
        raise StrataError("seeds is empty (expected e.g. [0, 1, 2])")
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    options = resolved["finetune"]
    check_options(options)
    check_modes(resolved["modes"])
    data = build_data(cfg)
    def subset(budget, seed):
        return labeled_subset(data, budget, seed, data.val_from, data.val_fraction)

    for budget in budgets:  # an impossible budget fails now, not after pretraining
        subset(budget, seeds[0])
    artifact = resolved["pretrained"] or pretrain_fn(cfg, run_dir)
    pretrained = load_pretrained(artifact, "semisup" if "semisup" in resolved["modes"] else "unfrozen")
    encoder_view = pretrained.encoder() if isinstance(pretrained, DeepAutoencoder) else pretrained
    depth = options["depth"] or len(pretrained.layers)
    modes = plan_modes(resolved["modes"], depth)

    rows = []
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = [(b, s, m) for b in budgets for s in seeds for m in modes]
    bar = tqdm(grid, desc="compare", unit="run", disable=not resolved["progress"])
    for budget, seed, mode in bar:
        bar.set_description(f"labels={budget} seed={seed} {mode}")
        encoder = build_encoder(mode, data, pretrained, [], [], seed, depth=options["depth"], source=f"pretrained={artifact}")
        _, m = finetune_once(data, encoder, {**options, "mode": mode}, {**resolved["trainer"], "enable_progress_bar": False},
                             seed=seed, threads=resolved["threads"], subset=subset(budget, seed))
        rows.append(result_row(budget, m))
        if is_global_zero():  # the runs so far, in case the grid is cut short; results.csv is only the whole grid
            replace_file(run_dir / PARTIAL, lambda tmp: write_csv(rows, tmp))
    if is_global_zero():  # under DDP every rank ran the same grid; rank 0 writes
        write_outputs(rows, run_dir, title=f"{data.source_name()}, encoder {encoder_view.input_dim}-{'-'.join(map(str, encoder_view.sizes[:depth]))}",
                      artifact=str(artifact), classes=data.classes)
    return rows
