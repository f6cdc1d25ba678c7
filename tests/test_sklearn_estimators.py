"""The scikit-learn estimators (unitlens.estimators): API compliance, BernoulliRBM parity, behaviour.

check_estimator: every check of scikit-learn's suite (``legacy=True``) runs on the three estimators with
small settings. The only check not run is ``check_array_api_input``, which skips itself unless
``SCIPY_ARRAY_API=1`` is set: the estimators convert inputs to numpy float64 and make no array-API claim.
"""

from __future__ import annotations

import itertools
import logging
import pickle

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from unitlens.errors import UnitlensError
from unitlens.estimators import DBN, RBM, SDAE, EstimatorInputError


def _binary_data(n: int = 80, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy binary prototypes: (n, d) rows in {0, 1} and their (n,) labels."""
    rng = np.random.RandomState(seed)
    prototypes = (rng.rand(2, d) < 0.5).astype(float)
    y = rng.randint(2, size=n)
    flips = rng.rand(n, d) < 0.1
    return np.abs(prototypes[y] - flips), y


def _real_data(n: int = 60, d: int = 5, seed: int = 1) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return rng.randn(n, d) * np.array([1.0, 3.0, 0.5, 2.0, 10.0])[:d] + np.arange(d)


# ---------------------------------------------------------------------------------------- check_estimator


@parametrize_with_checks(
    [
        RBM(n_components=4, n_iter=2),
        RBM(n_components=3, n_iter=2, persistent=True, dtype="float64"),
        DBN(n_components=(4, 3), n_iter=2),
        SDAE(n_components=(4, 3), n_iter=2),
    ]
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------------- BernoulliRBM parity


def _flip(X: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    Xf = X.copy()
    Xf[rows, cols] = 1 - Xf[rows, cols]
    return Xf


def test_same_weights_as_bernoulli_rbm_same_probabilities_energies_and_pseudo_likelihood():
    """sklearn's fitted weights copied into ours (float64): same hidden probabilities, free energies and
    pseudo-likelihood. sklearn's score_samples is n_features x log p(v_i | v_-i) for one random i per row;
    ours is the sum over all i: the mean over i of sklearn's formula (the number of features is the scale)."""
    X, _ = _binary_data()
    n, d = X.shape
    theirs = BernoulliRBM(n_components=5, n_iter=20, learning_rate=0.05, random_state=0).fit(X)
    ours = RBM(n_components=5, n_iter=1, dtype="float64", random_state=0).fit(X)
    assert ours.visible_units_ == "bernoulli"
    with torch.no_grad():
        ours.model_.weight.copy_(torch.from_numpy(theirs.components_))
        ours.model_.hidden_bias.copy_(torch.from_numpy(theirs.intercept_hidden_))
        ours.model_.visible_bias.copy_(torch.from_numpy(theirs.intercept_visible_))
    np.testing.assert_array_equal(ours.components_, theirs.components_)

    diffs = {}
    diffs["transform"] = np.abs(ours.transform(X) - theirs.transform(X)).max()
    diffs["free_energy"] = np.abs(ours.free_energy(X) - theirs._free_energy(X)).max()

    # sklearn's own score_samples, its corrupted indices reproduced from its random_state.
    cols = np.random.RandomState(0).randint(0, d, n)
    rows = np.arange(n)
    one_flip = -d * np.logaddexp(0, ours.free_energy(X) - ours.free_energy(_flip(X, rows, cols)))
    diffs["score_samples_one_flip"] = np.abs(one_flip - theirs.score_samples(X)).max()

    # sklearn's formula by hand for every feature i; its mean over i is our exact pseudo-likelihood.
    fe = theirs._free_energy(X)
    per_feature = np.stack(
        [-d * np.logaddexp(0, -(theirs._free_energy(_flip(X, rows, np.full(n, i))) - fe)) for i in range(d)]
    )  # (d, n)
    diffs["pseudo_likelihood"] = np.abs(ours.score_samples(X) - per_feature.mean(axis=0)).max()
    print("max abs differences vs BernoulliRBM (float64):", {k: f"{v:.2e}" for k, v in diffs.items()})
    assert diffs["transform"] < 1e-12
    assert diffs["free_energy"] < 1e-10
    assert diffs["score_samples_one_flip"] < 1e-9
    assert diffs["pseudo_likelihood"] < 1e-9
    # The scale is not a constant: the two scores differ unless averaged over the flipped feature.
    assert np.abs(ours.score_samples(X) - theirs.score_samples(X)).max() > 1e-3


def test_our_float32_weights_in_bernoulli_rbm_give_the_same_outputs():
    X, _ = _binary_data(seed=3)
    ours = RBM(n_components=6, n_iter=5, random_state=1).fit(X)
    theirs = BernoulliRBM(n_components=6, n_iter=1, random_state=0).fit(X)
    theirs.components_ = ours.components_
    theirs.intercept_hidden_ = ours.intercept_hidden_
    theirs.intercept_visible_ = ours.intercept_visible_
    dt = np.abs(ours.transform(X) - theirs.transform(X)).max()
    df = np.abs(ours.free_energy(X) - theirs._free_energy(X)).max()
    print(f"max abs differences vs BernoulliRBM (float32 model): transform {dt:.2e}, free energy {df:.2e}")
    assert dt < 1e-6
    assert df < 1e-4


# ---------------------------------------------------------------------------------------- fit / partial_fit


@pytest.mark.parametrize(
    "estimator",
    [
        RBM(n_components=5, batch_size=7),
        RBM(n_components=5, batch_size=7, persistent=True, cd_k=2),
        DBN(n_components=(5, 3), batch_size=7),
        SDAE(n_components=(5, 3), batch_size=7),
    ],
    ids=["rbm", "rbm-pcd", "dbn", "sdae"],
)
def test_partial_fit_once_equals_fit_with_one_pass(estimator):
    X, _ = _binary_data()
    fitted = clone(estimator).set_params(n_iter=1, random_state=4).fit(X)
    partial = clone(estimator).set_params(random_state=4).partial_fit(X)
    as_list = (lambda w: w) if isinstance(fitted.components_, list) else (lambda w: [w])
    for a, b in zip(as_list(fitted.components_), as_list(partial.components_), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fitted.transform(X), partial.transform(X))
    # ...and the model did train (a pass changes the weights from their initial draw).
    untrained = clone(estimator).set_params(n_iter=1, random_state=4, learning_rate=1e-12).fit(X)
    assert np.abs(untrained.transform(X) - fitted.transform(X)).max() > 1e-4


def test_rbm_partial_fit_continues_the_same_training():
    X, _ = _binary_data()
    fitted = RBM(n_components=5, n_iter=3, random_state=2, persistent=True).fit(X)
    partial = RBM(n_components=5, random_state=2, persistent=True)
    for _ in range(3):
        partial.partial_fit(X)
    np.testing.assert_array_equal(fitted.components_, partial.components_)
    np.testing.assert_array_equal(fitted.intercept_visible_, partial.intercept_visible_)
    assert len(partial.loss_curves_[0]) == 3


def test_fit_is_reproducible_and_refit_starts_afresh():
    X, _ = _binary_data()
    est = DBN(n_components=(4, 3), n_iter=2, random_state=0)
    first = est.fit(X).transform(X)
    np.testing.assert_array_equal(est.fit(X).transform(X), first)
    other = DBN(n_components=(4, 3), n_iter=2, random_state=1).fit(X).transform(X)
    assert np.abs(other - first).max() > 1e-3


def test_training_lowers_the_loss():
    X, _ = _binary_data(n=200)
    for est in (RBM(n_components=8, n_iter=15), SDAE(n_components=(8,), n_iter=15)):
        curve = est.set_params(random_state=0).fit(X).loss_curves_[0]
        assert curve[-1] < 0.7 * curve[0], (type(est).__name__, curve)


# ---------------------------------------------------------------------------------------- visible units


@pytest.mark.parametrize("cls", [RBM, DBN, SDAE])
def test_bernoulli_units_for_binary_and_unit_interval_data(cls, caplog):
    X, _ = _binary_data()
    grey = X * 0.8 + 0.1  # [0, 1] but not binary
    for data in (X, grey):
        with caplog.at_level(logging.INFO, logger="unitlens.estimators"):
            est = cls(n_components=3, n_iter=1, random_state=0).fit(data)
        assert est.visible_units_ == "bernoulli"
        assert est.scale_ is None
        assert "bernoulli visible units" in caplog.text
        caplog.clear()
    first = est.model_ if cls is RBM else est.model_.layer(1)
    assert getattr(first, "visible", getattr(first, "decoder", None)) in ("bernoulli", "sigmoid")


@pytest.mark.parametrize("cls", [RBM, DBN, SDAE])
def test_gaussian_units_with_standardisation_for_real_data(cls, caplog):
    X = _real_data()
    with caplog.at_level(logging.INFO, logger="unitlens.estimators"):
        est = cls(n_components=3 if cls is RBM else (3, 2), n_iter=1, random_state=0).fit(X)
    assert est.visible_units_ == "gaussian"
    assert "gaussian visible units" in caplog.text and "standardised" in caplog.text
    np.testing.assert_allclose(est.mean_, X.mean(axis=0))
    np.testing.assert_allclose(est.scale_, X.std(axis=0))
    first = est.model_ if cls is RBM else est.model_.layer(1)
    assert getattr(first, "visible", getattr(first, "decoder", None)) in ("gaussian", "linear")
    # transform standardises its input before the layer's sigmoid.
    W = est.components_ if cls is RBM else est.components_[0]
    b = est.intercept_hidden_ if cls is RBM else est.intercept_hidden_[0]
    h1 = expit(((X - X.mean(axis=0)) / X.std(axis=0)) @ W.T + b)
    if cls is RBM:
        np.testing.assert_allclose(est.transform(X), h1, atol=1e-5)
    else:
        np.testing.assert_allclose(
            est.transform(X), expit(h1 @ est.components_[1].T + est.intercept_hidden_[1]), atol=1e-5
        )


def test_gaussian_model_is_unit_free():
    """Standardisation makes a model fitted on 10·X the same; its log density shifts by -V·log(10)."""
    X = _real_data()
    a = RBM(n_components=4, n_iter=3, random_state=0, dtype="float64").fit(X)
    b = RBM(n_components=4, n_iter=3, random_state=0, dtype="float64").fit(10 * X)
    np.testing.assert_allclose(a.transform(X), b.transform(10 * X), atol=1e-10)
    np.testing.assert_allclose(
        b.score_samples(10 * X), a.score_samples(X) - X.shape[1] * np.log(10), atol=1e-8
    )
    sample = b.gibbs(10 * X[:3])
    assert sample.shape == (3, X.shape[1])
    assert np.abs(sample.mean() - (10 * X).mean()) < 10 * (10 * X).std()


def test_explicit_visible_units_are_kept_and_checked():
    X = _real_data()
    Xb, _ = _binary_data()
    kept = RBM(n_components=2, n_iter=1, visible="gaussian").fit(Xb)  # "auto" would pick Bernoulli
    assert kept.visible_units_ == "gaussian" and kept.scale_ is not None
    with pytest.raises(EstimatorInputError, match=r"Bernoulli visible units, which need X in \[0, 1\]"):
        RBM(n_components=2, n_iter=1, visible="bernoulli").fit(X)
    est = RBM(n_components=2).partial_fit(Xb)
    with pytest.raises(EstimatorInputError, match=r"need X in \[0, 1\]"):
        est.partial_fit(Xb * 2)


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [RBM, DBN, SDAE])
def test_clear_errors_for_bad_input(cls):
    X, _ = _binary_data()
    est = cls(n_components=3, n_iter=1, random_state=0)
    for bad, word in ((np.nan, "NaN"), (np.inf, "inf")):
        Xbad = X.copy()
        Xbad[4, 2] = bad
        with pytest.raises(EstimatorInputError, match=rf"{word}.*row 4, column 2") as info:
            clone(est).fit(Xbad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, UnitlensError)
        assert "\n" not in str(info.value)
    est.fit(X)
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    with pytest.raises(ValueError, match="expects finite values in X"):
        est.transform(Xnan)
    with pytest.raises(
        EstimatorInputError, match=r"X has 5 features, but .* is expecting 12 features"
    ) as info:
        est.transform(X[:, :5])
    assert "\n" not in str(info.value)
    with pytest.raises(EstimatorInputError, match=r"expects X of shape \(n_samples, n_features\), got a 1-D"):
        est.transform(X[0])
    with pytest.raises(EstimatorInputError, match=r"1-D array of shape \(12,\).*Reshape your data"):
        clone(est).fit(X[0])


