import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from unitlens.analysis.selectivity import (
    normalise_columns,
    selectivity,
    selectivity_from_matrix,
    selectivity_matrix,
    selectivity_of,
)
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE


def _one_layer(weight: Tensor, bias: Tensor) -> DBN:
    h, v = weight.shape
    rbm = RBM(v, h)
    with torch.no_grad():
        rbm.weight.copy_(weight)
        rbm.hidden_bias.copy_(bias)
    return DBN([rbm])


def test_each_pattern_exciting_only_its_unit_gives_a_full_diagonal() -> None:
    # preact_j(e_i) = 10 [i == j] - 5: sigmoid(5) on the diagonal, sigmoid(-5) elsewhere.
    u = 5
    stack = _one_layer(10 * torch.eye(u), torch.full((u,), -5.0))
    s = selectivity(stack, 1, torch.arange(u), torch.eye(u))
    s5, sm5 = torch.sigmoid(torch.tensor(5.0)), torch.sigmoid(torch.tensor(-5.0))
    assert torch.allclose(s.matrix, torch.where(torch.eye(u, dtype=torch.bool), s5, sm5))
    assert s.n_diagonal == u and s.n_tied == 0 and s.fraction_diagonal == 1.0 and s.fraction_strict == 1.0
    # Normalised: 1 on the diagonal, sigmoid(-5) / sigmoid(5) = e^-5 off it; the ratio is e^5.
    assert s.mean_diagonal == pytest.approx(1.0)
    assert s.mean_off_diagonal == pytest.approx(math.exp(-5), rel=1e-5)
    assert s.diagonal_ratio == pytest.approx(math.exp(5), rel=1e-5)
    assert "5/5 rows" in s.describe() and "tie" not in s.describe()


def test_a_saturated_always_on_unit_ties_and_the_ties_are_reported() -> None:
    u = 4
    bias = torch.full((u,), -5.0)
    bias[0] = 200.0  # sigmoid(>= 190) is exactly 1.0 in float32
    stack = _one_layer(10 * torch.eye(u), bias)
    s = selectivity(stack, 1, torch.arange(u), torch.eye(u))
    assert bool((s.matrix[:, 0] == 1.0).all())
    assert s.always_on.tolist() == [True, False, False, False]
    # Rows 1..3 have a 1 in column 0 beside their diagonal 1: counted, but only by a tie.
    assert s.row_is_diagonal.all()
    assert s.row_tied.tolist() == [False, True, True, True]
    assert s.n_diagonal == 4 and s.n_tied == 3
    assert s.fraction_diagonal == 1.0 and s.fraction_strict == 0.25
    d = s.to_dict()
    assert d["n_tied"] == 3 and d["n_always_on"] == 1
    assert "3 of them only by a tie with 1 saturated always-on unit" in s.describe()


def test_column_normalisation_is_exact_and_off_diagonal_rows_are_not_counted() -> None:
    m = torch.tensor([[0.2, 0.9, 0.3], [0.4, 0.3, 0.6], [0.1, 0.45, 0.6]])
    n = normalise_columns(m)
    assert torch.equal(n, m / torch.tensor([0.4, 0.9, 0.6]))
    assert torch.equal(n.amax(dim=0), torch.ones(3))
    s = selectivity_from_matrix(m)
    # Normalised rows: [0.5, 1, 0.5], [1, 1/3, 1], [0.25, 0.5, 1].
    # Row 0 peaks off the diagonal, row 1 too (its 1/3 is below two ones), row 2 on it.
    assert s.row_is_diagonal.tolist() == [False, False, True]
    assert s.n_diagonal == 1 and s.n_tied == 0
    mean_diag = (0.5 + 1 / 3 + 1) / 3
    mean_off = (1 + 0.5 + 1 + 1 + 0.25 + 0.5) / 6
    assert s.diagonal_ratio == pytest.approx(mean_diag / mean_off, rel=1e-6)
    # A column of zeros (underflowed sigmoid) stays zero rather than becoming NaN.
    z = normalise_columns(torch.tensor([[0.0, 0.5], [0.0, 0.25]]))
    assert torch.equal(z, torch.tensor([[0.0, 1.0], [0.0, 0.5]]))


def test_matrix_matches_a_brute_force_loop_on_a_deep_stack() -> None:
    g = torch.Generator().manual_seed(0)
    for stack in (DBN.build([7, 6, 5, 4], generator=g), SDAE.build([7, 6, 5, 4], generator=g)):
        with torch.no_grad():
            for p in stack.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        units = torch.tensor([3, 0, 2])
        x_star = torch.randn(3, 7, generator=g)
        m = selectivity_matrix(stack, 3, units, x_star)
        for i in range(3):
            h = x_star[i]
            for k in (1, 2):
                h = torch.sigmoid(stack.weight(k) @ h + stack.layer(k).hidden_bias)
            for j in range(3):
                u = int(units[j])
                ref = torch.sigmoid(stack.weight(3)[u] @ h + stack.layer(3).hidden_bias[u])
                assert m[i, j].item() == pytest.approx(ref.item(), abs=1e-6)
        assert not m.requires_grad


@dataclass(frozen=True)
class _FakeResult:
    units: Tensor
    x: Tensor

    def best_x(self) -> Tensor:
        return self.x[:, 0]


def test_wrapper_reads_units_and_best_optima() -> None:
    stack = _one_layer(10 * torch.eye(3), torch.full((3,), -5.0))
    x = torch.eye(3)[[2, 0, 1]].unsqueeze(1).expand(3, 2, 3)
    res = _FakeResult(torch.tensor([2, 0, 1]), x)
    s = selectivity_of(stack, 1, res)  # type: ignore[arg-type]
    assert s.n_diagonal == 3 and s.n_tied == 0


def test_bad_inputs_are_rejected() -> None:
    stack = _one_layer(torch.eye(3), torch.zeros(3))
    with pytest.raises(UnitlensError, match="must not repeat"):
        selectivity(stack, 1, torch.tensor([0, 0]), torch.zeros(2, 3))
    with pytest.raises(UnitlensError, match=r"0\.\.2"):
        selectivity(stack, 1, torch.tensor([0, 3]), torch.zeros(2, 3))
    with pytest.raises(UnitlensError, match=r"x_star must have shape \(2, 3\)"):
        selectivity(stack, 1, torch.tensor([0, 1]), torch.zeros(3, 3))
    with pytest.raises(UnitlensError, match="integer"):
        selectivity(stack, 1, torch.tensor([0.0, 1.0]), torch.zeros(2, 3))
    with pytest.raises(UnitlensError, match="at least 2"):
        selectivity_from_matrix(torch.ones(1, 1))
