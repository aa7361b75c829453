"""The data modules: MNIST from IDX files (flat and torchvision layouts, the real files where present), a user's
.npz, digits, the batch loader; and each kind of bad data refused with the file and the problem named."""
import gzip
import json
import re

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from commands import run_process
from conftest import MNIST_DIR, REPO, idx_bytes
from pretrain import BatchLoader, MNISTDataModule, NpzDataModule, StrataError
from pretrain.data import MNIST_FILES
from pretrain.idx import read_idx


def refused(message: str):
    return pytest.raises(StrataError, match=re.escape(message))


# -- the IDX reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_round_trip(name, tmp_path, write_idx):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4) and np.array_equal(out, array)


GOOD = idx_bytes(np.zeros((2, 3, 3)))
BAD_IDX = {
    "wrong magic": (b"\x08\x03" + GOOD[2:], "not an IDX file (wrong magic number"),
    "not IDX at all": (b"<html>not found</html>", "not an IDX file"),
    "type code not ubyte": (GOOD[:2] + b"\x0d" + GOOD[3:], "IDX type code 0x0d is not supported"),
    "truncated header": (GOOD[:9], "truncated IDX header (9 bytes for 3 dimensions)"),
    "truncated data": (GOOD[:-5], "header says (2, 3, 3) = 18 bytes of data, file holds 13"),
    "trailing bytes": (GOOD + b"\x00", "file holds 19"),
    "zero dimensions": (b"\x00\x00\x08\x00", "0 dimensions"),
}


