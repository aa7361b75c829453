"""The linear autoencoder is PCA: with k linear units and squared error, its optimum spans the k leading
principal components, and it reconstructs exactly as well as PCA with k components (Baldi and Hornik 1989).

The layer is the one conf/autoencoder/linear.yaml configures, trained by Lightning with full-batch Adam.
"""
import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from pretrain.layers import LAYER_KINDS
from pretrain.training import make_trainer

K = 4  # digits' 4th and 5th principal variances differ by 40%: the subspace is well defined and found in few steps
STEPS = 600  # full-batch Adam at lr 0.05 lands within 0.5 degrees for init seeds 0..9 (8 units need ~1500 steps)


class FullBatches:
    """`steps` batches that are each the whole data set: full-batch training, as one Lightning epoch."""

    def __init__(self, x: torch.Tensor, steps: int):
        self.x, self.steps = x, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return (self.x for _ in range(self.steps))


@pytest.fixture(scope="module")
def fitted(config, digits_x):
    """(the trained linear layer, PCA with K components), both fitted on the same preprocessed digits."""
    cfg = config("autoencoder=linear", f"model.layers=[{K}]", "model.lr=0.05", "trainer=fast",
                 "trainer.limit_train_batches=1.0")  # fast has no progress bar; here every step runs
    options = {**cfg["autoencoder"], "optimizer": cfg["model"]["optimizer"], "lr": cfg["model"]["lr"]}
    assert options["activation"] == "linear" and options["loss"] == "mse"
    layer = LAYER_KINDS[options.pop("kind")](digits_x.shape[1], K, init_seed=0, **options)
    make_trainer(cfg["trainer"], 1, "pca", None, "pca").fit(layer, train_dataloaders=FullBatches(digits_x, STEPS))
    return layer.eval(), PCA(K).fit(digits_x.numpy())


def test_decoder_spans_the_principal_subspace(fitted):
    layer, pca = fitted
    angles = np.degrees(subspace_angles(layer.decoder_matrix.detach().numpy(), pca.components_.T))
    assert angles.max() < 5.0
    # (not so the encoder: its weights on pixels that never vary, digits' blank borders, get no gradient)


def test_reconstruction_error_matches_pca(fitted, digits_x):
    layer, pca = fitted
    x = digits_x.numpy()
    with torch.no_grad():
        autoencoder_mse = ((layer(digits_x) - digits_x) ** 2).sum(dim=1).mean().item()
    pca_mse = ((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(axis=1).mean()
    assert autoencoder_mse == pytest.approx(pca_mse, rel=0.02)
    assert autoencoder_mse > pca_mse * (1 - 1e-4)  # PCA is the optimum of rank K: the autoencoder cannot beat it
