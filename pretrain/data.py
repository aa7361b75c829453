"""Data sets as Lightning DataModules over in-memory tensors, or over memory-mapped `.npy` rows (`NpyDataModule`).

Every data module gives the same four things:
- `x_train` (all training inputs, the unlabeled pool for pretraining) and `y_train` (or None),
- `classes`, the sorted distinct training labels under their own names; `y_train` and `y_test` hold indices 0..C-1
  into them,
- a validation pool of `val_size` labeled training examples, never used for pretraining choices,
- `x_test`/`y_test`, evaluated only, never used to choose anything,
- the preprocessing `shift`/`scale` fitted on the training inputs (x' = (x - shift) / scale),
  which is stored in the encoder artifact so that later encoding applies the same.

Batches come from `BatchLoader`, which slices whole tensors: no per-sample Python work.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from .errors import StrataError
from .idx import read_idx
from .rows import Rows, in_unit_interval, read_labels, shard_paths

SCALINGS = ("auto", "unit", "standard", "none")
VAL_FROM = ("none", "labels", "pool")


class BatchLoader:
    """Shuffled mini-batches of whole tensors, sharded by rank under torch.distributed.

    Each pass reshuffles with a generator seeded by (seed, pass number), so runs repeat exactly;
    every rank draws the same permutation and keeps its own interleaved share of it.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 min_batches: int = 0):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("BatchLoader needs tensors of one common length")
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.min_batches = min_batches  # a small labeled set is cycled so that a pass has at least this many batches
        self.passes = 0

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _indices(self) -> torch.Tensor:
        n = len(self.tensors[0])
        repeats = max(1, -(-self.min_batches * self.batch_size // n))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
            order = torch.cat([torch.randperm(n, generator=g) for _ in range(repeats)])
        else:
            order = torch.arange(n).repeat(repeats)
        n = len(order)
        rank, world = self._rank_and_world()
        if world > 1:
            order = order[: n - n % world][rank::world]  # equal shares, so ranks step together
        return order

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self._indices()
        self.passes += 1
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = tuple(t[idx] for t in self.tensors)
            yield batch[0] if len(batch) == 1 else batch


def choose_scaling(x: torch.Tensor, integers: bool) -> tuple[str, str]:
    """What `scaling=auto` picks for training inputs `x`, and why: the unit scale for pixels (non-negative integers)
    and for data already in [0, 1], where masking sets an input to black and binary cross-entropy applies; standard
    scores for any other floats (features of unrelated units)."""
    if integers and bool(x.min() >= 0):
        return "unit", "non-negative integers, divided by their maximum"
    if bool(x.min() >= 0) and bool(x.max() <= 1):
        return "unit", "values already in [0, 1], kept as they are"
    return "standard", "floats outside [0, 1], standardised per feature"


def fit_scaling(x: torch.Tensor, scaling: str, pixel_max: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature (shift, scale) fitted on training inputs: unit maps pixels to [0,1], standard to zero mean, unit variance."""
    d = x.shape[1]
    if scaling == "unit":
        top = float(pixel_max) if pixel_max is not None else float(x.max())
        return torch.zeros(d), torch.full((d,), top if top > 0 else 1.0)
    if scaling == "standard":
        std = x.std(dim=0)
        return x.mean(dim=0), torch.where(std > 1e-8, std, torch.ones_like(std))
    if scaling == "none":
        return torch.zeros(d), torch.ones(d)
    raise StrataError(f"data.scaling={scaling!r} is not one of {', '.join(SCALINGS[1:])}")


def _check_inputs(name: str, x: np.ndarray, source: str) -> None:
    """Inputs: one row per example, at least one example and one feature, real finite numbers."""
    if x.ndim == 0:
        raise StrataError(f"{source}: {name} is a single number (expected an array with one row per example)")
    if len(x) == 0:
        raise StrataError(f"{source}: {name} is empty (expected at least one example)")
    if x.size == 0:
        raise StrataError(f"{source}: {name} has shape {x.shape}: no features (expected at least one value per example)")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == bool):
        raise StrataError(f"{source}: {name} has dtype {x.dtype} (expected real numbers)")
    if np.issubdtype(x.dtype, np.floating) and (x.nonfinite() if isinstance(x, Rows) else not np.isfinite(x).all()):
        bad = x.nonfinite() if isinstance(x, Rows) else int((~np.isfinite(x)).sum())
        raise StrataError(f"{source}: {name} holds {bad} NaN or infinite values (expected finite numbers)")


def _check_labels(name: str, y: np.ndarray, n: int, source: str) -> np.ndarray:
    """Labels: one class per example, an integer (floats only where whole) or a string; returned as such."""
    if y.ndim != 1:
        raise StrataError(f"{source}: {name} has shape {y.shape} (expected one label per example, shape ({n},))")
    if len(y) != n:
        split = name.split("_")[1]
        raise StrataError(f"{source}: {n} {split} inputs but {len(y)} {split} labels (expected equal counts)")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise StrataError(f"{source}: {name} holds values that are not class labels (expected integers or strings, "
                              "found fractions, NaN or infinite values)")
        return y.astype(np.int64)
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool or y.dtype.kind == "U"):
        raise StrataError(f"{source}: {name} has dtype {y.dtype} (expected class labels: integers or strings)")
    return y


def class_indices(y_train: np.ndarray | None, y_test: np.ndarray, source: str) -> tuple[list, np.ndarray | None, np.ndarray]:
    """The classes (the sorted distinct training labels, as JSON-ready names) and both label arrays as indices
    0..C-1 into them. Fewer than two classes, or test labels that the training labels lack, are refused."""
    known = y_train if y_train is not None else y_test
    classes = np.unique(known)
    if len(classes) < 2:
        raise StrataError(f"{source}: {'y_train' if y_train is not None else 'y_test'} holds one class only "
                          f"({classes[0].item()!r}; a classifier needs at least two)")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if len(unseen):
        shown = ", ".join(repr(v.item()) for v in unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        raise StrataError(f"{source}: y_test holds labels that y_train lacks: {shown} (the training labels' classes are "
                          f"{', '.join(repr(c.item()) for c in classes[:10])}{' ...' if len(classes) > 10 else ''})")
    index = lambda y: None if y is None else np.searchsorted(classes, y).astype(np.int64)  # noqa: E731
    return [c.item() for c in classes], index(y_train), index(y_test)


def _flat(x):
    """Inputs as (rows, features): images flattened (memory-mapped rows are flat already)."""
    return x if isinstance(x, Rows) else x.reshape(len(x), -1)


def _inputs(x):
    """An in-memory array as a float32 tensor; memory-mapped rows stay on disk, converted by batch."""
    return x if isinstance(x, Rows) else torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


class ArrayDataModule(pl.LightningDataModule):
    """Base class: subclasses implement `_load()` returning (x_train, y_train or None, x_test, y_test) as numpy arrays.

    Args:
        batch_size: mini-batch size of pretraining.
        val_size: labeled training examples held out as the validation pool (an int, or a fraction < 1). Their
            inputs are unlabeled training inputs like any other; their labels are used only with `val_from=pool`.
        labels, val_from, val_fraction: fine-tuning's label budget and where its validation comes from ("none":
            no validation, a fixed schedule; "labels": `val_fraction` of the budget; "pool": the held-out pool,
            labels beyond the budget), read by `finetune.labels.labeled_subset`.
        scaling: "auto" (see `choose_scaling`), "unit" (pixels to [0,1]), "standard" or "none"; fitted on the
            training inputs only.
        split_seed: seeds the train/validation/test split, fixed across runs so the test set never moves.
    """

    name = "array"
    holdout = "random"  # how the validation pool is taken from the training set: "random" or "last"

    def __init__(self, batch_size: int = 128, val_size: float = 0.1, val_from: str = "none", val_fraction: float = 0.2,
                 labels: int | str = "all", scaling: str = "auto", pixel_max: float | None = None,
                 split_seed: int = 0, seed: int = 0):
        super().__init__()
        if val_from not in VAL_FROM:
            raise StrataError(f"data.val_from={val_from!r} is not one of {', '.join(VAL_FROM)}")
        if scaling not in SCALINGS:
            raise StrataError(f"data.scaling={scaling!r} is not one of {', '.join(SCALINGS)}")
        if not (labels == "all" or (isinstance(labels, int) and not isinstance(labels, bool) and labels > 0)):
            raise StrataError(f"data.labels={labels!r} is not a positive integer or 'all'")
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise StrataError(f"data.batch_size={batch_size!r} is not a positive integer")
        self.batch_size, self.val_size, self.val_from, self.val_fraction = batch_size, val_size, val_from, val_fraction
        self.labels, self.scaling, self.pixel_max, self.split_seed, self.seed = labels, scaling, pixel_max, split_seed, seed
        self.scaling_reason = "as configured" if scaling != "auto" else None
        self._ready = False

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        x_train, y_train, x_test, y_test = self._load()
        source = self.source_name()
        for name, arr in (("x_train", x_train), ("x_test", x_test)):
            _check_inputs(name, arr, source)
        integers = not np.issubdtype(x_train.dtype, np.floating)
        x_train, x_test = _flat(x_train), _flat(x_test)
        if x_train.shape[1] != x_test.shape[1]:
            raise StrataError(f"{source}: x_train has {x_train.shape[1]} features per example but x_test has {x_test.shape[1]}")
        y_train = None if y_train is None else _check_labels("y_train", np.asarray(y_train), len(x_train), source)
        y_test = _check_labels("y_test", np.asarray(y_test), len(x_test), source)
        self.classes, y_train, y_test = class_indices(y_train, y_test, source)
        self.x_train = _inputs(x_train)
        self.y_train = None if y_train is None else torch.as_tensor(y_train)
        self.x_test = _inputs(x_test)
        self.y_test = torch.as_tensor(y_test)
        if self.scaling == "auto":
            self.scaling, self.scaling_reason = choose_scaling(self.x_train, integers)
            if self.scaling_reason.startswith("values already"):
                self.pixel_max = 1.0
        self.shift, self.scale = fit_scaling(self.x_train, self.scaling, self.pixel_max)
        self._split_validation()
        self._ready = True

    def _split_validation(self) -> None:
        n = len(self.x_train)
        k = int(round(self.val_size * n)) if isinstance(self.val_size, float) and self.val_size < 1 else int(self.val_size)
        if self.y_train is None:
            k = 0  # no labels: nothing to validate a classifier on
        if not 0 <= k < n:
            raise StrataError(f"data.val_size={self.val_size} leaves no training examples out of {n}")
        if self.holdout == "last":
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        self.val_index, self.fit_index = order[n - k:], order[: n - k]

    # -- what the stages use -------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def num_classes(self) -> int:
        """The classes are the sorted distinct training labels (`classes`); y_train and y_test hold their indices."""
        return len(self.classes)

    @property
    def unit_interval(self) -> bool:
        """True when preprocessed training inputs lie in [0, 1] (binary cross-entropy applies)."""
        if isinstance(self.x_train, Rows):
            return self.x_train.in_unit_interval(self.shift, self.scale)
        return in_unit_interval((self.x_train - self.shift) / self.scale)

    def summary(self) -> str:
        """One line for the run's log: the data, its size and the scaling chosen, with the reason."""
        mapped = ""
        if isinstance(self.x_train, Rows):
            mapped = (f" (memory-mapped, {len(self.x_train.shards)} shard(s) of {self.x_train.dtype}, read by batch; the "
                      "scaling's statistics from one streaming pass over every training row)")
        return (f"{self.source_name()}: {len(self.x_train)} training inputs of {self.input_dim} features, {len(self.x_test)} "
                f"test; scaling {self.scaling} ({self.scaling_reason}){mapped}")

    def unlabeled(self) -> torch.Tensor:
        """All training inputs: pretraining's data. Never labels, never the test set."""
        return self.x_train

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_test, self.y_test

    def source_name(self) -> str:
        """The data and where it is read from, for messages and metrics.json's "data"."""
        return self.name


class DigitsDataModule(ArrayDataModule):
    """scikit-learn's 8x8 digits (1797 images, pixel values 0..16): embedded, no download.

    It has no official test split: `test_size` of it, stratified by `split_seed`, is the test set.
    """

    name = "digits"

    def __init__(self, test_size: float = 0.2, val_size: float = 0.15, scaling: str = "unit", pixel_max: float | None = 16.0,
                 **kwargs):
        super().__init__(val_size=val_size, scaling=scaling, pixel_max=pixel_max, **kwargs)
        self.test_size = test_size

    def _load(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            x.astype(np.float32), y, test_size=self.test_size, stratify=y, random_state=self.split_seed)
        return x_train, y_train, x_test, y_test


MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}


def find_mnist_file(root: Path, stem: str) -> Path:
    """Find an MNIST file in `root` or torchvision's `root/MNIST/raw`, gzip-compressed or not."""
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise StrataError(f"data.root={root}: no {stem}.gz (nor {stem}) in it or in its MNIST/raw folder")


class MNISTDataModule(ArrayDataModule):
    """MNIST from the four standard IDX files in `root` (flat, or torchvision's MNIST/raw layout).

    The validation pool is the classic last 10,000 training images.
    """

    name = "mnist"
    holdout = "last"

    def __init__(self, root: str = "../shared/data/mnist", val_size: float = 10000, scaling: str = "unit",
                 pixel_max: float | None = 255.0, **kwargs):
        super().__init__(val_size=val_size, scaling=scaling, pixel_max=pixel_max, **kwargs)
        self.root = Path(root).expanduser()

    def _load(self):
        if not self.root.is_dir():
            raise StrataError(f"data.root={self.root}: no such folder (expected the four MNIST IDX files in it)")
        arrays = {}
        for key, stem in MNIST_FILES.items():
            path = find_mnist_file(self.root, stem)
            arrays[key] = read_idx(path)
            expected = 3 if key.startswith("x") else 1
            if arrays[key].ndim != expected:
                raise StrataError(f"{path}: holds an array of shape {arrays[key].shape}, expected "
                                  f"{'images (count, rows, columns)' if expected == 3 else 'labels (count,)'}")
        return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]

    def source_name(self) -> str:
        return f"mnist at {self.root}"


