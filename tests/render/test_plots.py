"""Tests for unitlens.render.plots: valid PNGs from synthetic histories, one panel per layer, errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from unitlens.errors import UnitlensError
from unitlens.render.plots import activation_history_plot, restart_agreement_plot, training_curves_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes, after checking they decode."""
    assert data[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(data)) as picture:
        picture.load()
        assert picture.format == "PNG"
        return picture.size


def log_rows(layers: tuple[int, ...] = (1, 2, 3), pll: bool = False) -> list[dict[str, Any]]:
    rows = []
    for layer in layers:
        for n in range(1, 6):
            row: dict[str, Any] = {
                "layer": float(layer),
                "examples": 1000.0 * n,
                "train_loss": 1.0 / n,
                "heldout_reconstruction": 1.1 / n,
                "seconds": float(n),
            }
            if pll:
                row["heldout_pseudo_log_likelihood"] = -100.0 + n
            rows.append(row)
    return rows


def results(
    layers: tuple[int, ...] = (1, 2), units: int = 5, restarts: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"image_shape": np.array([4, 4])}
    for j in layers:
        out[f"layer{j}/restart_mean_cosine"] = rng.uniform(0.7, 1.0, size=units).astype(np.float32)
        out[f"layer{j}/am_history"] = np.cumsum(rng.random((10, units, restarts)), axis=0).astype(np.float32)
        out[f"layer{j}/am_steps"] = rng.integers(2, 10, size=(units, restarts))
        out[f"layer{j}/units"] = np.arange(units) * 3
    return out


def test_training_curves_one_panel_per_layer_and_pll_row() -> None:
    w3, h3 = png_size(training_curves_plot(log_rows(), title="mnist-dbn"))
    w1, _ = png_size(training_curves_plot(log_rows(layers=(2,))))
    assert w3 > 2 * w1  # three panels side by side
    _, h_pll = png_size(training_curves_plot(log_rows(pll=True)))
    assert h_pll > 1.5 * h3  # a second row for the pseudo-log-likelihood


def test_training_curves_are_deterministic_and_follow_the_data() -> None:
    rows = log_rows()
    assert training_curves_plot(rows) == training_curves_plot(list(rows))
    changed = [dict(r, train_loss=r["train_loss"] * 3) for r in rows]
    assert training_curves_plot(changed) != training_curves_plot(rows)
    # Rows out of order are sorted by examples: same picture.
    assert training_curves_plot(rows[::-1]) == training_curves_plot(rows)


def test_training_curves_empty_history_and_partial_rows() -> None:
    png_size(training_curves_plot([], title="nothing yet"))
    png_size(training_curves_plot([{"layer": 1, "examples": 10}]))  # no losses yet: empty panel
    png_size(training_curves_plot([{"layer": 1, "examples": 10, "train_loss": 0.5}]))


def test_training_curves_bad_rows() -> None:
    with pytest.raises(UnitlensError, match="row 1: needs 'layer' and 'examples'"):
        training_curves_plot([{"layer": 1, "examples": 1}, {"layer": 1}])
    with pytest.raises(UnitlensError, match="train_loss must be a number"):
        training_curves_plot([{"layer": 1, "examples": 1, "train_loss": "high"}])


def test_restart_agreement_histograms() -> None:
    w2, _ = png_size(restart_agreement_plot(results(layers=(1, 2)), title="mnist DBN"))
    w3, _ = png_size(restart_agreement_plot(results(layers=(1, 2, 3))))
    assert w3 > w2
    a, b = results(seed=1), results(seed=2)
    assert restart_agreement_plot(a) == restart_agreement_plot(dict(a))
    assert restart_agreement_plot(a) != restart_agreement_plot(b)
    # A NaN cosine (a unit with a constant restart) is left out, not an error.
    a["layer1/restart_mean_cosine"][0] = np.nan
    png_size(restart_agreement_plot(a))
    png_size(restart_agreement_plot({"image_shape": np.array([4, 4])}))
    with pytest.raises(UnitlensError, match="layer1/restart_mean_cosine"):
        restart_agreement_plot({"layer1/restart_mean_cosine": np.ones((2, 2))})


def test_activation_histories() -> None:
    a = results(layers=(1, 2, 3))
    w, _ = png_size(activation_history_plot(a, title="patches SDAE"))
    w1, _ = png_size(activation_history_plot(results(layers=(2,))))
    assert w > 2 * w1
    assert activation_history_plot(a, n_units=1) != activation_history_plot(a, n_units=4)
    png_size(activation_history_plot({k: v for k, v in a.items() if "am_steps" not in k}))
    png_size(activation_history_plot({}))
    with pytest.raises(UnitlensError, match="am_steps"):
        activation_history_plot(dict(a, **{"layer2/am_steps": np.ones((2, 2))}))
    with pytest.raises(UnitlensError, match="layer2/am_history"):
        activation_history_plot(dict(a, **{"layer2/am_history": np.ones((2, 2))}))
    with pytest.raises(UnitlensError, match="n_units"):
        activation_history_plot(a, n_units=0)
