"""The VAE on MNIST beside the deterministic and adversarial variants, from one run.

For each variant, a 784-400-20 stack is pretrained greedily on MNIST's 60,000 training images (labels unused),
then trained end to end (the VAE and the adversarial autoencoder with their own objectives), with the layer
options of conf/autoencoder/<variant>.yaml. Reported:
- the VAE's negative ELBO per test image, in nats (Bernoulli likelihood of the grey-level pixels in [0, 1]),
  beside a model without a latent (every pixel Bernoulli with its training mean) for scale;
- test accuracy of a logistic regression on the codes (the VAE's posterior means) fitted on 100 and on 1000
  labels, balanced subsets of the training split outside the validation pool (finetune.labels.balanced_indices),
  mean and standard deviation over label draws; raw pixels as the baseline without pretraining.
The regression's settings are fixed (standardised features, C=1); the test set chooses nothing.

    python scripts/vae_mnist.py [--epochs 8] [--end-to-end-epochs 8] [--seeds 3] [--root ../shared/data/mnist]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pretrain import MNISTDataModule, negative_elbo, pretrain_stack  # noqa: E402
from pretrain.config import CONF_DIR, layer_options, to_dict  # noqa: E402
from finetune.labels import balanced_indices  # noqa: E402

VARIANTS = {"denoising": "denoising stack", "vae": "VAE (posterior means)", "adversarial": "adversarial autoencoder"}


def variant_options(variant: str, lr: float) -> dict:
    """The layer options exactly as `python -m pretrain autoencoder=<variant>` composes them."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_dict(compose("pretrain", overrides=[f"autoencoder={variant}", f"model.lr={lr}"]))
    return layer_options(cfg["autoencoder"], cfg["model"])


def probe(features_train: np.ndarray, y_train: np.ndarray, features_test: np.ndarray, y_test: np.ndarray,
          fit_index: torch.Tensor, n_labels: int, seeds: int) -> tuple[float, float]:
    """Test accuracy (mean, sd over label draws) of a logistic regression fitted on n balanced labels."""
    scores = []
    for seed in range(seeds):
        idx = fit_index[balanced_indices(torch.as_tensor(y_train)[fit_index], n_labels, seed)].numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        clf.fit(features_train[idx], y_train[idx])
        scores.append(clf.score(features_test, y_test))
    return float(np.mean(scores)), float(np.std(scores))


def mean_image_nll(x_train: torch.Tensor, x_test: torch.Tensor) -> float:
    """-log p(x) per test image when every pixel is Bernoulli with its training mean: a model without a latent."""
    p = x_train.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    return float(F.binary_cross_entropy(p.expand_as(x_test), x_test, reduction="sum") / len(x_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/mnist"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[400, 20])
    parser.add_argument("--epochs", type=int, default=8, help="per layer, greedy")
    parser.add_argument("--end-to-end-epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seeds", type=int, default=3, help="label draws per label count")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads: 1 is fastest for these small matrices, most of all on a busy machine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    data = MNISTDataModule(root=args.root, seed=0)
    data.setup()
    pre = lambda x: ((x - data.shift) / data.scale)  # noqa: E731 - the same preprocessing as the models'
    y_train, y_test = data.y_train.numpy(), data.y_test.numpy()
    t0 = time.perf_counter()
    raw = probe_all(pre(data.x_train).numpy(), y_train, pre(data.x_test).numpy(), y_test, data.fit_index, args)
    rows = [("raw pixels (no pretraining)", data.input_dim, None, None, raw, time.perf_counter() - t0)]
    for variant, name in VARIANTS.items():
        t0 = time.perf_counter()
        pl.seed_everything(0, verbose=False)
        result = pretrain_stack(data.unlabeled(), data.shift, data.scale, args.sizes, variant_options(variant, args.lr),
                                epochs=args.epochs, batch_size=args.batch_size, seed=0,
                                trainer_options={"enable_progress_bar": False}, end_to_end_epochs=args.end_to_end_epochs)
        model = result.model
        elbo = (negative_elbo(model, data.x_test), result.metrics["end_to_end"]["neg_elbo"]) if variant == "vae" else (None, None)
        accuracies = probe_all(model.embed(data.x_train).numpy(), y_train, model.embed(data.x_test).numpy(), y_test,
                               data.fit_index, args)
        rows.append((name, args.sizes[-1], *elbo, accuracies, time.perf_counter() - t0))
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    print(f"\nMNIST, {len(data.unlabeled())} unlabeled training images, stack 784-{'-'.join(map(str, args.sizes))}, "
          f"{args.epochs} epochs per layer + {args.end_to_end_epochs} end to end; logistic regression on the codes, "
          f"test accuracy (mean ± sd over {args.seeds} label draws)\n")
    label_cols = " | ".join(f"{n} labels" for n in args.labels)
    print(f"| features | dims | test -ELBO (nats) | train -ELBO (last epoch) | {label_cols} | seconds |")
    print("|" + "---|" * (5 + len(args.labels)))
    for name, dims, test_elbo, train_elbo, acc, seconds in rows:
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in acc)
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"| {name} | {dims} | {fmt(test_elbo)} | {fmt(train_elbo)} | {cells} | {seconds:.0f} |")
    print(f"\nWithout a latent (each pixel Bernoulli with its training mean): {mean_image_nll(pre(data.x_train), pre(data.x_test)):.1f} "
          f"nats per test image. Total {time.perf_counter() - started:.0f} s, {torch.get_num_threads()} torch threads.")


def probe_all(f_train, y_train, f_test, y_test, fit_index, args) -> list[tuple[float, float]]:
    return [probe(f_train, y_train, f_test, y_test, fit_index, n, args.seeds) for n in args.labels]


if __name__ == "__main__":
    main()
