"""Shared fixtures: the repository's paths, configs composed from the real conf/ files, digits, fake IDX files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from pretrain import DigitsDataModule, pretrain_stack, save_autoencoder
from pretrain.config import CONF_DIR, to_dict
from pretrain.data import MNIST_FILES

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"  # conf/data/mnist.yaml's root, ../shared/data/mnist


def denoising_artifact(data, path: Path, sizes: list[int], epochs: int) -> Path:
    """A denoising stack (masking noise 0.25) pretrained on `data`'s training inputs, saved whole (decoder included)."""
    result = pretrain_stack(data.x_train, data.shift, data.scale, list(sizes),
                            {"kind": "deterministic", "corruption": "mask", "noise": 0.25}, epochs=epochs, batch_size=64,
                            trainer_options={"enable_progress_bar": False}, seed=0)
    return save_autoencoder(result.model, path)


def pytest_configure(config):
    # Lightning's own use of a torch API it deprecated; nothing this suite can change
    config.addinivalue_line("filterwarnings", "ignore:.*isinstance.treespec, LeafSpec.*")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The whole suite runs torch on one thread: its models are small, and on a busy 2-core machine a second
    thread makes them far slower (600 full-batch steps of a 64-4 layer: 0.4 s on one thread, 90 s on two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def back_to_one_thread(one_thread):
    """A run under test picks its own threads (`threads=auto`); the next test, and the module fixtures set up
    before it, start on one thread again."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def config():
    """config(*overrides): conf/pretrain.yaml composed with Hydra's compose API, resolved to a dict."""

    def make(*overrides: str) -> dict:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return to_dict(compose("pretrain", overrides=list(overrides)))

    return make


@pytest.fixture(scope="session")
def digits() -> DigitsDataModule:
    data = DigitsDataModule()
    data.setup()
    return data


@pytest.fixture(scope="session")
def digits_x(digits) -> torch.Tensor:
    """The preprocessed training inputs (pixels / 16, in [0, 1]): what the first layer is trained on."""
    return (digits.x_train - digits.shift) / digits.scale


class FitRecorder(pl.Callback):
    """Records, for each `trainer.fit` it is passed to, the training inputs and `measure(module)` at its start and end."""

    def __init__(self, measure=None):
        self.measure = measure
        self.inputs, self.start, self.end = [], [], []

    def on_train_start(self, trainer, pl_module):
        self.inputs.append(trainer.train_dataloader.tensors[0])
        if self.measure is not None:
            self.start.append(self.measure(pl_module))

    def on_train_end(self, trainer, pl_module):
        if self.measure is not None:
            self.end.append(self.measure(pl_module))


@pytest.fixture(scope="session")
def fit_recorder():
    return FitRecorder


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file's bytes: two zero bytes, the type code, the dimension count, big-endian sizes, then the data."""
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture
def write_idx():
    """write_idx(path, array or raw bytes): an IDX file at `path`, gzip-compressed when its name ends in .gz."""

    def write(path: Path, content: np.ndarray | bytes) -> Path:
        data = content if isinstance(content, bytes) else idx_bytes(content)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        return path

    return write


@pytest.fixture
def fake_mnist(write_idx):
    """fake_mnist(folder, gz=True, **replace): MNIST's four files in `folder`, 12 training and 4 test images of 5x5
    pixels; `replace` gives another array or raw bytes for x_train, y_train, x_test or y_test."""

    def make(folder: Path, gz: bool = True, **replace) -> dict:
        rng = np.random.default_rng(0)
        arrays = {"x_train": rng.integers(0, 256, (12, 5, 5)), "y_train": np.arange(12) % 3,
                  "x_test": rng.integers(0, 256, (4, 5, 5)), "y_test": np.arange(4) % 3, **replace}
        for key, stem in MNIST_FILES.items():
            write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
        return arrays

    return make