def test_bad_parameters_are_refused_at_fit_not_init():
    X, _ = _binary_data()
    est = RBM(n_components=0)  # no validation here
    with pytest.raises(EstimatorInputError, match="n_components must be an integer >= 1, got 0"):
        est.fit(X)
    with pytest.raises(EstimatorInputError, match="n_components must be a layer size or a non-empty tuple"):
        DBN(n_components=()).fit(X)
    with pytest.raises(EstimatorInputError, match=r"corruption_level must be a number in \[0, 1\], got 1.5"):
        SDAE(corruption_level=1.5).fit(X)
    with pytest.raises(EstimatorInputError, match="visible must be one of"):
        SDAE(visible="poisson").fit(X)
    with pytest.raises(EstimatorInputError, match=r"momentum must be a number in \[0.0, 1.0\)"):
        RBM(momentum=1.0).fit(X)


def test_score_samples_that_does_not_apply_says_why():
    X = _real_data()
    big = RBM(n_components=30, n_iter=1).fit(X)
    with pytest.raises(UnitlensError, match="n_components <= 24"):
        big.score_samples(X)
    with pytest.raises(UnitlensError, match="pseudo-likelihood needs Bernoulli visible units"):
        big.set_params(likelihood="pseudo").score_samples(X)
    with pytest.raises(UnitlensError, match="AIS needs Bernoulli visible units"):
        big.set_params(likelihood="ais").score_samples(X)


