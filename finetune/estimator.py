"""A scikit-learn classifier beside `EncoderTransformer`: greedy pretraining on X, then fine-tuning on (X, y).

    from finetune import AutoencoderClassifier
    clf = AutoencoderClassifier(mode="unfrozen").fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

Every setting left at None takes the command's default (conf/model/stack.yaml, conf/autoencoder/, conf/finetune/default.yaml).
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

import pretrain

from . import api


class AutoencoderClassifier(ClassifierMixin, BaseEstimator):
    """Parameters:
        pretrained: an artifact folder to start from instead of pretraining on X.
        layers, autoencoder, pretrain_epochs, pretrain_steps, autoencoder_options: the pretraining
            (`pretrain.fit`: layers (None: conf/model/stack.yaml's), autoencoder variant, epochs per layer or "auto",
            steps, variant overrides).
        mode: scratch, frozen, unfrozen, partial, semisup, ladder.
        steps, lr, head, finetune_options: the fine-tuning (`finetune.fit`; None: the config's default; `steps` is
            raised to finetune.min_passes passes over y where it needs more, unless
            finetune_options={"min_passes": None}).
        random_state: the seed of both stages. accelerator: "auto" (a GPU where there is one) or "cpu", "gpu".

    Fitted attributes: `classes_`, `n_features_in_`, `autoencoder_` (the pretrained model, None for scratch or
    `pretrained`), `classifier_` (a `finetune.Classifier`).
    """

    def __init__(self, pretrained=None, *, layers=None, autoencoder="denoising", pretrain_epochs="auto",
                 pretrain_steps=None, autoencoder_options=None, mode="unfrozen", steps=None, lr=None, head=None,
                 finetune_options=None, random_state=0, accelerator="auto", verbose=False):
        self.pretrained = pretrained
        self.layers = layers
        self.autoencoder = autoencoder
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_steps = pretrain_steps
        self.autoencoder_options = autoencoder_options
        self.mode = mode
        self.steps = steps
        self.lr = lr
        self.head = head
        self.finetune_options = finetune_options
        self.random_state = random_state
        self.accelerator = accelerator
        self.verbose = verbose

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        seed = int(self.random_state or 0)
        layers = list(self.layers) if self.layers is not None else list(pretrain.api.MODEL["layers"])
        common = {"seed": seed, "accelerator": self.accelerator, "progress": bool(self.verbose)}
        self.autoencoder_ = None
        if self.pretrained is not None:
            model = self.pretrained
        elif self.mode == "scratch":
            model = None
        else:
            extra = {"steps": self.pretrain_steps} if self.pretrain_steps is not None else {}
            self.autoencoder_ = model = pretrain.fit(X, layers=layers, autoencoder=self.autoencoder,
                                                     epochs=self.pretrain_epochs, **extra, **(self.autoencoder_options or {}), **common)
        options = {k: v for k, v in (("steps", self.steps), ("lr", self.lr), ("head", self.head)) if v is not None}
        if model is None:
            options["layers"] = layers
        self.classifier_ = api.fit(model, X, y, mode=self.mode, **options, **(self.finetune_options or {}), **common)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.classifier_.predict_proba(X.astype(np.float32)).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
