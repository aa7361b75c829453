"""scikit-learn baselines on the same labeled subsets as strata's runs: logistic regression on raw pixels,
PCA(50) + logistic regression, BernoulliRBM(500) + logistic regression, and an MLP(500, 500) from scratch. The
unsupervised stages (PCA, RBM) are fitted on the unlabeled training inputs, as strata's pretraining is; nothing is
tuned on the test set (scikit-learn's defaults throughout)."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM, MLPClassifier

from pretrain import StrataError

BASELINES = {
    "logreg": "LogisticRegression, raw pixels",
    "pca_logreg": "PCA(50) + LogisticRegression",
    "rbm_logreg": "BernoulliRBM(500) + LogisticRegression",
    "mlp": "MLPClassifier(500, 500), raw pixels, from scratch",
}


def unsupervised_features(name: str, x_unlabeled: np.ndarray, seed: int = 0, rbm_epochs: int = 10):
    """The feature map of a baseline, fitted on unlabeled inputs in [0, 1] (identity for raw pixels)."""
    if name in ("logreg", "mlp"):
        return lambda x: x
    if name == "pca_logreg":
        return PCA(50, random_state=seed).fit(x_unlabeled).transform
    if name == "rbm_logreg":
        rbm = BernoulliRBM(n_components=500, learning_rate=0.01, batch_size=20, n_iter=rbm_epochs, random_state=seed)
        return rbm.fit(x_unlabeled).transform
    raise StrataError(f"baselines: {name!r} is not one of {', '.join(BASELINES)}")


def baseline_test_accuracy(name: str, features, x_train, y_train, x_test, y_test, seed: int = 0) -> float:
    """Fit the baseline's classifier on the features of the labeled subset; its accuracy on the test set."""
    clf = MLPClassifier((500, 500), random_state=seed) if name == "mlp" else LogisticRegression(max_iter=1000)
    clf.fit(features(x_train), y_train)
    return float(clf.score(features(x_test), y_test))