@pytest.mark.parametrize("case", BAD_IDX)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_bad_idx_file_is_named_with_its_problem(case, suffix, tmp_path, write_idx):
    raw, message = BAD_IDX[case]
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", raw)
    with refused(message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_truncated_or_fake_gzip_is_named(tmp_path):
    cut = tmp_path / "cut-idx1-ubyte.gz"
    cut.write_bytes(gzip.compress(GOOD)[:-12])
    fake = tmp_path / "fake-idx1-ubyte.gz"
    fake.write_bytes(GOOD)  # an uncompressed file under a .gz name
    for path in (cut, fake):
        with refused(f"{path}: cannot be read (a corrupt or truncated gzip file?)"):
            read_idx(path)
    with refused("IDX file not found"):
        read_idx(tmp_path / "missing-idx1-ubyte.gz")


# -- MNIST from fake files -----------------------------------------------------------------------
def mnist(root, **kwargs) -> MNISTDataModule:
    data = MNISTDataModule(root=str(root), val_size=kwargs.pop("val_size", 3), **kwargs)
    data.setup()
    return data


@pytest.mark.parametrize("layout, gz", [("", True), ("", False), ("MNIST/raw", True), ("MNIST/raw", False)])
def test_mnist_reads_flat_and_torchvision_layouts(layout, gz, tmp_path, fake_mnist):
    arrays = fake_mnist(tmp_path / layout, gz=gz)
    data = mnist(tmp_path)  # the root, whichever layout lies under it
    assert data.x_train.shape == (12, 25) and data.x_test.shape == (4, 25)
    assert torch.equal(data.x_train, torch.tensor(arrays["x_train"].reshape(12, 25), dtype=torch.float32))
    assert torch.equal(data.y_test, torch.tensor(arrays["y_test"]))
    assert torch.equal(data.scale, torch.full((25,), 255.0))  # pixels to [0, 1] by the pixel range, not the data's max
    assert data.val_index.tolist() == [9, 10, 11]  # the validation pool is the last training images


def test_mnist_missing_folder_and_missing_file(tmp_path, fake_mnist):
    with refused(f"data.root={tmp_path / 'nowhere'}: no such folder"):
        mnist(tmp_path / "nowhere")
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with refused("no t10k-labels-idx1-ubyte.gz (nor t10k-labels-idx1-ubyte) in it or in its MNIST/raw folder"):
        mnist(tmp_path)


@pytest.mark.parametrize("replace, message", [
    ({"y_train": np.zeros(11)}, "12 train inputs but 11 train labels (expected equal counts)"),
    ({"y_test": np.zeros(5)}, "4 test inputs but 5 test labels"),
    ({"x_train": np.zeros((0, 5, 5)), "y_train": np.zeros(0)}, "x_train is empty"),
    ({"x_train": np.zeros(12)}, "train-images-idx3-ubyte.gz: holds an array of shape (12,), expected images"),
    ({"y_train": np.zeros((12, 2))}, "train-labels-idx1-ubyte.gz: holds an array of shape (12, 2), expected labels"),
    ({"x_test": np.zeros((4, 6, 6))}, "x_train has 25 features per example but x_test has 36"),
    ({"x_test": idx_bytes(np.zeros((4, 5, 5)))[:-7]}, "t10k-images-idx3-ubyte.gz: truncated or oversized IDX file"),
    ({"y_train": b"\x01\x02" + idx_bytes(np.zeros(12))[2:]}, "train-labels-idx1-ubyte.gz: not an IDX file (wrong magic"),
])
def test_bad_mnist_files_are_refused(replace, message, tmp_path, fake_mnist):
    fake_mnist(tmp_path, **replace)
    with refused(message):
        mnist(tmp_path)


# -- the real MNIST ------------------------------------------------------------------------------
needs_mnist = pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST is not at {MNIST_DIR}")
MNIST_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # its README; the published counts


@needs_mnist
def test_config_root_is_the_shared_mnist_folder(config):
    root = config("data=mnist")["data"]["root"]
    assert root == "../shared/data/mnist"
    assert (REPO / root).resolve() == MNIST_DIR.resolve()  # relative to the repository root


@needs_mnist
def test_real_mnist_flat_and_torchvision_layouts(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in MNIST_FILES.values():
        (raw / f"{stem}.gz").symlink_to(MNIST_DIR / f"{stem}.gz")
    flat = mnist(MNIST_DIR, val_size=10000)
    assert flat.x_train.shape == (60000, 784) and flat.x_test.shape == (10000, 784)
    assert torch.bincount(flat.y_train).tolist() == MNIST_CLASS_COUNTS
    assert flat.x_train.min() == 0 and flat.x_train.max() == 255
    assert torch.equal(flat.val_index, torch.arange(50000, 60000))  # the classic last 10,000
    assert flat.unit_interval
    # torchvision's layout, only the test split read again: the same files are found under MNIST/raw
    assert np.array_equal(read_idx(raw / "t10k-images-idx3-ubyte.gz"), flat.x_test.numpy().reshape(-1, 28, 28))
    torchvision = mnist(tmp_path, val_size=10000)
    assert torch.equal(torchvision.y_train, flat.y_train) and torch.equal(torchvision.x_test, flat.x_test)


@needs_mnist
def test_mnist_config_instantiates_from_the_repo_root(config, monkeypatch):
    monkeypatch.chdir(REPO)  # `python -m pretrain data=mnist` is run from the repository root
    cfg = config("data=mnist")["data"]
    data = instantiate(OmegaConf.create(cfg))
    assert isinstance(data, MNISTDataModule) and data.root.resolve() == MNIST_DIR.resolve()


# -- a user's .npz -------------------------------------------------------------------------------
def npz(tmp_path, **arrays):
    rng = np.random.default_rng(0)
    base = {"x_train": rng.random((20, 2, 3)).astype(np.float32), "y_train": np.arange(20) % 4,
            "x_test": rng.random((6, 2, 3)).astype(np.float32), "y_test": np.arange(6) % 4}
    base.update(arrays)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_loads_flattens_and_scales(tmp_path):
    data = NpzDataModule(str(npz(tmp_path, x_train=np.random.default_rng(1).normal(3, 5, (20, 2, 3)))), val_size=0.25)
    data.setup()
    assert data.x_train.shape == (20, 6) and data.num_classes == 4 and len(data.val_index) == 5
    x = (data.x_train - data.shift) / data.scale  # floats outside [0, 1]: standardised on the training inputs
    assert data.scaling == "standard" and torch.allclose(x.mean(dim=0), torch.zeros(6), atol=1e-5)
    assert "scaling standard (floats outside [0, 1], standardised per feature)" in data.summary()
    pixels = NpzDataModule(str(npz(tmp_path, x_train=np.full((20, 6), 200, np.uint8), x_test=np.zeros((6, 6), np.uint8))))
    pixels.setup()
    assert pixels.scaling == "unit" and pixels.unit_interval  # integer data: pixels scaled into [0, 1]
    assert torch.equal(pixels.scale, torch.full((6,), 200.0))
    unlabeled = NpzDataModule(str(npz(tmp_path, y_train=None)))
    unlabeled.setup()
    assert unlabeled.y_train is None and len(unlabeled.unlabeled()) == 20


def test_floats_already_in_the_unit_interval_keep_their_scale_and_train_with_cross_entropy(tmp_path):
    """Images stored as floats in [0, 1] are not standardised: masking sets a pixel to black, not to its mean, and
    the first layer reconstructs with binary cross-entropy. The run says what it chose."""
    x = np.random.default_rng(0).random((40, 6)).astype(np.float32) * 0.8  # in [0, 0.8]: kept, not stretched to [0, 1]
    path = npz(tmp_path, x_train=x, y_train=np.arange(40) % 4)
    data = NpzDataModule(str(path))
    data.setup()
    assert data.scaling == "unit" and torch.equal(data.shift, torch.zeros(6)) and torch.equal(data.scale, torch.ones(6))
    assert "scaling unit (values already in [0, 1], kept as they are)" in data.summary()
    run = tmp_path / "run"
    done = run_process("-m", "pretrain", "data=npz", f"data.path={path}", "model.layers=[5]", "model.epochs=1",
                       "pictures=false", "trainer=fast", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr
    assert "scaling unit (values already in [0, 1]" in done.stdout
    description = json.loads((run / "encoder" / "config.json").read_text())
    assert description["layers"][0]["loss"] == "bce"


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.where(np.eye(20, 6, dtype=bool), np.nan, 0.5)}, "x_train holds 6 NaN or infinite values"),
    ({"x_test": np.full((6, 6), np.inf)}, "x_test holds 36 NaN or infinite values"),
    ({"x_train": np.zeros((0, 6)), "y_train": np.zeros(0, int)}, "x_train is empty (expected at least one example)"),
    ({"x_test": np.zeros((0, 6)), "y_test": np.zeros(0, int)}, "x_test is empty"),
    ({"x_train": np.zeros((20, 0)), "x_test": np.zeros((6, 0))}, "x_train has shape (20, 0): no features"),
    ({"y_train": np.arange(19)}, "20 train inputs but 19 train labels (expected equal counts)"),
    ({"y_test": np.arange(7)}, "6 test inputs but 7 test labels"),
    ({"y_train": np.full(20, np.nan)}, "y_train holds values that are not class labels"),
    ({"y_train": np.full(20, -1)}, "y_train holds one class only (-1; a classifier needs at least two)"),
    ({"y_test": np.full(6, 0.5)}, "y_test holds values that are not class labels"),
    ({"y_train": np.ones(20, complex)}, "y_train has dtype complex128 (expected class labels: integers or strings)"),
    ({"y_train": np.zeros((20, 4))}, "y_train has shape (20, 4) (expected one label per example"),
    ({"x_train": np.full((20, 6), "a")}, "x_train has dtype <U1 (expected real numbers)"),
    ({"x_train": np.ones((20, 6), complex), "x_test": np.ones((6, 6), complex)}, "x_train has dtype complex128"),
    ({"x_test": np.zeros((6, 5))}, "x_train has 6 features per example but x_test has 5"),
    ({"x_test": None}, "missing array(s) x_test"),
])
def test_bad_npz_is_refused_with_the_problem_named(arrays, message, tmp_path):
    path = npz(tmp_path, **arrays)
    with refused(message) as err:
        NpzDataModule(str(path)).setup()
    assert str(path) in str(err.value)


