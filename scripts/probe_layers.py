"""Linear probes of a development-suite run's frozen codes: the top layer's, the first layer's, and every layer's
concatenated, each under scikit-learn's LogisticRegression on the same labeled subset.

It asks whether mode frozen loses to scratch because the probe reads the top code only (a lever of issue 18):

    python scripts/probe_layers.py --tag ladder-val          # the artifacts of `devsuite.py run --split val --tag ladder-val`

The artifacts are pretrained on each set's training inputs (no labels); the labeled subset is a seeded draw of
`budget` training examples, and accuracy is on the split's held-out part: run it on a val run's artifacts, so that
nothing here sees a test split.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pretrain import load_encoder  # noqa: E402
from scripts.devsuite import SETS  # noqa: E402

FEATURES = ("top", "first", "concatenated")


@torch.no_grad()
def layer_codes(encoder, x: np.ndarray) -> list[np.ndarray]:
    """Each layer's code of the raw inputs `x`, lowest first."""
    h = encoder.preprocess(torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float32))
    codes = []
    for block in encoder.layers:
        h = block(h)
        codes.append(h.numpy())
    return codes


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    return float(LogisticRegression(max_iter=2000).fit(train, y_train).score(test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="a devsuite run under outputs/devsuite/ whose artifacts to probe")
    parser.add_argument("--split", choices=["val", "test"], default="val", help="the split that run used")
    parser.add_argument("--data", default=str(ROOT / "outputs" / "devsuite" / "data"), help="the suite's folder")
    parser.add_argument("--seed", type=int, default=0, help="draws the labeled subset")
    args = parser.parse_args()
    run = ROOT / "outputs" / "devsuite" / args.tag
    if not run.is_dir():
        raise SystemExit(f"error: {run}: no such run (expected `python scripts/devsuite.py run --tag {args.tag}`)")
    accuracies = {f: [] for f in FEATURES}
    print("| set | labels | " + " | ".join(FEATURES) + " |\n|---|---|" + "---|" * len(FEATURES))
    for name, budgets in SETS.items():
        data = np.load(Path(args.data) / f"{name}.{args.split}.npz")
        encoder = load_encoder(run / name / "encoder").eval()
        train, test = layer_codes(encoder, data["x_train"]), layer_codes(encoder, data["x_test"])
        features = {"top": (train[-1], test[-1]), "first": (train[0], test[0]),
                    "concatenated": (np.hstack(train), np.hstack(test))}
        for budget in budgets:
            labeled = np.random.default_rng(args.seed).choice(len(data["y_train"]), budget, replace=False)
            row = []
            for f in FEATURES:
                a, b = features[f]
                accuracies[f].append(100 * probe(a[labeled], data["y_train"][labeled], b, data["y_test"]))
                row.append(f"{accuracies[f][-1]:.2f}")
            print(f"| {name} | {budget} | " + " | ".join(row) + " |", flush=True)
    print(f"\nMean over the {len(accuracies['top'])} cells ({args.split} splits): "
          + ", ".join(f"{f} {np.mean(v):.2f}" for f, v in accuracies.items()))


if __name__ == "__main__":
    main()
