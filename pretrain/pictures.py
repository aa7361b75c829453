"""Pictures of a trained DeepAutoencoder, written as PNG files.

- `reconstruction_grid`: inputs beside their reconstructions,
- `weight_tiles`: the first layer's weights, one image tile per unit,
- `sample_grid`: new examples decoded from prior samples (generative top layers),
- `latent_manifold`: the decoder over a grid of the 2-unit code's prior quantiles (generative, 2-unit code),
- `embedding_scatter`: the codes in 2-D (the codes themselves when they have 2 units, else UMAP where
  installed, else PCA), coloured by label,
- `save_pictures`: all that apply, into a new folder.

They take training inputs (and labels only to colour the scatter), never the test set. Image pictures need
image data: a flat input of a perfect-square dimension (8x8 digits, 28x28 MNIST), or an explicit `shape`.
Figures are drawn with matplotlib's Agg canvas directly (no pyplot state, no backend switch), at a fixed
size: `size` inches times `DPI` pixels.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import StrataError
from .files import new_folder

DPI = 100
SHOWN = 36  # inputs beside their reconstructions
GRID_SIZE = (6.0, 6.0)
PAIR_SIZE = (10.0, 5.0)
FILES = {"reconstructions": "reconstructions.png", "weights": "weights.png", "samples": "samples.png",
         "latent_manifold": "latent_manifold.png", "embedding": "embedding.png"}


# -- helpers ---------------------------------------------------------------------------------------
def image_shape(dim: int) -> tuple[int, int] | None:
    """(side, side) when `dim` is a perfect square, else None."""
    side = math.isqrt(dim)
    return (side, side) if side * side == dim and side > 1 else None


def _shape(dim: int, shape: tuple[int, int] | None, what: str) -> tuple[int, int]:
    shape = tuple(shape) if shape is not None else image_shape(dim)
    if shape is None or shape[0] * shape[1] != dim:
        raise StrataError(f"{what}: inputs of dimension {dim} are not images (expected a perfect square, e.g. 784 = 28x28, "
                          f"or shape=(height, width) with height * width = {dim})")
    return shape


def tile(images: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """(n, h, w) images as one array of ceil(n / cols) rows and `cols` columns, separated by NaN (drawn as background)."""
    n, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return out


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _show(ax, grid: np.ndarray, title: str, vmin: float | None = None, vmax: float | None = None) -> None:
    cmap = colormaps["gray"].with_extremes(bad="#d0d0ff")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _display_range(model, *arrays: torch.Tensor) -> tuple[float, float]:
    """The raw range of the data: [shift, shift + scale] when the output is a sigmoid (bce), else the shown values' range."""
    if model.layers[0].loss_kind == "bce":
        return float(model.preprocess.shift.min()), float((model.preprocess.shift + model.preprocess.scale).max())
    values = torch.cat([a.flatten() for a in arrays])
    return float(values.min()), float(values.max())


def _cols(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def _generative_top(model, what: str):
    top = model.layers[-1]
    if not top.generative:
        raise StrataError(f"{what} needs a generative top layer (autoencoder=vae or adversarial), this one is {top.kind!r}")
    return top


# -- the pictures ------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_grid(model, x: torch.Tensor, path: str | Path, n: int = 36, shape: tuple[int, int] | None = None,
                        size: tuple[float, float] = PAIR_SIZE) -> Path:
    """The first `n` of the inputs `x` (raw) on the left, their reconstructions at the same places on the right."""
    model.eval()
    h, w = _shape(x.shape[1], shape, "reconstruction grid")
    x = x[:n].float()
    x_hat = model.reconstruct(x)
    vmin, vmax = _display_range(model, x, x_hat)
    fig = _figure(size)
    left, right = fig.subplots(1, 2)
    cols = _cols(len(x))
    _show(left, tile(x.reshape(-1, h, w).numpy(), cols), "inputs", vmin, vmax)
    _show(right, tile(x_hat.reshape(-1, h, w).numpy(), cols), "reconstructions", vmin, vmax)
    return _save(fig, path)


@torch.no_grad()
def weight_tiles(model, path: str | Path, n: int = 100, shape: tuple[int, int] | None = None,
                 size: tuple[float, float] = GRID_SIZE) -> Path:
    """The first layer's weight vectors of (up to) `n` units as images, each scaled to its own range."""
    weight = model.layers[0].encoder.weight.detach().cpu()[:n]
    h, w = _shape(weight.shape[1], shape, "weight tiles")
    lo, hi = weight.min(dim=1, keepdim=True).values, weight.max(dim=1, keepdim=True).values
    scaled = (weight - lo) / (hi - lo).clamp_min(1e-12)
    fig = _figure(size)
    _show(fig.subplots(), tile(scaled.reshape(-1, h, w).numpy(), _cols(len(weight))),
          f"layer 1 weights ({len(weight)} of {model.layers[0].n_hidden} units)", 0.0, 1.0)
    return _save(fig, path)


@torch.no_grad()
def sample_grid(model, path: str | Path, n: int = 64, seed: int = 0, shape: tuple[int, int] | None = None,
                size: tuple[float, float] = GRID_SIZE) -> Path:
    """`n` new examples: prior samples of the generative top layer through the whole decoder."""
    top = _generative_top(model, "a sample grid")
    model.eval()
    samples = model.sample(n, seed=seed).cpu()
    h, w = _shape(samples.shape[1], shape, "sample grid")
    vmin, vmax = _display_range(model, samples)
    fig = _figure(size)
    _show(fig.subplots(), tile(samples.reshape(-1, h, w).numpy(), _cols(n)), f"samples from the {top.prior} prior ({top.kind})", vmin, vmax)
    return _save(fig, path)


