"""MNIST features from strata versus raw pixels, under scikit-learn classifiers, as a markdown table.

    python scripts/features_mnist.py                       # 784-500-500 denoising, 5 epochs a layer
    python scripts/features_mnist.py --epochs 2 --labels 1000 all --out results.md

A denoising stack is pretrained (EncoderTransformer) on all 60,000 MNIST training inputs, no labels. Each
classifier then learns from N labeled training images, drawn balanced by the seed from the 50,000 outside
the validation pool (`all`: all 50,000), once on raw pixels scaled to [0, 1] (the encoder's own
preprocessing, so the baseline is not handicapped) and once on the top layer's codes, and is scored on the
10,000 test images. The classifiers' settings are fixed in advance (below); nothing is chosen on the test
set, and no choice is made at all, so the validation pool goes unused.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from finetune.features import EncoderTransformer
from finetune.labels import labeled_subset
from pretrain import MNISTDataModule
from pretrain.files import new_file
from pretrain.errors import exit_on_strata_error

REPO = Path(__file__).resolve().parent.parent
CLASSIFIERS = {
    "logistic regression (C=1)": lambda: LogisticRegression(C=1.0, max_iter=500),
    "5-nearest neighbours": lambda: KNeighborsClassifier(n_neighbors=5, n_jobs=-1),
}


def parse_labels(values: list[str]) -> list[int | str]:
    out = []
    for v in values:
        if v != "all" and not (v.isdigit() and int(v) > 0):
            raise SystemExit(f"error: --labels {v!r} is not a positive integer or 'all'")
        out.append(v if v == "all" else int(v))
    return out


@exit_on_strata_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "mnist"), help="folder of the MNIST IDX files")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 500], help="hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=5, help="pretraining epochs per layer")
    parser.add_argument("--noise", type=float, default=0.25, help="masking probability of the denoising layers")
    parser.add_argument("--labels", nargs="+", default=["1000", "all"], help="label budgets (integers or 'all')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=lambda v: v if v == "auto" else int(v), default=1,
                        help="torch threads while pretraining, a number or auto (1: on a busy 2-core machine a second "
                             "thread made each 784-500 step 10-20x slower)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads of the classifiers (1: lbfgs' many small products only lose from more)")
    parser.add_argument("--out", help="also write the table to this markdown file (must not exist)")
    args = parser.parse_args()
    budgets = parse_labels(args.labels)
    if args.out and Path(args.out).exists():
        raise SystemExit(f"error: {args.out} already exists: an earlier result is never overwritten")

    data = MNISTDataModule(root=args.root, seed=args.seed)
    data.setup()

    started = time.perf_counter()
    encoder = EncoderTransformer(sizes=tuple(args.sizes), corruption="mask", noise=args.noise, epochs=args.epochs,
                                 batch_size=128, scaling="unit", pixel_max=255.0, random_state=args.seed,
                                 threads=args.threads, verbose=True)
    encoder.fit(data.unlabeled().numpy())
    pretrain_seconds = time.perf_counter() - started
    recon = ", ".join(f"layer {m['layer']} {m['recon']:.2f}" for m in encoder.metrics_["layers"])
    print(f"pretrained 784-{'-'.join(map(str, args.sizes))} on {len(data.unlabeled())} inputs in {pretrain_seconds:.0f} s "
          f"(last-epoch reconstruction loss: {recon})")

    featurizers = {  # name -> raw inputs to features
        "raw pixels (784)": lambda x: x / 255.0,
        f"strata codes ({args.sizes[-1]})": encoder.transform,
    }
    x_test, y_test = data.x_test.numpy(), data.y_test.numpy()
    test_features = {name: featurize(x_test) for name, featurize in featurizers.items()}
    rows = []
    for labels in budgets:
        (x_train, y_train), _, _ = labeled_subset(data, labels, args.seed)  # balanced, drawn by the seed
        train_features = {name: featurize(x_train.numpy()) for name, featurize in featurizers.items()}
        for name, make in CLASSIFIERS.items():
            cells = []
            for feature_name in featurizers:
                t = time.perf_counter()
                with threadpool_limits(limits=args.blas_threads, user_api="blas"):
                    model = make().fit(train_features[feature_name], y_train.numpy())
                    accuracy = float((model.predict(test_features[feature_name]) == y_test).mean())
                cells.append((accuracy, time.perf_counter() - t))
                print(f"  {name}, {len(y_train)} labels, {feature_name}: test accuracy {accuracy:.4f} ({cells[-1][1]:.0f} s)")
            rows.append((name, len(y_train), cells))

    names = list(featurizers)
    lines = [f"| classifier | labels | {' | '.join(names)} |", "|---|---:|" + "---:|" * len(names)]
    for name, n, cells in rows:
        lines.append(f"| {name} | {n} | " + " | ".join(f"{acc:.4f} ({sec:.0f} s)" for acc, sec in cells) + " |")
    table = "\n".join(lines)
    note = (f"Test accuracy on the 10,000 MNIST test images (seconds to fit and predict). Features: a "
            f"784-{'-'.join(map(str, args.sizes))} denoising stack (masking {args.noise}, {args.epochs} epochs a layer, "
            f"seed {args.seed}), pretrained on the 60,000 training inputs in {pretrain_seconds:.0f} s.")
    print("\n" + note + "\n\n" + table)
    if args.out:
        new_file(args.out, lambda tmp: tmp.write_text(note + "\n\n" + table + "\n"))


if __name__ == "__main__":
    main()
