"""The scikit-learn estimators' models open in `unitlens visualize` and the report (`save`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unitlens.checkpoint import load_model
from unitlens.cli import main
from unitlens.estimators import DBN, RBM, SDAE, EstimatorInputError
from unitlens.models import dbn
from unitlens.results import StackResults

TINY_VIS = ["--units", "3", "--restarts", "2", "--max-steps", "20", "--quiet"]


def _digits() -> np.ndarray:
    return load_digits().data[:400] / 16.0  # (400, 64) in [0, 1], scikit-learn's 8x8 digits


def test_a_fitted_rbm_is_saved_as_a_one_layer_dbn_that_visualize_opens(tmp_path: Path) -> None:
    x = _digits()
    est = RBM(n_components=12, n_iter=2, random_state=0).fit(x)
    json_path = est.save(tmp_path / "digits-rbm", x, image_shape=(8, 8))
    model, ckpt = load_model(tmp_path / "digits-rbm")
    assert isinstance(model, dbn.DBN) and model.layer_sizes == [64, 12]
    np.testing.assert_allclose(model.rbm(1).weight.detach().numpy(), est.components_, rtol=1e-6)
    assert ckpt.meta["estimator"]["class"] == "RBM" and json_path.name == "digits-rbm.json"
    assert ckpt.meta["data"]["image_shape"] == [8, 8] and ckpt.meta["data"]["kind"] == "binary"
    vis = tmp_path / "vis"
    assert main(["visualize", str(tmp_path / "digits-rbm"), "--out", str(vis), *TINY_VIS]) == 0
    results = StackResults.load(vis / "results" / "digits-rbm.npz")
    assert results.image_shape == (8, 8)
    exemplar = results.layer(1).exemplars[0, 0]
    assert np.abs(x - exemplar).max(axis=1).min() < 1e-6  # an exemplar is a row of X


def test_a_gaussian_sdae_keeps_its_standardisation_and_vectors_are_drawn_as_bars(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(300, 10))
    est = SDAE(n_components=(6, 4), n_iter=2, random_state=0).fit(x)
    assert est.visible_units_ == "gaussian"
    est.save(tmp_path / "signals-sdae", x)
    _, ckpt = load_model(tmp_path / "signals-sdae")
    np.testing.assert_allclose(ckpt.tensors["data.pixel_mean"].numpy(), est.mean_, rtol=1e-5)
    assert est.scale_ is not None
    np.testing.assert_allclose(ckpt.tensors["data.pixel_scale"].numpy(), est.scale_, rtol=1e-5)
    vis = tmp_path / "vis"
    assert main(["visualize", str(tmp_path / "signals-sdae"), "--out", str(vis), *TINY_VIS]) == 0
    assert StackResults.load(vis / "results" / "signals-sdae.npz").is_vector


def test_a_dbn_forced_to_gaussian_units_on_unit_data_stays_standardised(tmp_path: Path) -> None:
    x = _digits()
    est = DBN(n_components=(8,), n_iter=1, visible="gaussian", random_state=0).fit(x)
    est.save(tmp_path / "g-dbn", x, image_shape=(1, 8, 8))
    model, ckpt = load_model(tmp_path / "g-dbn")
    assert model.rbm(1).visible == "gaussian" and ckpt.meta["data"]["recipe"]["standardised"] is True
    vis = tmp_path / "vis"
    assert main(["visualize", str(tmp_path / "g-dbn"), "--out", str(vis), *TINY_VIS]) == 0
    assert StackResults.load(vis / "results" / "g-dbn.npz").image_shape == (1, 8, 8)


def test_save_refuses_what_visualize_could_not_open(tmp_path: Path) -> None:
    x = _digits()
    est = RBM(n_components=4, n_iter=1, random_state=0).fit(x)
    with pytest.raises(EstimatorInputError, match=r"image_shape must be .* holding the 64 features"):
        est.save(tmp_path / "m", x, image_shape=(7, 7))
    with pytest.raises(EstimatorInputError, match="X has 5 features"):
        est.save(tmp_path / "m", x[:, :5])
    raw = RBM(n_components=4, n_iter=1, visible="gaussian", standardize=False, random_state=0).fit(x)
    with pytest.raises(EstimatorInputError, match="need standardize=True"):
        raw.save(tmp_path / "m", x)
    assert not (tmp_path / "m.json").exists()
