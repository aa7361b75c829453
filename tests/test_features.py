"""finetune.features.EncoderTransformer: scikit-learn's estimator checks, Pipeline/GridSearchCV, artifacts."""
import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from finetune.features import EncoderTransformer, FeatureError
from conftest import denoising_artifact
from pretrain import StrataError, load_encoder, save_encoder

DIGITS = {"scaling": "unit", "pixel_max": 16.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: a second BLAS or torch thread only adds waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def artifact(digits, tmp_path_factory):
    """A small denoising 64-16-8 stack pretrained on the digits' training inputs."""
    return denoising_artifact(digits, tmp_path_factory.mktemp("features") / "encoder", [16, 8], epochs=2)


@parametrize_with_checks([EncoderTransformer(sizes=(4,), epochs=2, batch_size=16)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_transform_before_fit_raises_not_fitted(digits):
    with pytest.raises(NotFittedError):
        EncoderTransformer(sizes=(4,)).transform(digits.x_train.numpy())


def test_pipeline_classifies_digits_far_above_chance(digits):
    pipe = Pipeline([("codes", EncoderTransformer(sizes=(32,), epochs=10, **DIGITS)),
                     ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(digits.x_train.numpy(), digits.y_train.numpy())
    assert pipe.named_steps["codes"].transform(digits.x_test.numpy()).shape == (len(digits.x_test), 32)
    assert pipe.score(digits.x_test.numpy(), digits.y_test.numpy()) > 0.8  # chance is 0.1


def test_grid_search_prefers_the_code_that_reconstructs_better(digits):
    """score is the negative reconstruction error, so the search picks 32 units over 2."""
    search = GridSearchCV(EncoderTransformer(epochs=5, **DIGITS), {"sizes": [(2,), (32,)]}, cv=2)
    search.fit(digits.x_train.numpy())
    assert search.best_params_ == {"sizes": (32,)}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(scores < 0) and scores[1] > scores[0]


def test_grid_search_over_a_pipeline_with_a_classifier(digits):
    pipe = Pipeline([("codes", EncoderTransformer(sizes=(16, 8), epochs=2, **DIGITS)), ("clf", LogisticRegression(max_iter=300))])
    x, y = digits.x_train.numpy()[:600], digits.y_train.numpy()[:600]
    search = GridSearchCV(pipe, {"codes__layers": ["top", "all"]}, cv=2).fit(x, y)
    assert set(search.cv_results_["param_codes__layers"]) == {"top", "all"}
    assert search.best_estimator_.named_steps["codes"].transform(digits.x_test.numpy()[:3]).shape[1] in (8, 24)


def test_wrapped_artifact_gives_the_encoders_codes(artifact, digits):
    x = digits.x_test.numpy()
    top = EncoderTransformer(artifact).fit(digits.x_train.numpy())
    encoder = load_encoder(artifact)
    with torch.no_grad():
        expected_top = encoder(digits.x_test).numpy()
        expected_all = torch.cat(encoder.codes(digits.x_test), dim=1).numpy()
    np.testing.assert_allclose(top.transform(x), expected_top, atol=1e-5)
    every = clone(top).set_params(layers="all").fit(digits.x_train.numpy())
    np.testing.assert_allclose(every.transform(x), expected_all, atol=1e-5)
    assert list(top.get_feature_names_out()) == [f"layer2_{j}" for j in range(8)]
    assert list(every.get_feature_names_out()) == [f"layer1_{j}" for j in range(16)] + [f"layer2_{j}" for j in range(8)]
    assert top.transform(x).dtype == np.float32 and top.transform(x.astype(np.float64)).dtype == np.float64
    assert top.score(x) < 0


def test_wrong_width_is_a_clear_error_naming_both_widths(artifact, digits):
    narrow = digits.x_train.numpy()[:, :10]
    with pytest.raises(FeatureError, match=r"takes 64 features per example, but X has 10"):
        EncoderTransformer(artifact).fit(narrow)
    fitted = EncoderTransformer(artifact).fit(digits.x_train.numpy())
    with pytest.raises(ValueError, match=r"X has 10 features, but EncoderTransformer is expecting 64"):
        fitted.transform(narrow)


def test_training_parameters_beside_an_artifact_are_rejected(artifact, digits):
    with pytest.raises(StrataError, match=r"epochs=50"):
        EncoderTransformer(artifact, epochs=50).fit(digits.x_train.numpy())
    with pytest.raises(StrataError, match=r"layers='middle'"):
        EncoderTransformer(artifact, layers="middle").fit(digits.x_train.numpy())


def test_encoder_only_artifact_transforms_but_cannot_score(artifact, digits, tmp_path):
    path = save_encoder(load_encoder(artifact), tmp_path / "encoder_only")
    model = EncoderTransformer(path).fit(digits.x_train.numpy())
    np.testing.assert_allclose(model.transform(digits.x_test.numpy()),
                               EncoderTransformer(artifact).fit(digits.x_train.numpy()).transform(digits.x_test.numpy()))
    with pytest.raises(FeatureError, match="no decoder"):
        model.score(digits.x_test.numpy())


def test_fit_is_reproducible_and_leaves_torchs_random_state_alone(digits):
    x = digits.x_train.numpy()[:300]
    before = torch.get_rng_state()
    a = EncoderTransformer(sizes=(8,), epochs=2, corruption="mask", noise=0.3, random_state=3, **DIGITS).fit(x)
    assert torch.equal(torch.get_rng_state(), before)
    b = clone(a).fit(x)
    c = clone(a).set_params(random_state=4).fit(x)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    assert not np.allclose(a.transform(x), c.transform(x))


@pytest.mark.parametrize("params, message", [({"holdout": 1.0}, r"holdout=1.0 is not a fraction in \[0, 1\)"),
                                             ({"holdout": 0.2, "patience": 0}, r"patience=0 is not a positive integer")])
def test_bad_early_stopping_parameters_are_named(digits, params, message):
    with pytest.raises(StrataError, match=message):
        EncoderTransformer(sizes=(8,), epochs=1, **params, **DIGITS).fit(digits.x_train.numpy()[:100])


def test_pickle_and_clone(digits):
    x = digits.x_test.numpy()
    fitted = EncoderTransformer(sizes=(8,), epochs=1, **DIGITS).fit(digits.x_train.numpy())
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(x), fitted.transform(x))
    assert restored.score(x) == fitted.score(x)
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        fresh.transform(x)


def test_save_writes_an_artifact_that_load_encoder_reads(digits, tmp_path):
    fitted = EncoderTransformer(sizes=(8, 4), epochs=1, layers="all", **DIGITS).fit(digits.x_train.numpy())
    path = fitted.save(tmp_path / "encoder")
    with torch.no_grad():
        codes = torch.cat(load_encoder(path).codes(digits.x_test), dim=1).numpy()
    np.testing.assert_allclose(fitted.transform(digits.x_test.numpy()), codes, atol=1e-5)
    with pytest.raises(StrataError, match="already exists"):
        fitted.save(path)


@pytest.mark.parametrize("holdout", [0.0, 0.25])
def test_same_seed_pretrains_the_same_encoder_as_the_pretrain_command(tmp_path, holdout):
    """EncoderTransformer(random_state=s) on the training inputs repeats `python -m pretrain seed=s`, with early
    stopping on held-out inputs too."""
    from hydra import compose, initialize_config_dir

    from pretrain import run_pretraining
    from pretrain.config import CONF_DIR, build_data

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pretrain", overrides=["trainer=fast", "trainer.limit_train_batches=null", "model.epochs=2",
                                             "model.layers=[16,8]", "autoencoder=denoising", "seed=5", "++pictures=false",
                                             f"model.holdout={holdout}", "model.patience=1"])
    path = run_pretraining(cfg, tmp_path)
    data = build_data(cfg)
    ours = EncoderTransformer(sizes=(16, 8), epochs=2, batch_size=cfg.data.batch_size, corruption="mask", activation=cfg.autoencoder.activation,
                              noise=cfg.autoencoder.noise, random_state=5, holdout=holdout, patience=1, **DIGITS).fit(data.x_train.numpy())
    if holdout:
        command = json.loads((tmp_path / "metrics.json").read_text())
        assert [layer["best_epoch"] for layer in ours.metrics_["layers"]] == [layer["best_epoch"] for layer in command["layers"]]
        assert command["n_holdout"] == round(0.25 * len(data.x_train))
    with torch.no_grad():
        np.testing.assert_allclose(ours.transform(data.x_test.numpy()), load_encoder(path)(data.x_test).numpy(), atol=1e-5)
