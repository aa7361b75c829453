"""The development suite: the data sets strata's defaults are chosen on, and the comparison run on each.

    python scripts/devsuite.py build [--heldout]              # writes the sets into outputs/devsuite/data/ (once)
    python scripts/devsuite.py run --tag r1 [override ...]    # compare + baselines on every set's validation split
    python scripts/devsuite.py run --split test --tag final   # once the defaults are frozen: the test splits
    python scripts/devsuite.py table --tag final [--split test]  # an earlier run's table again, from its results.json
    python scripts/devsuite.py run --split test --sets rotated background rectangles wine iris --tag heldout  # held out

Every set is an .npz as a user would give it (`python scripts/compare.py data=npz data.path=<file>`), in two
versions: `<name>.val.npz`, whose x_test/y_test are a validation split (settings are chosen on these), and
`<name>.test.npz`, whose x_test/y_test are the set's test split (reported once the settings are frozen). The image
sets are transformations of MNIST's training images only (the MNIST test set is never read): 12,000 training
images (the size of the Larochelle et al. 2007 sets), 2,000 validation images and 10,000 test images drawn from
training images 50,000 to 59,999. The others are scikit-learn's embedded sets and a synthetic tabular one.

The held-out sets, `build --heldout`, choose nothing: three of the Larochelle et al. 2007 kind, with kinds of
variation the suite does not hold (rotation, a background of noise, shapes instead of digits), where strata is set
beside the published figures of stacked denoising autoencoders (Vincent et al. 2010, Table 3, SdA-3 with 10,000
training labels), and two small tabular sets of scikit-learn's (wine, iris). They are the closest thing here to the
unseen sets the defaults are meant for. Only their test splits are written, run once with the defaults as shipped:
`run --split test --sets rotated background rectangles wine iris`.

`run` runs `scripts/compare.py`'s comparison (defaults as a user gets them, plus the overrides given) and the
scikit-learn baselines on the same labeled subsets, and prints one table: accuracy (%) per set, budget and mode,
the best baseline, and whether each pretrained mode beats scratch and strata's best mode beats the best baseline.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from finetune.baselines import run_baselines  # noqa: E402
from finetune.classifier import MODES as ALL_MODES  # noqa: E402
from finetune.grid import run_comparison  # noqa: E402
from finetune.summary import mean_spread  # noqa: E402
from pretrain.files import new_file  # noqa: E402
from pretrain import run_pretraining  # noqa: E402
from pretrain.config import CONF_DIR, build_data  # noqa: E402
from pretrain.idx import read_idx  # noqa: E402

IMAGE_BUDGETS = [100, 1000]  # from few labels to about 10% of the training set
SETS = {  # name -> label budgets
    "translated": IMAGE_BUDGETS, "occluded": IMAGE_BUDGETS, "elastic": IMAGE_BUDGETS, "inverted": IMAGE_BUDGETS,
    "saltpepper": IMAGE_BUDGETS, "downsampled": IMAGE_BUDGETS,
    "digits": [20, 100], "breast_cancer": [20, 40], "synthetic": [100, 1000],
}
N_TRAIN, N_VAL, N_TEST = 12000, 2000, 10000
HELDOUT = {"rotated": [100, 1000, "all"], "background": [100, 1000, "all"], "rectangles": [100, "all"],
           "wine": [20, "all"], "iris": [20, "all"]}
HELDOUT_TRAIN = {"rotated": 10000, "background": 10000, "rectangles": 1000}  # Larochelle et al. 2007's training sets
SDA3_ERROR = {"rotated": 9.53, "background": 10.30, "rectangles": 1.99}  # Vincent et al. 2010, Table 3 (test error %)
BUDGETS = {**SETS, **HELDOUT}
MODES = ["scratch", "frozen", "unfrozen", "semisup"]  # the default; --modes may name any of ALL_MODES
BASELINES = ["logreg", "mlp", "rbm_logreg", "svm", "forest"]


# -- the transformations of MNIST images (uint8, n x 28 x 28) ------------------------------------------------
def translated(x, rng):
    """Each image shifted by up to 4 pixels in each direction, the border filled with black."""
    out = np.zeros_like(x)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4)))
    for i, (dy, dx) in enumerate(rng.integers(0, 9, size=(len(x), 2))):
        out[i] = padded[i, dy:dy + 28, dx:dx + 28]
    return out


def occluded(x, rng):
    """A black 12 x 12 square at a random place of each image."""
    out = x.copy()
    for i, (r, c) in enumerate(rng.integers(0, 17, size=(len(x), 2))):
        out[i, r:r + 12, c:c + 12] = 0
    return out


def elastic(x, rng, alpha=34.0, sigma=4.0):
    """Elastic distortion (Simard et al. 2003), stored as floats in [0, 1]."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    out = np.empty(x.shape, np.float32)
    for i in range(len(x)):
        dr = gaussian_filter(rng.uniform(-1, 1, (28, 28)), sigma) * alpha
        dc = gaussian_filter(rng.uniform(-1, 1, (28, 28)), sigma) * alpha
        out[i] = map_coordinates(x[i].astype(np.float32) / 255, [rows + dr, cols + dc], order=1, mode="constant")
    return np.clip(out, 0, 1)


