"""Tests for unitlens.render.plots: valid PNGs from synthetic histories, one panel per layer, errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from unitlens.errors import UnitlensError
from unitlens.render.plots import (
    activation_history_plot,
    finetune_sweep_plot,
    restart_agreement_plot,
    training_curves_plot,
)
from unitlens.results import StackResults

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


def arrays(
    layers: tuple[int, ...] = (1, 2), units: int = 5, restarts: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    """Results arrays with every required key (``unitlens.results``), 4x4 inputs."""
    rng = np.random.default_rng(seed)
    d = 16
    out: dict[str, np.ndarray] = {"image_shape": np.array([4, 4])}
    for j in layers:
        act = rng.normal(size=(units, restarts)).astype(np.float32)
        sel = rng.uniform(0, 1, size=(units, units))
        layer = {
            "units": np.arange(units) * 3,
            "am_x": rng.normal(size=(units, restarts, d)).astype(np.float32),
            "am_activation": act,
            "am_steps": rng.integers(2, 10, size=(units, restarts)),
            "am_converged": np.ones((units, restarts), dtype=np.int64),
            "am_history": np.cumsum(rng.random((10, units, restarts)), axis=0).astype(np.float32),
            "am_best": act.argmax(axis=1),
            "lc": rng.normal(size=(units, d)).astype(np.float32),
            "exemplars": rng.uniform(size=(units, 2, d)).astype(np.float32),
            "exemplar_activations": rng.normal(size=(units, 2)).astype(np.float32),
            "selectivity": sel / sel.sum(axis=0),
            "restart_mean_cosine": rng.uniform(0.7, 1.0, size=units).astype(np.float32),
            "energy_concentration": rng.uniform(0.1, 0.9, size=units).astype(np.float32),
            "lc_vs_am": rng.uniform(-1, 1, size=units).astype(np.float32),
        }
        out.update({f"layer{j}/{k}": v for k, v in layer.items()})
    return out


def results(
    layers: tuple[int, ...] = (1, 2), units: int = 5, restarts: int = 3, seed: int = 0
) -> StackResults:
    """The validated results of ``arrays`` (what ``StackResults.load`` gives)."""
    return StackResults.from_arrays(arrays(layers, units, restarts, seed))


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
    assert restart_agreement_plot(a) == restart_agreement_plot(results(seed=1))
    assert restart_agreement_plot(a) != restart_agreement_plot(b)
    # The dashed line is the threshold the caller passes (write_figures: the study's, from its summary).
    assert restart_agreement_plot(a, threshold=0.8) != restart_agreement_plot(a)
    # A NaN cosine (a unit with a constant restart) is left out, not an error; so is a layer of only NaN.
    nan = arrays(seed=1)
    nan["layer1/restart_mean_cosine"][0] = np.nan
    png_size(restart_agreement_plot(StackResults.from_arrays(nan)))
    nan["layer1/restart_mean_cosine"][:] = np.nan
    png_size(restart_agreement_plot(StackResults.from_arrays(nan)))


def test_activation_histories() -> None:
    a = results(layers=(1, 2, 3))
    w, _ = png_size(activation_history_plot(a, title="patches SDAE"))
    w1, _ = png_size(activation_history_plot(results(layers=(2,))))
    assert w > 2 * w1
    assert activation_history_plot(a, n_units=1) != activation_history_plot(a, n_units=4)
    # Each restart's curve stops at its last step.
    short = arrays(layers=(1, 2, 3))
    short["layer2/am_steps"] = np.ones_like(short["layer2/am_steps"])
    assert activation_history_plot(StackResults.from_arrays(short)) != activation_history_plot(a)
    with pytest.raises(UnitlensError, match="n_units"):
        activation_history_plot(a, n_units=0)


def finetune_results(rates: tuple[float, ...] = (0.2, 0.05, 0.02, 0.005)) -> dict[str, Any]:
    """A ``results/finetune.json``: cosines fall and errors rise with the hidden-layer rate."""
    sweep = [
        {
            "hidden_learning_rate": r,
            "errors": {"dbn": 0.03 + r / 10, "sdae": 0.04 + r / 20},
            "am_cosine": {"dbn L2": 1 - r / 2, "dbn L3": 1 - r, "sdae L2": 1 - r / 3, "sdae L3": 1 - r / 2.5},
        }
        for r in rates
    ]
    judged = sweep[-1]
    return {
        "hidden_learning_rate": judged["hidden_learning_rate"],
        "learning_rate": 0.2,
        "errors": {**judged["errors"], "random": 0.083},
        "am_cosine": judged["am_cosine"],
        "sweep": sweep,
        "weights": {"dbn": "checkpoints/finetuned-mnist-dbn.safetensors"},
    }


def test_finetune_sweep_plot_two_panels_that_follow_the_data() -> None:
    ft = finetune_results()
    w, _ = png_size(finetune_sweep_plot(ft, title="MNIST fine-tuning"))
    w_note, _ = png_size(finetune_sweep_plot({}))
    assert w > 1.8 * w_note  # two panels, against the one-panel note
    assert finetune_sweep_plot(ft) == finetune_sweep_plot(dict(ft))
    # Rows in any order: the rates are sorted (a line joins neighbouring rates), same picture.
    shuffled = [ft["sweep"][i] for i in (1, 3, 0, 2)]
    assert finetune_sweep_plot(dict(ft, sweep=shuffled)) == finetune_sweep_plot(ft)
    cosines = dict(ft, sweep=[dict(r, am_cosine={**r["am_cosine"], "dbn L2": 0.5}) for r in ft["sweep"]])
    assert finetune_sweep_plot(cosines) != finetune_sweep_plot(ft)
    errors = dict(ft, sweep=[dict(r, errors={**r["errors"], "sdae": 0.2}) for r in ft["sweep"]])
    assert finetune_sweep_plot(errors) != finetune_sweep_plot(ft)
    assert finetune_sweep_plot(dict(ft, errors={"dbn": 0.04})) != finetune_sweep_plot(ft)  # random line
    assert finetune_sweep_plot(dict(ft, hidden_learning_rate=0.05)) != finetune_sweep_plot(ft)  # judged mark
    png_size(finetune_sweep_plot({"sweep": [{"hidden_learning_rate": 0.1}]}))  # a rate with nothing yet


def test_finetune_sweep_plot_without_a_sweep_is_a_note() -> None:
    note = finetune_sweep_plot({})
    png_size(note)
    assert finetune_sweep_plot({"sweep": []}) == note
    assert finetune_sweep_plot({"errors": {"dbn": 0.05}, "am_cosine": {"dbn L2": 1.0}}) == note  # older runs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweep": {"hidden_learning_rate": 0.1}}, "sweep must be a list"),
        ({"sweep": "0.2, 0.05"}, "sweep must be a list"),
        ({"sweep": [0.2]}, r"sweep\[0\] must be an object"),
        ({"sweep": [{"errors": {}}]}, r"sweep\[0\].hidden_learning_rate must be a learning rate"),
        ({"sweep": [{"hidden_learning_rate": 0}]}, "learning rate > 0"),
        ({"sweep": [{"hidden_learning_rate": float("nan")}]}, "learning rate > 0"),
        ({"sweep": [{"hidden_learning_rate": "0.2"}]}, "learning rate > 0"),
        ({"sweep": [{"hidden_learning_rate": 0.2, "errors": [0.1]}]}, r"sweep\[0\].errors must be an object"),
        (
            {"sweep": [{"hidden_learning_rate": 0.2, "am_cosine": {"dbn L2": "high"}}]},
            r"am_cosine\['dbn L2'\] must be a number",
        ),
        ({"errors": {"random": True}}, r"errors\['random'\] must be a number"),
        ({"errors": [0.1]}, "errors must be an object"),
        ({"hidden_learning_rate": -0.1}, "hidden_learning_rate must be a learning rate"),
    ],
)
def test_finetune_sweep_plot_refuses_malformed_results(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnitlensError, match=message):
        finetune_sweep_plot({**finetune_results(), **change})


def test_selectivity_plot_draws_trained_control_and_exemplar_matrices() -> None:
    from unitlens.render.plots import selectivity_plot

    a = arrays(units=6)
    m = a["layer2/selectivity"]
    one = selectivity_plot(StackResults.from_arrays(a), 2, title="t")
    both = dict(a, **{"layer2/control_selectivity": m, "layer2/exemplar_selectivity": m})
    three = selectivity_plot(StackResults.from_arrays(both), 2)
    w1, w3 = Image.open(io.BytesIO(one)).size[0], Image.open(io.BytesIO(three)).size[0]
    assert w3 > 2 * w1  # one panel per matrix present
    # A layer the results lack, or a one-unit matrix: a note, not an error.
    assert Image.open(io.BytesIO(selectivity_plot(results(), 5))).size[0] > 0
    tiny = StackResults.from_arrays(dict(a, **{"layer2/selectivity": np.ones((1, 1))}))
    assert Image.open(io.BytesIO(selectivity_plot(tiny, 2))).size[0] > 0
    # Matrices that are not square or not in [0, 1] never reach the plot: the results refuse them.
    with pytest.raises(UnitlensError, match="square"):
        StackResults.from_arrays(dict(a, **{"layer2/selectivity": np.ones((3, 4))}))
    with pytest.raises(UnitlensError, match=r"\[0, 1\]"):
        StackResults.from_arrays(dict(a, **{"layer2/selectivity": -np.ones((3, 3))}))