# ---------------------------------------------------------------------------------------- likelihoods


def test_ais_on_request_agrees_with_the_exact_log_likelihood():
    X, _ = _binary_data(d=10)
    est = RBM(n_components=6, n_iter=10, random_state=0, learning_rate=0.1).fit(X)
    exact = est.set_params(likelihood="exact").score_samples(X)
    ais = est.set_params(likelihood="ais", ais_chains=64, ais_betas=2000).score_samples(X)
    log_z, stderr = est.log_partition("ais")
    assert abs(log_z - est.log_partition("exact")[0]) < max(0.05, 4 * stderr)
    np.testing.assert_allclose(ais, exact, atol=max(0.05, 4 * stderr))
    # Log-probabilities of binary rows: negative.
    pll = est.set_params(likelihood="pseudo").score_samples(X)
    assert (exact < 0).all() and (pll < 0).all()
    assert est.score(X) == pytest.approx(pll.mean())


def test_stack_score_is_minus_the_reconstruction_error():
    X, _ = _binary_data()
    for est in (DBN(n_components=(6, 4), n_iter=3), SDAE(n_components=(6, 4), n_iter=3)):
        est.set_params(random_state=0, dtype="float64").fit(X)
        rec = est.reconstruct(X)
        (W1, W2), (b1, b2), (c1, c2) = est.components_, est.intercept_hidden_, est.intercept_visible_
        top = expit(expit(X @ W1.T + b1) @ W2.T + b2)  # mean-field up, then sigmoid visible means down
        np.testing.assert_allclose(rec, expit(expit(top @ W2 + c2) @ W1 + c1), rtol=1e-12)
        np.testing.assert_allclose(est.score_samples(X), -((X - rec) ** 2).sum(axis=1))