def test_npz_file_problems(tmp_path):
    with refused(f"data.path={tmp_path / 'none.npz'}: no such file"):
        NpzDataModule(str(tmp_path / "none.npz")).setup()
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with refused("not an .npz archive (expected a file written by numpy.savez)"):
        NpzDataModule(str(garbage)).setup()
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}] * 3, dtype=object), x_test=np.zeros((1, 1)), y_test=np.zeros(1))
    with refused("Object arrays cannot be loaded when allow_pickle=False"):  # never unpickled
        NpzDataModule(str(pickled)).setup()


# -- digits and the batch loader -----------------------------------------------------------------
def test_digits_split(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert torch.bincount(digits.y_test).min() >= 35  # stratified: every class in the test split
    assert len(digits.val_index) == round(0.15 * 1437) and not set(digits.val_index.tolist()) & set(digits.fit_index.tolist())
    assert digits.unit_interval and digits.unlabeled() is digits.x_train


def test_batch_loader_passes_cover_every_example_once_and_repeat_by_seed():
    x = torch.arange(10)
    loader = BatchLoader(x, batch_size=4, seed=3)
    first, second = list(loader), list(loader)
    assert len(loader) == 3 and [len(b) for b in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10)) == sorted(torch.cat(second).tolist())
    assert not torch.equal(torch.cat(first), torch.cat(second))  # reshuffled each pass
    again = BatchLoader(x, batch_size=4, seed=3)
    assert torch.equal(torch.cat(list(again)), torch.cat(first))
    assert [len(b) for b in BatchLoader(x, batch_size=4, drop_last=True)] == [4, 4]
    xs, ys = next(iter(BatchLoader(x, x * 10, batch_size=5)))
    assert torch.equal(ys, xs * 10)  # tensors stay aligned
