"""Does a greedy layer over-train? Each layer's reconstruction of held-out training inputs, epoch by epoch.

    python scripts/holdout_curves.py --tag h1 [--holdout 0.1] [--patience 5] [--sets ...] [override ...]

Pretrains the development suite's sets (their validation versions, `scripts/devsuite.py build` first) with the
defaults as shipped plus `model.holdout` and `model.patience` (pretrain/holdout.py) and prints, per set and layer,
the epochs trained against the schedule's, the epoch kept, and the held-out loss at the first, kept and last epoch.
No label is read. The artifacts and metrics go to outputs/holdout/<tag>/<set>/ (--out for another folder).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pretrain import run_pretraining  # noqa: E402
from pretrain.config import CONF_DIR, epochs_for_steps  # noqa: E402
from devsuite import SETS  # noqa: E402  (scripts/ is on the path when this file runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="config overrides for every pretraining run")
    parser.add_argument("--data", default=str(ROOT / "outputs" / "devsuite" / "data"), help="the suite's folder")
    parser.add_argument("--tag", required=True, help="the run's folder under --out")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "holdout"), help="where the runs' folders go")
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_intermixed_args()
    out = Path(args.out) / args.tag
    if out.exists():
        raise SystemExit(f"error: {out} already exists: an earlier result is never overwritten (choose another --tag)")
    from hydra import compose, initialize_config_dir

    lines = ["| set | layer | epochs trained / scheduled | epoch kept | held-out loss: first | kept | last | training loss, last |",
             "|---|---|---|---|---|---|---|---|"]
    for name in args.sets:
        path = Path(args.data) / f"{name}.val.npz"
        overrides = ["data=npz", f"data.path={path}", f"model.holdout={args.holdout}", f"model.patience={args.patience}",
                     "pictures=false", *args.overrides]
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("pretrain", overrides=overrides)
        run_dir = out / name
        run_dir.mkdir(parents=True)
        run_pretraining(cfg, run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        scheduled = (cfg.model.epochs if cfg.model.epochs != "auto" else
                     epochs_for_steps(cfg.model.steps, metrics["n_train"], cfg.model.batch_size))
        for layer in metrics["layers"]:
            held = layer["holdout_recon_per_epoch"]
            lines.append(f"| {name} | {layer['layer']} | {layer['epochs_trained']} / {scheduled} | {layer['best_epoch']} | "
                         f"{held[0]:.3f} | {layer['holdout_recon']:.3f} | {held[-1]:.3f} | {layer['recon']:.3f} |")
        print("\n".join(lines[-len(metrics["layers"]):]), flush=True)
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