# ---------------------------------------------------------------------------------------- sampling


def test_rbm_gibbs_sample_mean_matches_the_enumerated_expectation():
    """One Gibbs step from v: E[v'] = Σ_h p(h | v) sigmoid(c + Wᵀh), summed over all 2^H hidden states."""
    X, _ = _binary_data()
    est = RBM(n_components=4, n_iter=5, random_state=0, dtype="float64").fit(X)
    W, b, c = est.components_, est.intercept_hidden_, est.intercept_visible_
    v = X[0]
    p = expit(W @ v + b)
    states = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    weights = np.prod(np.where(states == 1, p, 1 - p), axis=1)
    expected = weights @ expit(states @ W + c)
    n = 20_000
    samples = est.gibbs(np.tile(v, (n, 1)))
    assert set(np.unique(samples)) <= {0.0, 1.0}
    se = np.sqrt(expected * (1 - expected) / n) + 1e-9
    assert np.all(np.abs(samples.mean(axis=0) - expected) < 5 * se)

    # A one-layer DBN's gibbs returns E[v | h] for h ~ p(h | v): its mean is the same expectation.
    dbn = DBN(n_components=4, n_iter=5, random_state=0, dtype="float64").fit(X)
    W, b, c = dbn.components_[0], dbn.intercept_hidden_[0], dbn.intercept_visible_[0]
    p = expit(W @ v + b)
    expected = np.prod(np.where(states == 1, p, 1 - p), axis=1) @ expit(states @ W + c)
    means = dbn.gibbs(np.tile(v, (n, 1)))
    assert (means > 0).all() and (means < 1).all() and len(np.unique(means[:, 0])) > 2
    se = means.std(axis=0) / np.sqrt(n) + 1e-9
    assert np.all(np.abs(means.mean(axis=0) - expected) < 5 * se)


