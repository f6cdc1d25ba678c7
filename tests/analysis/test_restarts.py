import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from unitlens.analysis.restarts import (
    SAME_HEIGHT,
    activation_cv,
    cosine_to_best,
    mean_pairwise_cosine,
    pairwise_cosine,
    restart_agreement,
    restart_agreement_of,
    summarize_restarts,
)
from unitlens.errors import UnitlensError


def _brute_cosine(x: Tensor) -> Tensor:
    u, r, _ = x.shape
    out = torch.empty(u, r, r, dtype=torch.float64)
    for k in range(u):
        for i in range(r):
            for j in range(r):
                a, b = x[k, i].double(), x[k, j].double()
                out[k, i, j] = (a @ b) / (a.norm() * b.norm())
    return out


def test_pairwise_cosine_matches_a_brute_force_loop() -> None:
    x = torch.randn(5, 4, 7, generator=torch.Generator().manual_seed(0))
    ref = _brute_cosine(x)
    assert torch.allclose(pairwise_cosine(x).double(), ref, atol=1e-6)
    off = ref.sum(dim=(1, 2)) - ref.diagonal(dim1=1, dim2=2).sum(1)
    assert torch.allclose(mean_pairwise_cosine(x).double(), off / 12, atol=1e-6)


def test_identical_restarts_agree_fully_and_orthogonal_ones_not_at_all() -> None:
    g = torch.Generator().manual_seed(1)
    same = torch.randn(3, 1, 6, generator=g).expand(3, 9, 6) * torch.rand(3, 9, 1, generator=g).add(0.5)
    assert torch.allclose(mean_pairwise_cosine(same), torch.ones(3), atol=1e-6)
    ortho = torch.eye(4).expand(2, 4, 4) * 3.0  # restart r is the r-th basis vector
    assert torch.allclose(mean_pairwise_cosine(ortho), torch.zeros(2), atol=1e-7)
    # Opposite pair: cosine -1.
    pair = torch.tensor([[[1.0, 2.0], [-1.0, -2.0]]])
    assert mean_pairwise_cosine(pair).item() == pytest.approx(-1.0)


def test_cosine_to_best_and_the_within_threshold_count() -> None:
    # Unit 0: restarts at angles 0, 20, 40, 90 degrees from the x axis; best is restart 0.
    angles = torch.tensor([0.0, 20.0, 40.0, 90.0]) * math.pi / 180
    x0 = torch.stack([angles.cos(), angles.sin()], dim=1)
    # Unit 1: all identical.
    x1 = torch.ones(4, 2)
    x = torch.stack([x0, x1])
    activation = torch.tensor([[5.0, 4.0, 3.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    steps = torch.tensor([[10, 20, 30, 100], [5, 5, 5, 5]])
    converged = torch.tensor([[True, True, True, False], [True, True, True, True]])
    a = restart_agreement(x, activation, steps, converged, threshold=0.9)
    expected = torch.stack([(angles - angles[0]).cos(), torch.ones(4)])
    assert torch.allclose(a.cosine_to_best, expected, atol=1e-6)
    # cos 20° = 0.94 >= 0.9, cos 40° = 0.77 < 0.9; the best restart counts itself.
    assert a.n_within.tolist() == [2, 4]
    assert restart_agreement(x, activation, steps, converged, threshold=0.7).n_within.tolist() == [3, 4]
    assert a.best.tolist() == [0, 0]
    assert a.steps_median.tolist() == [25.0, 5.0]
    assert a.steps_max.tolist() == [100, 5]
    assert a.n_capped.tolist() == [1, 0]
    # A given best index is used as is.
    b = restart_agreement(x, activation, steps, converged, best=torch.tensor([3, 0]))
    assert torch.allclose(b.cosine_to_best[0], (angles - angles[3]).cos(), atol=1e-6)
    assert torch.allclose(cosine_to_best(x, torch.tensor([3, 0])), b.cosine_to_best)


def test_coefficient_of_variation_formula() -> None:
    act = torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [-2.0, -2.0, -4.0, -4.0], [3.0, 3.0, 3.0, 3.0], [-1.0, 1.0, -1.0, 1.0]]
    )
    cv = activation_cv(act)
    ref = np.std(act[:2].numpy(), axis=1, ddof=0) / np.abs(np.mean(act[:2].numpy(), axis=1))
    assert cv[:2].tolist() == pytest.approx(ref.tolist(), rel=1e-6)
    assert cv[0].item() == pytest.approx(math.sqrt(1.25) / 2.5, rel=1e-6)
    assert cv[2].item() == 0.0  # identical activations
    assert math.isinf(cv[3].item())  # zero mean, non-zero spread


def test_summary_numbers_on_a_hand_built_case() -> None:
    # Three units, 3 restarts in 3-D: unit 0 identical, unit 1 two identical plus one orthogonal,
    # unit 2 mutually orthogonal.
    e = torch.eye(3)
    x = torch.stack([e[[0, 0, 0]], e[[0, 0, 1]], e])
    activation = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 1.0], [3.0, 1.0, 2.0]])
    steps = torch.tensor([[4, 6, 8], [10, 10, 50], [50, 50, 50]])
    converged = torch.tensor([[True, True, True], [True, True, False], [False, False, False]])
    a = restart_agreement(x, activation, steps, converged)
    # Mean pairwise cosines: 1, (2 pairs of 1 among 6 ordered pairs) = 1/3, 0.
    assert a.mean_cosine.tolist() == pytest.approx([1.0, 1 / 3, 0.0], abs=1e-7)
    s = summarize_restarts(a)
    d = s.to_dict()
    assert d["median_mean_cosine"] == pytest.approx(1 / 3)
    assert d["fraction_above"] == pytest.approx(1 / 3)
    assert summarize_restarts(a, threshold=0.2).fraction_above == pytest.approx(2 / 3)
    # Within 0.9 of the best: 3, 2, 1 restarts -> fractions 1, 2/3, 1/3.
    assert d["median_fraction_within"] == pytest.approx(2 / 3)
    assert d["median_steps"] == 10.0
    assert d["max_steps"] == 50
    assert d["n_units_capped"] == 2
    assert d["n_restarts_capped"] == 4
    assert d["n_units"] == 3 and d["n_restarts"] == 3
    expected_cv = [0.0, np.std([2, 2, 1]) / (5 / 3), np.std([3, 1, 2]) / 2]
    assert d["median_activation_cv"] == pytest.approx(expected_cv[1], rel=1e-6)
    assert d["max_activation_cv"] == pytest.approx(expected_cv[2], rel=1e-6)
    assert all(isinstance(v, int | float) for v in d.values())
    # Units 1 and 2 disagree; both end at different heights (spreads 0.5, 2/3): separate maxima.
    assert d["n_below"] == 2 and d["n_separate_maxima"] == 2