def inverted(x, rng):
    """White background, black strokes."""
    return 255 - x


def saltpepper(x, rng, p=0.2):
    """A fraction p of the pixels set to black or white at random."""
    out = x.copy()
    hit = rng.random(x.shape) < p
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return out


def downsampled(x, rng):
    """14 x 14 images (2 x 2 means), stored as floats in [0, 1]."""
    return x.reshape(len(x), 14, 2, 14, 2).astype(np.float32).mean(axis=(2, 4)) / 255


TRANSFORMS = {f.__name__: f for f in (translated, occluded, elastic, inverted, saltpepper, downsampled)}


# -- the held-out sets, of the kind of Larochelle et al. 2007's mnist-rot, mnist-back-rand and rectangles ----------
def rotated(x, rng):
    """mnist-rot: each image turned by an angle drawn uniformly from [0, 360) degrees, stored as floats in [0, 1]."""
    from scipy.ndimage import rotate

    out = np.empty(x.shape, np.float32)
    for i, angle in enumerate(rng.uniform(0, 360, len(x))):
        out[i] = rotate(x[i].astype(np.float32) / 255, angle, reshape=False, order=1, mode="constant")
    return np.clip(out, 0, 1)


def background(x, rng):
    """mnist-back-rand: every background (zero) pixel drawn uniformly from 0..255, the strokes kept."""
    return np.where(x > 0, x, rng.integers(0, 256, x.shape)).astype(np.uint8)


def rectangles(n, rng):
    """Larochelle et al. 2007's rectangles: a white rectangle outline on black, label 1 when it is taller than wide.
    Height and width are drawn uniformly (a pair differing by less than 3 pixels is drawn again), the corner
    uniformly among the places where the whole rectangle fits."""
    x, y = np.zeros((n, 28, 28), np.uint8), np.empty(n, np.int64)
    for i in range(n):
        h, w = rng.integers(3, 29, 2)
        while abs(h - w) < 3:
            h, w = rng.integers(3, 29, 2)
        r, c = rng.integers(0, 29 - h), rng.integers(0, 29 - w)
        x[i, r, c:c + w] = x[i, r + h - 1, c:c + w] = x[i, r:r + h, c] = x[i, r:r + h, c + w - 1] = 255
        y[i] = int(h > w)
    return x, y


def write_set(folder: Path, name: str, x_train, y_train, x_val, y_val, x_test, y_test) -> None:
    for split, (xs, ys) in (("val", (x_val, y_val)), ("test", (x_test, y_test))):
        path = folder / f"{name}.{split}.npz"
        new_file(path, lambda tmp: np.savez(tmp, x_train=x_train, y_train=y_train, x_test=xs, y_test=ys))