@torch.no_grad()
def latent_manifold(model, path: str | Path, steps: int = 15, shape: tuple[int, int] | None = None,
                    size: tuple[float, float] = GRID_SIZE) -> Path:
    """The decoder over a steps x steps grid of a 2-unit code, at the prior's quantiles 0.05 .. 0.95 per unit
    (unit 1 left to right, unit 2 bottom to top)."""
    top = _generative_top(model, "the latent manifold")
    if top.n_hidden != 2:
        raise StrataError(f"the latent manifold needs a 2-unit code (the last of model.layers = 2), this one has {top.n_hidden}")
    model.eval()
    q = top.prior_quantiles(torch.linspace(0.05, 0.95, steps))
    z1, z2 = torch.meshgrid(q, q.flip(0), indexing="xy")  # rows: unit 2 from high (top) to low
    images = model.decode(torch.stack([z1.flatten(), z2.flatten()], dim=1).to(top.decoder_bias)).cpu()
    h, w = _shape(images.shape[1], shape, "latent manifold")
    vmin, vmax = _display_range(model, images)
    fig = _figure(size)
    _show(fig.subplots(), tile(images.reshape(-1, h, w).numpy(), steps), f"decoded latent grid ({top.kind}, {top.prior} prior)", vmin, vmax)
    return _save(fig, path)


def project_2d(codes: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates of the codes and the method's name: the codes themselves when 2-D, else UMAP or PCA.

    method: "auto" (UMAP where the umap-learn package is installed, else PCA), "pca" or "umap".
    """
    if method not in ("auto", "pca", "umap"):
        raise StrataError(f"embedding method={method!r} is not one of auto, pca, umap")
    if codes.shape[1] <= 2:
        return np.pad(codes, ((0, 0), (0, 2 - codes.shape[1]))), "the codes"
    if method in ("auto", "umap"):
        try:
            import umap  # optional: umap-learn
        except ImportError:
            if method == "umap":
                raise StrataError("embedding method=umap needs the umap-learn package (pip install umap-learn)") from None
        else:
            return umap.UMAP(n_components=2, random_state=seed).fit_transform(codes), "UMAP"
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(codes)
    explained = 100 * pca.explained_variance_ratio_.sum()
    return pca.transform(codes), f"PCA ({explained:.0f}% of the variance)"


@torch.no_grad()
def embedding_scatter(model, x: torch.Tensor, y: torch.Tensor | None, path: str | Path, method: str = "auto",
                      seed: int = 0, size: tuple[float, float] = GRID_SIZE) -> Path:
    """The top-layer codes of inputs `x` (training inputs) in 2-D, coloured by their labels `y` when given."""
    model.eval()
    codes = model.embed(x.float()).cpu().numpy()
    points, how = project_2d(codes, method, seed)
    fig = _figure(size)
    ax = fig.subplots()
    if y is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
    else:
        y = np.asarray(y)
        classes = np.unique(y)
        cmap = colormaps["tab10" if len(classes) <= 10 else "viridis"]
        for i, c in enumerate(classes):
            member = y == c
            ax.scatter(points[member, 0], points[member, 1], s=4, alpha=0.6, color=cmap(i % 10 if len(classes) <= 10 else i / max(1, len(classes) - 1)), label=str(c))
        if len(classes) <= 20:
            ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_title(f"{codes.shape[1]}-unit codes of {len(codes)} training inputs: {how}", fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def save_pictures(model, x: torch.Tensor, y: torch.Tensor | None, folder: str | Path, seed: int = 0,
                  n_embed: int = 2000, shape: tuple[int, int] | None = None) -> dict[str, Path]:
    """Every picture that applies to `model`, from a seeded random subset of the training inputs `x` (labels `y`
    colour the scatter), into the new folder `folder`; returns {name: path}.

    Image pictures are drawn for image data only; the samples and the latent manifold for a generative top only.
    The folder is written whole or not at all, and an existing one is never overwritten.
    """
    folder = Path(folder)
    if folder.exists():
        raise StrataError(f"{folder} already exists: earlier pictures are never overwritten (choose another folder)")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x_shown = x[order[:SHOWN]]  # the reconstructions' inputs only: memory-mapped rows are never read whole
    images = shape is not None or image_shape(x.shape[1]) is not None
    top = model.layers[-1]

    def draw(tmp: Path) -> dict[str, Path]:
        written = {}
        if images:
            written["reconstructions"] = reconstruction_grid(model, x_shown, tmp / FILES["reconstructions"], n=SHOWN, shape=shape)
            written["weights"] = weight_tiles(model, tmp / FILES["weights"], shape=shape)
            if top.generative:
                written["samples"] = sample_grid(model, tmp / FILES["samples"], seed=seed, shape=shape)
                if top.n_hidden == 2:
                    written["latent_manifold"] = latent_manifold(model, tmp / FILES["latent_manifold"], shape=shape)
        subset = order[:n_embed]
        written["embedding"] = embedding_scatter(model, x[subset], None if y is None else y[subset], tmp / FILES["embedding"], seed=seed)
        return written

    written = new_folder(folder, draw)[1]
    return {name: folder / path.name for name, path in written.items()}
