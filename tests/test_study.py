import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.results import StackResults
from unitlens.study import StudyConfig, stack_results, study_stack

CONFIG = StudyConfig(
    units=5, restarts=3, max_steps=60, burn_in=5, n_samples=2, every=3, lc_k=4, n_exemplars=2
)


def _data() -> Dataset:
    x = torch.rand(60, 16, generator=torch.Generator().manual_seed(0))
    return Dataset(x[:50], None, x[50:], None, (4, 4), dataset_norm(x[:50]), "test")


def _stack(kind: str) -> DBN | SDAE:
    g = torch.Generator().manual_seed(1)
    stack = DBN.build([16, 8, 6], generator=g) if kind == "dbn" else SDAE.build([16, 8, 6], generator=g)
    with torch.no_grad():
        for p in stack.parameters():
            p.normal_(0, 0.5, generator=g)
    return stack


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_every_method_and_analysis_per_layer(kind: str) -> None:
    data = _data()
    studies = study_stack(_stack(kind), data, CONFIG, torch.Generator().manual_seed(2))
    assert [s.layer for s in studies] == [1, 2]
    first, second = studies
    assert first.am.x.shape == (5, 3, 16) and second.am.x.shape == (5, 3, 16)
    assert first.filters is not None and first.filters.shape == (5, 16)
    assert first.closed_form_cosine is not None and float(first.closed_form_cosine.min()) > 0.999
    assert first.control_summary is None and second.control_summary is not None
    assert second.linear_combination.shape == (5, 16)
    assert second.exemplars.indices.shape == (5, 2)
    assert second.selectivity.matrix.shape == (5, 5)
    if kind == "dbn":
        assert second.samples is not None and second.samples.samples.shape == (5, 2, 16)
    else:
        assert second.samples is None and second.samples_vs_am is None
    summary = second.summary()
    json.dumps(summary, allow_nan=True)
    assert summary["n_units"] == 5 and "control_restarts" in summary


def test_mismatched_data_is_refused() -> None:
    x = torch.rand(10, 9)
    data = Dataset(x, None, x, None, (3, 3), 1.0, "test")
    with pytest.raises(UnitlensError, match="16 inputs"):
        study_stack(_stack("dbn"), data, CONFIG, torch.Generator())
    with pytest.raises(UnitlensError, match="restarts"):
        StudyConfig(restarts=1)


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_a_dead_unit_is_flagged_and_left_out_of_the_unflagged_agreement(kind: str) -> None:
    stack = _stack(kind)
    with torch.no_grad():
        stack.layer(2).weight[3].zero_()  # unit 3 of layer 2 sees nothing: a constant, its bias
    studies = study_stack(stack, _data(), CONFIG, torch.Generator().manual_seed(2), layers=(2,))
    (layer,) = studies
    assert layer.flat is not None
    assert layer.flat.dead.tolist() == [False, False, False, True, False]
    assert layer.flat.flagged[3] and layer.flat.n_flagged == 1
    # Its AM "optimum" is its random start: zero gradient, so it stopped at once.
    assert layer.am.steps[3].tolist() == [0, 0, 0] and float(layer.flat.data_range[3]) == 0.0
    summary = layer.summary()
    assert summary["flat"]["flagged"] == [3] and summary["flat"]["n_dead"] == 1
    assert summary["restarts_unflagged"]["n_units"] == 4 and summary["restarts"]["n_units"] == 5
    assert "exemplar_selectivity" in summary and "control_stationarity" in summary


def test_no_unit_of_a_healthy_stack_is_flagged() -> None:
    (layer,) = study_stack(_stack("dbn"), _data(), CONFIG, torch.Generator().manual_seed(2), layers=(2,))
    assert layer.flat is not None and layer.flat.n_flagged == 0


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_stack_results_hold_the_study_and_round_trip(kind: str, tmp_path: Path) -> None:
    data = _data()
    studies = study_stack(_stack(kind), data, CONFIG, torch.Generator().manual_seed(2))
    results = stack_results(studies, data)
    assert results.image_shape == (4, 4) and list(results.layers) == [1, 2]
    first, second = results.layers[1], results.layers[2]
    np.testing.assert_array_equal(second.am_x, studies[1].am.x.flatten(2).numpy())
    np.testing.assert_array_equal(second.am_best, studies[1].am.best.numpy())
    np.testing.assert_array_equal(second.exemplars, data.x_train[studies[1].exemplars.indices].numpy())
    np.testing.assert_array_equal(second.selectivity, studies[1].selectivity.normalised.numpy())
    flat = studies[1].flat
    assert flat is not None
    np.testing.assert_array_equal(second.flat, flat.flagged.numpy().astype(np.int64))
    assert first.filters is not None and second.filters is None
    assert first.control_selectivity is None and second.control_selectivity is not None
    assert (second.samples is not None) == (kind == "dbn")
    # The summary is the study's, as the claims read it.
    assert results.summary is not None
    assert json.dumps(results.summary) == json.dumps({"layers": [s.summary() for s in studies]})
    path = results.save(tmp_path / f"mnist-{kind}.npz")
    assert StackResults.load(path) == results
    assert json.loads(path.with_suffix(".json").read_text())["layers"][1]["layer"] == 2