class NpzDataModule(ArrayDataModule):
    """A user's own `.npz` with `x_train` (`y_train` optional), `x_test`, `y_test`; images are flattened."""

    name = "npz"

    def __init__(self, path: str, **kwargs):
        self.path = Path(path).expanduser()
        super().__init__(**kwargs)

    def _load(self):
        if not self.path.is_file():
            raise StrataError(f"data.path={self.path}: no such file (expected an .npz with x_train, x_test, y_test)")
        if not zipfile.is_zipfile(self.path):
            raise StrataError(f"data.path={self.path}: not an .npz archive (expected a file written by numpy.savez)")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as err:  # noqa: BLE001 - numpy raises many kinds for a broken file
            raise StrataError(f"data.path={self.path}: cannot be read as .npz ({err})") from None
        missing = [k for k in ("x_train", "x_test", "y_test") if k not in arrays]
        if missing:
            raise StrataError(f"data.path={self.path}: missing array(s) {', '.join(missing)} (found {', '.join(arrays) or 'none'})")
        return arrays["x_train"], arrays.get("y_train"), arrays["x_test"], arrays["y_test"]

    def source_name(self) -> str:
        return f"npz file {self.path}"


class NpyDataModule(ArrayDataModule):
    """A folder of `.npy` files, memory-mapped, never read whole: `x_train*.npy` (one file, or shards in name order),
    `y_train*.npy` where labeled, `x_test*.npy` and `y_test*.npy`. Inputs stay on disk in their own dtype (uint8 pixels
    as uint8) and are converted and scaled per batch; labels are read into memory. The same checks, scaling and
    validation pool as `NpzDataModule`, so the same arrays give the same numbers either way.
    """

    name = "npy"

    def __init__(self, path: str, **kwargs):
        self.path = Path(path).expanduser()
        super().__init__(**kwargs)

    def _load(self):
        if not self.path.is_dir():
            raise StrataError(f"data.path={self.path}: no such folder (expected x_train*.npy, x_test*.npy and y_test*.npy in it)")
        found = {key: shard_paths(self.path, key) for key in ("x_train", "y_train", "x_test", "y_test")}
        missing = [f"{k}*.npy" for k in ("x_train", "x_test", "y_test") if not found[k]]
        if missing:
            present = sorted(p.name for p in self.path.glob("*.npy"))
            raise StrataError(f"data.path={self.path}: no {', '.join(missing)} in it (found {', '.join(present) or 'no .npy files'})")
        x_train, x_test = Rows.open(found["x_train"], "x_train"), Rows.open(found["x_test"], "x_test")
        y_train = read_labels(found["y_train"]) if found["y_train"] else None
        return x_train, y_train, x_test, read_labels(found["y_test"])

    def source_name(self) -> str:
        return f"npy folder {self.path}"