def test_separate_maxima_are_told_from_a_plateau() -> None:
    # Four units whose restarts disagree (orthogonal x*) or agree, at one height or several.
    e = torch.eye(3)
    x = torch.stack([e, e, e[[0, 0, 0]], e])
    activation = torch.tensor(
        [
            [2.0, 2.0, 2.0 * (1 - SAME_HEIGHT / 2)],  # disagree, one height: a plateau
            [2.0, 1.5, 1.0],  # disagree, three heights: separate maxima
            [2.0, 1.0, 1.0],  # agree (one x*): not counted whatever the heights
            [0.2, 0.1, 0.1],  # near 0 the spread is absolute: 0.1 apart, separate maxima
        ]
    )
    steps = torch.full((4, 3), 5)
    a = restart_agreement(x, activation, steps, torch.ones(4, 3, dtype=torch.bool))
    assert a.activation_spread.tolist() == pytest.approx([SAME_HEIGHT / 2, 0.5, 0.5, 0.1], rel=1e-4)
    s = summarize_restarts(a)
    assert (s.n_below, s.n_separate_maxima) == (3, 2)


@dataclass(frozen=True)
class _FakeResult:
    units: Tensor
    x: Tensor
    activation: Tensor
    steps: Tensor
    converged: Tensor
    best: Tensor

    def best_x(self) -> Tensor:
        return self.x[torch.arange(self.x.shape[0]), self.best]


def test_wrapper_uses_the_results_own_best_restart() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 5, generator=g)
    act = torch.randn(4, 3, generator=g)
    steps = torch.randint(1, 50, (4, 3), generator=g)
    conv = torch.ones(4, 3, dtype=torch.bool)
    best = torch.tensor([2, 1, 0, 2])
    res = _FakeResult(torch.arange(4), x, act, steps, conv, best)
    a = restart_agreement_of(res)
    b = restart_agreement(x, act, steps, conv, best=best)
    assert torch.equal(a.cosine_to_best, b.cosine_to_best) and torch.equal(a.best, best)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(UnitlensError, match="restarts >= 2"):
        mean_pairwise_cosine(torch.randn(3, 1, 4))
    with pytest.raises(UnitlensError, match="activation must have shape"):
        restart_agreement(
            torch.randn(3, 2, 4), torch.randn(3, 3), torch.ones(3, 2), torch.ones(3, 2, dtype=torch.bool)
        )
    with pytest.raises(UnitlensError, match="bool"):
        restart_agreement(torch.randn(3, 2, 4), torch.randn(3, 2), torch.ones(3, 2), torch.ones(3, 2))
    with pytest.raises(UnitlensError, match=r"0\.\.1"):
        cosine_to_best(torch.randn(3, 2, 4), torch.tensor([0, 1, 2]))