def test_sample_and_gibbs_are_reproducible_and_sdae_has_none():
    X, _ = _binary_data()
    rbm = RBM(n_components=4, n_iter=2, random_state=0).fit(X)
    a, b = rbm.sample(7, n_steps=20, random_state=3), rbm.sample(7, n_steps=20, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (7, 12) and set(np.unique(a)) <= {0.0, 1.0}
    assert not np.array_equal(rbm.gibbs(X), rbm.gibbs(X))  # random_state_ advances between calls

    dbn = DBN(n_components=(6, 4), n_iter=2, random_state=0).fit(X)
    s = dbn.sample(5, n_steps=30, random_state=1)
    np.testing.assert_array_equal(s, dbn.sample(5, n_steps=30, random_state=1))
    assert s.shape == (5, 12) and (s > 0).all() and (s < 1).all()  # visible means
    g = dbn.gibbs(X[:4])
    assert g.shape == (4, 12) and (g > 0).all() and (g < 1).all()
    one_layer = DBN(n_components=3, n_iter=2, random_state=0).fit(_real_data())
    assert one_layer.sample(4, n_steps=5).shape == (4, 5)

    for name in ("sample", "gibbs"):
        assert not hasattr(SDAE(), name)


# ---------------------------------------------------------------------------------------- scikit-learn tools


def test_get_params_set_params_round_trip():
    for est in (RBM(n_components=7, learning_rate=0.01), DBN(n_components=(5, 2)), SDAE(corruption="zero")):
        params = est.get_params()
        copy = clone(est).set_params(**params)
        assert copy.get_params() == params
        assert copy.set_params(batch_size=3).get_params()["batch_size"] == 3
        assert params["batch_size"] != 3
    X, _ = _binary_data()
    dbn = DBN(n_components=(5, 2), n_iter=1).fit(X)
    assert dbn.transform(X).shape == (80, 2)
    assert dbn.set_params(n_components=(4, 3, 1)).fit(X).transform(X).shape == (80, 1)
    assert [w.shape for w in dbn.components_] == [(4, 12), (3, 4), (1, 3)]
    restored = pickle.loads(pickle.dumps(dbn))
    np.testing.assert_array_equal(restored.transform(X), dbn.transform(X))


def test_pipeline_and_grid_search():
    X, y = _binary_data(n=120)
    pipe = Pipeline([("rbm", RBM(n_iter=20, random_state=0)), ("clf", LogisticRegression())])
    search = GridSearchCV(pipe, {"rbm__n_components": [2, 6], "rbm__learning_rate": [0.05, 0.1]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["rbm__n_components"] in (2, 6)
    assert search.score(X, y) > 0.9  # two well-separated prototypes

    for stack in (DBN(n_iter=20, random_state=0), SDAE(n_iter=20, random_state=0)):
        pipe = Pipeline([("stack", stack), ("clf", LogisticRegression())])
        search = GridSearchCV(pipe, {"stack__n_components": [(4,), (6, 3)]}, cv=2).fit(X, y)
        assert search.best_params_["stack__n_components"] in ((4,), (6, 3))
        assert search.score(X, y) > 0.9

    # Without a classifier, GridSearchCV ranks by the estimator's own score (mean pseudo-likelihood).
    # Training for 30 passes beats one pass by far (about -4.1 against -5.7 nats per row).
    search = GridSearchCV(RBM(n_components=8, random_state=0), {"n_iter": [1, 30]}, cv=2).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_ == {"n_iter": 30}
    assert search.best_estimator_.score(X) == pytest.approx(search.best_estimator_.score_samples(X).mean())
