"""scikit-learn baselines on the same labeled subsets as strata's runs: logistic regression on the inputs,
PCA(50) + logistic regression, BernoulliRBM(500) + logistic regression (inputs in [0, 1] only), an MLP(500, 500)
from scratch, an RBF support vector machine and a random forest. The unsupervised stages (PCA, RBM) are fitted
on the unlabeled training inputs, as strata's pretraining is; every baseline sees the inputs as strata's encoder
does (the data's scaling), and nothing is tuned: scikit-learn's defaults throughout, no validation split."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM, MLPClassifier
from sklearn.svm import SVC
from tqdm.auto import tqdm

from pretrain import ArrayDataModule, StrataError

from .labels import labeled_subset

BASELINES = {
    "logreg": "LogisticRegression, raw pixels",
    "pca_logreg": "PCA(50) + LogisticRegression",
    "rbm_logreg": "BernoulliRBM(500) + LogisticRegression",
    "mlp": "MLPClassifier(500, 500), raw pixels, from scratch",
    "svm": "SVC (RBF kernel), raw pixels",
    "forest": "RandomForestClassifier(300), raw pixels",
}


def unsupervised_features(name: str, x_unlabeled: np.ndarray, seed: int = 0, rbm_epochs: int = 10):
    """The feature map of a baseline, fitted on unlabeled inputs (identity for the supervised-only ones)."""
    if name not in BASELINES:
        raise StrataError(f"baselines: {name!r} is not one of {', '.join(BASELINES)}")
    if name == "pca_logreg":
        return PCA(min(50, *x_unlabeled.shape), random_state=seed).fit(x_unlabeled).transform
    if name == "rbm_logreg":
        rbm = BernoulliRBM(n_components=500, learning_rate=0.01, batch_size=20, n_iter=rbm_epochs, random_state=seed)
        return rbm.fit(x_unlabeled).transform
    return lambda x: x


def make_classifier(name: str, seed: int):
    if name == "mlp":
        return MLPClassifier((500, 500), random_state=seed)
    if name == "svm":
        return SVC()
    if name == "forest":
        return RandomForestClassifier(300, n_jobs=-1, random_state=seed)
    return LogisticRegression(max_iter=1000)


def baseline_test_accuracy(name: str, features, x_train, y_train, x_test, y_test, seed: int = 0) -> float:
    """Fit the baseline's classifier on the features of the labeled subset; its accuracy on the test set."""
    clf = make_classifier(name, seed)
    clf.fit(features(x_train), y_train)
    return float(clf.score(features(x_test), y_test))


def run_baselines(data: ArrayDataModule, names: list[str], budgets: list, seeds: list, seed: int = 0, rbm_epochs: int = 10,
                  progress: bool = True) -> list[dict]:
    """Test accuracy of each baseline for every budget x seed, on the labeled subsets strata's runs draw (no
    validation: none of them chooses anything). The RBM is skipped where the scaled inputs leave [0, 1]."""
    scale = lambda x: ((x - data.shift) / data.scale).numpy()  # noqa: E731 - as strata's encoder sees the inputs
    x_unlabeled, (x_test, y_test) = scale(data.unlabeled()), data.test()
    rows = []
    for name in names:
        if name == "rbm_logreg" and not data.unit_interval:
            continue
        features = unsupervised_features(name, x_unlabeled, seed=seed, rbm_epochs=rbm_epochs)
        for budget, s in tqdm([(b, s) for b in budgets for s in seeds], desc=name, disable=not progress):
            (x_train, y_train), _, _ = labeled_subset(data, budget, s)
            acc = baseline_test_accuracy(name, features, scale(x_train), y_train.numpy(), scale(x_test), y_test.numpy(), seed=s)
            rows.append({"budget": budget, "seed": s, "mode": name, "test_accuracy": acc})
    return rows
