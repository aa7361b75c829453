"""scikit-learn baselines on the same labeled subsets as strata's runs: logistic regression on raw pixels,
PCA(50) + logistic regression and BernoulliRBM(500) + logistic regression. The unsupervised stages (PCA, RBM)
are fitted on the unlabeled training inputs, as strata's pretraining is; nothing is tuned on the test set."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM

from pretrain import StrataError

BASELINES = {
    "logreg": "LogisticRegression, raw pixels",
    "pca_logreg": "PCA(50) + LogisticRegression",
    "rbm_logreg": "BernoulliRBM(500) + LogisticRegression",
}


def unsupervised_features(name: str, x_unlabeled: np.ndarray, seed: int = 0, rbm_epochs: int = 10):
    """The feature map of a baseline, fitted on unlabeled inputs in [0, 1] (identity for raw pixels)."""
    if name == "logreg":
        return lambda x: x
    if name == "pca_logreg":
        return PCA(50, random_state=seed).fit(x_unlabeled).transform
    if name == "rbm_logreg":
        rbm = BernoulliRBM(n_components=500, learning_rate=0.01, batch_size=20, n_iter=rbm_epochs, random_state=seed)
        return rbm.fit(x_unlabeled).transform
    raise StrataError(f"baselines: {name!r} is not one of {', '.join(BASELINES)}")


def logistic_test_accuracy(features, x_train, y_train, x_test, y_test) -> float:
    clf = LogisticRegression(max_iter=1000)
    clf.fit(features(x_train), y_train)
    return float(clf.score(features(x_test), y_test))