def mnist_training_set(mnist: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 60,000 training images (uint8, n x 28 x 28) and labels, the only MNIST images the sets are made of."""
    from pretrain.data import find_mnist_file

    images = read_idx(find_mnist_file(mnist, "train-images-idx3-ubyte"))
    return images, read_idx(find_mnist_file(mnist, "train-labels-idx1-ubyte")).astype(np.int64)


def build_heldout(folder: Path, mnist: Path) -> None:
    """The held-out sets' test versions only: `<name>.test.npz` (no validation split: they choose nothing). A set
    whose file is there already is kept as it is (each set draws from its own seed, so the others come out the same)."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = mnist_training_set(mnist)
    for k, name in enumerate(HELDOUT):
        path = folder / f"{name}.test.npz"
        if path.exists():
            print(f"{name}: {path} is there already, kept")
            continue
        rng = np.random.default_rng(2000 + k)
        if name == "rectangles":
            x_train, y_train = rectangles(HELDOUT_TRAIN[name], rng)
            x_test, y_test = rectangles(N_TEST, rng)
        elif name in ("wine", "iris"):  # raw float features (wine's of very different scales), 30 % for the test
            from sklearn.datasets import load_iris, load_wine
            from sklearn.model_selection import train_test_split

            x, y = (load_wine if name == "wine" else load_iris)(return_X_y=True)
            x_train, x_test, y_train, y_test = train_test_split(x.astype(np.float32), y, test_size=0.3, stratify=y, random_state=0)
        else:
            transform = {"rotated": rotated, "background": background}[name]
            pick = rng.permutation(50000)[: HELDOUT_TRAIN[name]]
            test = np.arange(50000, 60000)
            x_train, y_train, x_test, y_test = transform(images[pick], rng), labels[pick], transform(images[test], rng), labels[test]
        new_file(path, lambda tmp: np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
        print(f"{name}: {x_train.dtype} {x_train.shape[1:]}, {len(x_train)} training examples")


def build(folder: Path, mnist: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = mnist_training_set(mnist)
    for k, (name, transform) in enumerate(TRANSFORMS.items()):
        rng = np.random.default_rng(1000 + k)
        pick = rng.permutation(50000)[: N_TRAIN + N_VAL]  # each set its own training images, from the first 50,000
        test = np.arange(50000, 60000)
        x = transform(images[pick], rng)
        x_test = transform(images[test], rng)
        write_set(folder, name, x[:N_TRAIN], labels[pick[:N_TRAIN]], x[N_TRAIN:], labels[pick[N_TRAIN:]], x_test, labels[test])
        print(f"{name}: {x.dtype} {x.shape[1:]}")
    from sklearn.datasets import load_breast_cancer, load_digits, make_classification
    from sklearn.model_selection import train_test_split

    for name, (x, y) in (("digits", load_digits(return_X_y=True)), ("breast_cancer", load_breast_cancer(return_X_y=True)),
                         ("synthetic", make_classification(N_TRAIN + N_VAL + N_TEST, n_features=40, n_informative=12,
                                                           n_redundant=8, n_classes=6, n_clusters_per_class=2,
                                                           class_sep=1.0, random_state=0))):
        x = x.astype(np.int64) if name == "digits" else x.astype(np.float32)  # digits: pixel counts 0..16
        rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.4 if name == "synthetic" else 0.2, stratify=y, random_state=0)
        x_train, x_val, y_train, y_val = train_test_split(rest, y_rest, test_size=N_VAL / (N_TRAIN + N_VAL) if name == "synthetic"
                                                          else 0.2, stratify=y_rest, random_state=0)
        write_set(folder, name, x_train, y_train, x_val, y_val, x_test, y_test)
        print(f"{name}: {x.dtype} {x.shape[1:]}, {len(x_train)} training examples")


def run(folder: Path, out: Path, split: str, overrides: list[str], seeds: list[int], sets: list[str], baselines: list[str],
        modes: list[str], pretrained_from: Path | None = None, budgets: list | None = None) -> None:
    """`budgets`: the same for every set instead of each set's own (BUDGETS)."""
    from hydra import compose, initialize_config_dir

    heldout = [name for name in sets if name in HELDOUT]
    if heldout and split != "test":  # refused before any set runs
        raise SystemExit(f"error: {', '.join(heldout)}: held-out sets have a test split only, to choose nothing (--split test)")
    results = {}
    for name in sets:
        path = folder / f"{name}.{split}.npz"
        if not path.is_file():
            how = "build --heldout" if name in HELDOUT else "build"
            raise SystemExit(f"error: {path}: no such file (run `python scripts/devsuite.py {how}` first)")
        run_dir = out / name
        cell_budgets = budgets or BUDGETS[name]
        reuse = [f"pretrained={pretrained_from / name / 'encoder'}"] if pretrained_from else []
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("compare", overrides=["data=npz", f"data.path={path}", f"budgets={cell_budgets}", f"seeds={seeds}",
                                                f"modes={modes}", "progress=false", "trainer.enable_progress_bar=false",
                                                *reuse, *overrides])
        started = time.perf_counter()
        rows = run_comparison(cfg, run_dir, pretrain_fn=run_pretraining)
        strata_seconds = time.perf_counter() - started
        rows += run_baselines(build_data(cfg), baselines, cell_budgets, seeds, progress=False)
        results[name] = [{k: r[k] for k in ("budget", "seed", "mode", "test_accuracy")} for r in rows]
        print(f"{name}: strata {strata_seconds / 60:.1f} min, baselines {(time.perf_counter() - started - strata_seconds) / 60:.1f} min",
              flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    table = summary_table(results, split, modes) + published_table(results, modes)
    (out / "table.md").write_text(table + "\n")
    print(table)


def merged_results(tags: list[str]) -> dict:
    """The results.json of each run, in order, one table: a run adds the rows of the sets, modes, baselines and seeds
    that the runs before it lack (a mode's run at a budget and seed is never counted twice)."""
    merged: dict = {}
    for tag in tags:
        path = ROOT / "outputs" / "devsuite" / tag / "results.json"
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file (expected an earlier `run --tag {tag}`)")
        for name, rows in json.loads(path.read_text()).items():
            have = {(r["budget"], r["mode"], r["seed"]) for r in merged.get(name, [])}
            merged.setdefault(name, []).extend(r for r in rows if (r["budget"], r["mode"], r["seed"]) not in have)
    return merged


def summary_table(results: dict, split: str, modes: list[str]) -> str:
    """Accuracy (%) per set and budget: strata's modes, the best baseline, and the two comparisons of the targets.

    With several seeds a cell holds the mean over them +/- their standard deviation, and the comparisons are made on
    the means (the targets ask for the mean of several seeds)."""
    lines = [f"| set | labels | {' | '.join(modes)} | best baseline | pretrained > scratch | best strata > best baseline |",
             "|---|---|" + "---|" * (len(modes) + 3)]
    pretrained = [m for m in modes if m != "scratch"]
    wins, beats, compared, cells, means = {m: 0 for m in pretrained}, 0, 0, 0, {m: [] for m in modes}
    for name, rows in results.items():
        for budget in dict.fromkeys(r["budget"] for r in rows):
            runs, seeds = {}, {}
            for r in rows:
                if r["budget"] == budget:
                    runs.setdefault(r["mode"], []).append(r["test_accuracy"])
                    if r["mode"] in modes or r["mode"] not in ALL_MODES:  # the table's modes and the baselines
                        seeds.setdefault(r["mode"], set()).add(r["seed"])
            if len({frozenset(s) for s in seeds.values()}) > 1:  # a mean over other seeds is not the same comparison
                raise SystemExit(f"error: {name} at {budget} labels: the modes and baselines were run with different seeds ("
                                 + "; ".join(f"{m}: {', '.join(map(str, sorted(s)))}" for m, s in seeds.items())
                                 + "); every one of a cell needs the same seeds")
            # rounded: strata's accuracies come through float32, the baselines' in float64, and a tie must stay one
            acc = {m: round(100 * float(np.mean(v)), 4) for m, v in runs.items()}
            missing = [m for m in modes if m not in acc]
            if missing:  # a run cut short (results.json grows set by set), or a mode no run has
                raise SystemExit(f"error: {name} at {budget} labels has no results for {', '.join(missing)} in the "
                                 "runs read (one cut short or still running? --modes names a mode none of them ran?)")
            base_name = max((m for m in acc if m not in ALL_MODES), key=acc.get, default=None)
            base = acc.get(base_name, float("nan"))
            best = max(acc[m] for m in modes)
            better = [m for m in pretrained if "scratch" in acc and acc[m] > acc["scratch"]]
            cells += 1
            beats += best > base
            compared += base_name is not None
            for m in better:
                wins[m] += 1
            for m in modes:
                means[m].append(acc[m])
            baseline, beaten = ((f"{mean_spread(100 * np.array(runs[base_name]))} ({base_name})", "yes" if best > base else "**no**")
                                if base_name else ("none run", "-"))
            lines.append(f"| {name} | {budget} | " + " | ".join(mean_spread(100 * np.array(runs[m])) for m in modes)
                         + f" | {baseline} | {', '.join(better) or 'none'} | {beaten} |")
    lines += ["", f"Mean over the {cells} cells ({split} splits): " + ", ".join(f"{m} {np.mean(v):.2f}" for m, v in means.items())
              + "; cells where the mode beats scratch: " + ", ".join(f"{m} {n}" for m, n in wins.items())
              + (f"; cells where strata's best mode beats the best baseline: {beats}." if compared == cells else
                 f"; strata's best mode beats the best baseline in {beats} of the {compared} cells with baselines.")]
    return "\n".join(lines)


def published_table(results: dict, modes: list[str]) -> str:
    """The held-out sets with all labels beside SdA-3's published test error (Vincent et al. 2010, Table 3); empty
    when the results hold none of them."""
    errors = {}  # set -> mode or baseline -> test errors (%) of its seeds, all labels
    for name in (n for n in SDA3_ERROR if n in results):
        for r in results[name]:
            if r["budget"] == "all":
                errors.setdefault(name, {}).setdefault(r["mode"], []).append(100 * (1 - r["test_accuracy"]))
    if not errors:
        return ""
    head = [m for m in modes if any(m in runs for runs in errors.values())]
    lines = []
    for name, runs in errors.items():
        base = min((m for m in runs if m not in ALL_MODES), key=lambda m: np.mean(runs[m]), default=None)
        best = f"{mean_spread(np.array(runs[base]))} ({base})" if base else "none run"
        lines.append(f"| {name} | " + " | ".join(mean_spread(np.array(runs[m])) if m in runs else "-" for m in head)
                     + f" | {best} | {SDA3_ERROR[name]} |")
    return "\n".join(["", "", "Test error (%) with all training labels, beside SdA-3 (Vincent et al. 2010, Table 3, published):", "",
                      f"| set | {' | '.join(head)} | best baseline | SdA-3 |", "|---|" + "---|" * (len(head) + 2), *lines])


def budget(value: str) -> int | str:
    """A label budget on the command line: a positive integer or `all` (argparse names this function when it fails)."""
    if value != "all" and not (value.isdigit() and int(value) > 0):
        raise ValueError(value)
    return value if value == "all" else int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "run", "table"])
    parser.add_argument("overrides", nargs="*", help="config overrides for every comparison (run)")
    parser.add_argument("--data", default=str(ROOT / "outputs" / "devsuite" / "data"), help="the suite's folder")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="MNIST's IDX files (build)")
    parser.add_argument("--split", choices=["val", "test"], default="val", help="val chooses settings; test reports them")
    parser.add_argument("--tag", default=time.strftime("%Y-%m-%d_%H-%M-%S"), help="the run's folder under outputs/devsuite/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--heldout", action="store_true", help="build: the held-out sets (test splits only) instead")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(BUDGETS),
                        help=f"default: the suite's; the held-out ones are {', '.join(HELDOUT)}")
    parser.add_argument("--budgets", nargs="+", type=budget,
                        help="run: these label budgets on every set (default: each set's own)")
    parser.add_argument("--baselines", nargs="*", default=BASELINES)
    parser.add_argument("--modes", nargs="+", default=MODES, choices=ALL_MODES)
    parser.add_argument("--pretrained-from", help="reuse the artifacts of an earlier run's tag (fine-tuning settings only)")
    parser.add_argument("--merge", nargs="+", default=[], metavar="TAG",
                        help="table: add the modes, baselines and seeds of these runs that --tag's run lacks (same split)")
    args = parser.parse_intermixed_args()  # overrides may come before or after the options
    if args.command == "build":
        (build_heldout if args.heldout else build)(Path(args.data), Path(args.mnist))
        return
    out = ROOT / "outputs" / "devsuite" / args.tag
    if args.command == "table":  # print an earlier run's table again, from its results.json (and others', --merge)
        results = merged_results([args.tag, *args.merge])
        print(summary_table(results, args.split, args.modes) + published_table(results, args.modes))
        return
    if out.exists():
        raise SystemExit(f"error: {out} already exists: an earlier result is never overwritten (choose another --tag)")
    earlier = ROOT / "outputs" / "devsuite" / args.pretrained_from if args.pretrained_from else None
    run(Path(args.data), out, args.split, args.overrides, args.seeds, args.sets, args.baselines, args.modes, earlier, args.budgets)


if __name__ == "__main__":
    main()
