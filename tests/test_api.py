"""The Python API without Hydra's app: `pretrain.fit` trains what the command trains (number for number, from the
same config files), `finetune.fit` returns a classifier that predicts the labels by name, `AutoencoderClassifier`
is a scikit-learn classifier; bad arguments are one clear StrataError; the process's random state is kept."""
import pickle
import random
import re

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sklearn.base import clone

import finetune
import pretrain
from pretrain import StrataError, run_pretraining
from pretrain.artifact import read_artifact
from pretrain.config import CONF_DIR, to_dict
from pretrain.options import group_option, group_options


def test_group_options_read_as_hydra_composes_them():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for name in group_options("autoencoder"):
            composed = to_dict(compose("pretrain", overrides=[f"autoencoder={name}"]))["autoencoder"]
            assert group_option("autoencoder", name) == composed, name
        assert group_option("finetune", "default") == to_dict(compose("finetune"))["finetune"]


@pytest.mark.parametrize("holdout", [0.0, 0.2])  # 0.2: the same rows held out, the same epoch kept
def test_pretrain_fit_trains_what_the_command_trains(holdout, digits, config, tmp_path):
    artifact = run_pretraining(OmegaConf.create(config("trainer.enable_progress_bar=false", "model.layers=[8]",
                                                       "model.epochs=2", "pictures=false", f"model.holdout={holdout}")), tmp_path)
    _, expected = read_artifact(artifact)
    model = pretrain.fit(digits.x_train.numpy(), layers=[8], epochs=2, batch_size=64, scaling="unit", pixel_max=16,
                         holdout=holdout)
    assert isinstance(model, pretrain.DeepAutoencoder) and len(model.metrics["layers"][0]["recon_per_epoch"]) == 2
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items() if k in state) and "layers.0.encoder.weight" in state


def test_pretrain_fit_refuses_a_holdout_that_is_not_a_fraction(digits):
    with pytest.raises(StrataError, match=r"holdout=1.0 is not a fraction in \[0, 1\)"):
        pretrain.fit(digits.x_train, layers=[8], epochs=1, holdout=1.0)


@pytest.fixture(scope="module")
def small_stack(digits):
    return pretrain.fit(digits.x_train, layers=[16], epochs=1)


def test_finetune_fit_predicts_the_labels_by_name(small_stack, digits):
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    x, y = digits.x_train.numpy(), names[digits.y_train.numpy()]
    np.random.seed(5)
    random.seed(5)
    torch.manual_seed(5)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state())
    clf = finetune.fit(small_stack, x[:300], y[:300], mode="frozen", steps=200, lr=0.01, epochs=4, x_val=x[300:600], y_val=y[300:600])
    after = (np.random.get_state()[1], random.getstate(), torch.get_rng_state())
    assert np.array_equal(before[0], after[0]) and before[1] == after[1] and torch.equal(before[2], after[2])
    proba = clf.predict_proba(digits.x_test)
    assert proba.shape == (len(digits.x_test), 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    predicted = clf.predict(digits.x_test)
    assert set(predicted) <= set(names) and (predicted == names[digits.y_test.numpy()]).mean() > 0.6
    assert 0 < clf.metrics["val"]["accuracy"] <= 1 and clf.metrics["labels"] == 300


def test_a_classifier_refuses_inputs_it_cannot_have_been_trained_for(digits):
    clf = finetune.fit(None, digits.x_train[:200], digits.y_train[:200], mode="scratch", layers=[16], steps=20,
                       min_passes=None, epochs=1)
    for x, message in ((digits.x_test[:, :10], "x has 10 features per example; the classifier expects 64"),
                       (digits.x_test[0], "x has shape (64,): expected one row per example"),
                       (np.full((2, 64), np.nan, np.float32), "x holds 128 NaN or infinite values")):
        with pytest.raises(StrataError, match=re.escape(message)):
            clf.predict(x)


def test_scratch_without_a_model(digits):
    clf = finetune.fit(None, digits.x_train[:200], digits.y_train[:200], mode="scratch", layers=[16], steps=20,
                       min_passes=None, epochs=1)
    assert clf.predict(digits.x_test[:5]).shape == (5,) and "train" in clf.metrics


BAD = [
    (lambda x, y, m: pretrain.fit(x, autoencoder="nope"), "autoencoder='nope' is not one of adversarial, denoising"),
    (lambda x, y, m: pretrain.fit(x, nosie=0.3), "nosie is not an option of autoencoder=denoising"),
    (lambda x, y, m: pretrain.fit(x, layers=[0]), "layers=[0] is not a non-empty list of positive integers"),
    (lambda x, y, m: pretrain.fit(x[0]), "x has shape (64,): expected one row per example"),
    (lambda x, y, m: finetune.fit(m, x, y[:-1]), "y has shape (1436,): expected one label per row of x (1437)"),
    (lambda x, y, m: finetune.fit(m, x, y, step=3), "step is not a fine-tuning option"),
    (lambda x, y, m: finetune.fit(m, x, y, mode="sideways"), "finetune.mode='sideways' is not one of"),
    (lambda x, y, m: finetune.fit("no/such/artifact", x, y), "no/such/artifact"),
    (lambda x, y, m: finetune.fit(m, x, y, x_val=x), "x_val and y_val come together"),
    (lambda x, y, m: finetune.fit(m, x, np.zeros(len(x))), "y holds one class only"),
]


@pytest.mark.parametrize("call, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_are_one_clear_error(call, message, digits, small_stack):
    with pytest.raises(StrataError) as err:
        call(digits.x_train.numpy(), digits.y_train.numpy(), small_stack)
    assert message in str(err.value)


def test_the_scikit_learn_classifier(digits):
    x, y = digits.x_train.numpy()[:600], digits.y_train.numpy()[:600]
    clf = finetune.AutoencoderClassifier(layers=(16,), pretrain_epochs=1, mode="unfrozen", steps=200, lr=1e-2,
                                         finetune_options={"min_passes": None})
    assert clone(clf).get_params() == clf.get_params()
    clf.fit(x, y)
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 64
    assert clf.score(digits.x_test.numpy(), digits.y_test.numpy()) > 0.5
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(digits.x_test.numpy()), clf.predict_proba(digits.x_test.numpy()))
