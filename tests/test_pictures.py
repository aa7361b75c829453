"""pretrain.pictures: every picture is a valid PNG of the expected size, and `python -m pretrain` writes them."""
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from matplotlib.image import imread

from pretrain import StrataError, pretrain_stack, run_pretraining
from pretrain.config import CONF_DIR
from pretrain.pictures import (DPI, GRID_SIZE, PAIR_SIZE, embedding_scatter, image_shape, latent_manifold, project_2d,
                               reconstruction_grid, sample_grid, save_pictures, tile, weight_tiles)

FAST = {"enable_progress_bar": False, "limit_train_batches": 5}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def stack(digits, kind, sizes, x=None, shift=None, scale=None):
    below = {"kind": "deterministic", "activation": "sigmoid", "loss": "auto"}
    options = {"kind": kind, "loss": "auto", **({"below": below} if kind != "deterministic" else {})}
    pl.seed_everything(0, verbose=False)
    x = digits.x_train if x is None else x
    return pretrain_stack(x, digits.shift if shift is None else shift, digits.scale if scale is None else scale, sizes,
                          options, epochs=2, batch_size=64, trainer_options=FAST).model


@pytest.fixture(scope="module")
def vae(digits):
    return stack(digits, "vae", [16, 2])


def assert_png(path: Path, size_inches) -> np.ndarray:
    """A readable PNG of size_inches * DPI pixels that is not one flat colour; returns its pixels."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.shape[:2] == (round(size_inches[1] * DPI), round(size_inches[0] * DPI))
    assert pixels[..., :3].std() > 0.01
    return pixels


def test_image_shape_and_tiling():
    assert image_shape(64) == (8, 8) and image_shape(784) == (28, 28) and image_shape(10) is None
    grid = tile(np.ones((5, 2, 3)), cols=2, pad=1)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert np.isnan(grid).sum() == grid.size - 5 * 6  # padding and the empty sixth cell


def test_each_picture_is_a_png_of_the_expected_size(vae, digits, tmp_path):
    x, y = digits.x_train[:300], digits.y_train[:300]
    assert_png(reconstruction_grid(vae, x, tmp_path / "r.png"), PAIR_SIZE)
    assert_png(weight_tiles(vae, tmp_path / "w.png"), GRID_SIZE)
    assert_png(sample_grid(vae, tmp_path / "s.png"), GRID_SIZE)
    assert_png(latent_manifold(vae, tmp_path / "m.png", steps=7), GRID_SIZE)
    assert_png(embedding_scatter(vae, x, y, tmp_path / "e.png"), GRID_SIZE)
    assert_png(embedding_scatter(vae, x, None, tmp_path / "e2.png", size=(4, 3)), (4, 3))


def test_reconstruction_picture_shows_inputs_left_and_reconstructions_right(vae, digits, tmp_path):
    """The left panel differs from the right (they are different images), and each half holds drawn digits."""
    pixels = assert_png(reconstruction_grid(vae, digits.x_train, tmp_path / "r.png"), PAIR_SIZE)[..., :3]
    left, right = pixels[:, : pixels.shape[1] // 2], pixels[:, pixels.shape[1] // 2 :]
    assert left.std() > 0.05 and right.std() > 0.05
    assert not np.allclose(left, right)


def test_save_pictures_writes_what_applies(vae, digits, tmp_path):
    written = save_pictures(vae, digits.x_train, digits.y_train, tmp_path / "vae")
    assert set(written) == {"reconstructions", "weights", "samples", "latent_manifold", "embedding"}
    for name, path in written.items():
        assert path.parent == tmp_path / "vae"
        assert_png(path, PAIR_SIZE if name == "reconstructions" else GRID_SIZE)
    deterministic = stack(digits, "deterministic", [16, 8])
    written = save_pictures(deterministic, digits.x_train, digits.y_train, tmp_path / "plain")
    assert set(written) == {"reconstructions", "weights", "embedding"}
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == sorted(p.name for p in written.values())


def test_existing_pictures_are_never_overwritten(vae, digits, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "reconstructions.png").write_bytes(b"earlier")
    with pytest.raises(StrataError, match="never overwritten"):
        save_pictures(vae, digits.x_train, digits.y_train, folder)
    assert (folder / "reconstructions.png").read_bytes() == b"earlier"


def test_non_image_data_gets_the_embedding_only(digits, tmp_path):
    x = digits.x_train[:, :10]  # 10 features: not a square image
    model = stack(digits, "vae", [6, 3], x=x, shift=digits.shift[:10], scale=digits.scale[:10])
    written = save_pictures(model, x, digits.y_train, tmp_path / "tabular")
    assert set(written) == {"embedding"}
    with pytest.raises(StrataError, match="not images"):
        weight_tiles(model, tmp_path / "w.png")
    assert_png(weight_tiles(model, tmp_path / "w.png", shape=(2, 5)), GRID_SIZE)  # an explicit shape is honoured


def test_latent_manifold_needs_a_two_unit_generative_code(digits, tmp_path):
    with pytest.raises(StrataError, match="2-unit code"):
        latent_manifold(stack(digits, "vae", [16, 3]), tmp_path / "m.png")
    with pytest.raises(StrataError, match="generative top layer"):
        latent_manifold(stack(digits, "deterministic", [2]), tmp_path / "m.png")


def test_projection_to_two_dimensions():
    codes = np.random.default_rng(0).normal(size=(50, 6)) * np.array([5, 1, 1, 0.1, 0.1, 0.1])
    points, how = project_2d(codes, "pca")
    assert points.shape == (50, 2) and how.startswith("PCA")
    assert np.allclose(np.abs(np.corrcoef(points[:, 0], codes[:, 0])[0, 1]), 1, atol=0.05)  # the widest direction first
    two = codes[:, :2]
    assert np.array_equal(project_2d(two)[0], two)  # 2-unit codes are shown as they are
    with pytest.raises(StrataError, match="method"):
        project_2d(codes, "tsne")


def test_cli_writes_pictures_into_the_run_directory(tmp_path):
    overrides = ["autoencoder=vae", "trainer=fast", "model.layers=[16,2]", "model.epochs=2", "model.end_to_end_epochs=1"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pretrain", overrides=overrides)
        bad = compose("pretrain", overrides=[*overrides, "pictures=maybe"])
    artifact = run_pretraining(cfg, tmp_path)
    folder = tmp_path / "encoder_pictures"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["reconstructions.png", "weights.png", "samples.png", "latent_manifold.png", "embedding.png"])
    for path in folder.iterdir():
        assert_png(path, PAIR_SIZE if path.name == "reconstructions.png" else GRID_SIZE)
    assert artifact.is_dir()
    with pytest.raises(StrataError, match="pictures='maybe' is not true or false"):
        run_pretraining(bad, tmp_path / "other")
