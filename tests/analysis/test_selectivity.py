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
    s5, sm5 = torch.sigmoid(torch.tensor(5.0)).item(), torch.sigmoid(torch.tensor(-5.0)).item()
    assert torch.allclose(s.matrix, torch.where(torch.eye(u, dtype=torch.bool), s5, sm5))
    # Columns sum to s5 + 4 sm5: the diagonal share is s5 / that, each other cell sm5 / that.
    total = s5 + 4 * sm5
    assert s.n_diagonal == u and s.fraction_diagonal == 1.0
    assert s.mean_diagonal == pytest.approx(s5 / total, rel=1e-5)
    assert s.mean_off_diagonal == pytest.approx(sm5 / total, rel=1e-5)
    assert s.median_margin == pytest.approx((s5 - sm5) / total, rel=1e-5)
    assert torch.allclose(s.normalised.sum(dim=0), torch.ones(u))
    assert "5/5 rows" in s.describe()


def test_diagonal_is_not_one_by_construction() -> None:
    # The old column-max normalisation put exactly 1 on every diagonal; the column sum does not.
    stack = _one_layer(10 * torch.eye(4), torch.full((4,), -5.0))
    s = selectivity(stack, 1, torch.arange(4), torch.eye(4))
    assert bool((s.normalised.diagonal() < 1).all())


def _unselective_stack(kind: str) -> tuple[DBN, Tensor]:
    """A stack whose layer-1 units are four copies of one filter and one saturated always-on unit."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 6, generator=g).expand(5, 6).clone()
    bias = torch.zeros(5)
    bias[4] = 200.0  # always on: sigmoid is exactly 1 in float32
    stack = _one_layer(w, bias)
    # Each unit's optimum is the same direction rho w / ||w|| (duplicates), the always-on unit's is anything.
    x_star = (w / w.norm(dim=1, keepdim=True)) * 3.0
    return stack, x_star


def test_duplicated_and_always_on_units_give_margin_zero_and_no_diagonal() -> None:
    stack, x_star = _unselective_stack("dbn")
    s = selectivity(stack, 1, torch.arange(5), x_star)
    assert bool(s.always_on[4]) and int(s.always_on.sum()) == 1
    assert s.margin.abs().max().item() < 1e-6  # twin columns and rows: diagonal == largest other entry
    assert s.n_diagonal == 0 and s.median_margin == pytest.approx(0.0, abs=1e-6)
    assert "1 saturated always-on unit" in s.describe()


def test_margins_on_a_hand_computed_matrix() -> None:
    m = torch.tensor([[0.2, 0.9, 0.3], [0.4, 0.3, 0.6], [0.1, 0.45, 0.6]])
    n = normalise_columns(m)
    torch.testing.assert_close(n, m / torch.tensor([0.7, 1.65, 1.5]))
    s = selectivity_from_matrix(m)
    # Normalised rows: [2/7, 6/11, 1/5], [4/7, 2/11, 2/5], [1/7, 3/11, 2/5].
    expected = torch.tensor([2 / 7 - 6 / 11, 2 / 11 - 4 / 7, 2 / 5 - 3 / 11])
    torch.testing.assert_close(s.margin, expected)
    assert s.n_diagonal == 1 and s.median_margin == pytest.approx(float(expected.median()), rel=1e-6)
    mean_diag = (2 / 7 + 2 / 11 + 2 / 5) / 3
    mean_off = (6 / 11 + 1 / 5 + 4 / 7 + 2 / 5 + 1 / 7 + 3 / 11) / 6
    assert s.mean_off_diagonal == pytest.approx(mean_off, rel=1e-6)
    assert s.diagonal_ratio == pytest.approx(mean_diag / mean_off, rel=1e-6)
    # A column of zeros (underflowed sigmoid) stays zero rather than becoming NaN.
    z = normalise_columns(torch.tensor([[0.0, 0.5], [0.0, 0.25]]))
    assert torch.equal(z, torch.tensor([[0.0, 2 / 3], [0.0, 1 / 3]]))


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
    assert s.n_diagonal == 3 and s.median_margin > 0.9


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
