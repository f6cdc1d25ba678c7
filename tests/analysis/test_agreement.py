import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from unitlens.analysis.agreement import (
    activation_vs_data,
    activation_vs_data_of,
    method_agreement,
    pearson_rows,
    summarize_correlations,
)
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack


def test_pearson_matches_numpy_corrcoef_row_by_row() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 30, generator=g)
    b = 0.5 * a + torch.randn(20, 30, generator=g)  # a spread of correlations
    b[3] = -2 * a[3] + 1  # exactly -1
    r = pearson_rows(a, b)
    for u in range(20):
        ref = np.corrcoef(a[u].double().numpy(), b[u].double().numpy())[0, 1]
        assert r[u].item() == pytest.approx(ref, abs=1e-6)
    assert r[3].item() == pytest.approx(-1.0, abs=1e-6)
    assert pearson_rows(a, 3 * a + 7).tolist() == pytest.approx([1.0] * 20, abs=1e-6)


def test_constant_rows_are_nan_and_summaries_skip_and_count_them() -> None:
    a = torch.tensor([[0.3, 0.3, 0.3, 0.3], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0]])
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0], [2.0, 1.0, 4.0, 3.0]])
    r = pearson_rows(a, b)
    assert math.isnan(r[0].item()) and math.isnan(r[1].item())
    s = summarize_correlations(r)
    ref = np.corrcoef(a[2].numpy(), b[2].numpy())[0, 1]
    assert s.n_undefined == 2 and s.n_units == 3
    assert s.median == pytest.approx(ref, abs=1e-6) and s.min == s.max == s.median
    all_nan = summarize_correlations(torch.full((2,), math.nan))
    assert all_nan.n_undefined == 2 and math.isnan(all_nan.median)


def test_summary_quantiles_match_numpy_percentile() -> None:
    r = torch.rand(37, generator=torch.Generator().manual_seed(1)) * 2 - 1
    r[4] = math.nan
    s = summarize_correlations(r).to_dict()
    v = r.double().numpy()
    assert s["median"] == pytest.approx(np.nanpercentile(v, 50))
    assert s["q25"] == pytest.approx(np.nanpercentile(v, 25))
    assert s["q75"] == pytest.approx(np.nanpercentile(v, 75))
    assert s["mean"] == pytest.approx(np.nanmean(v))
    assert s["n_undefined"] == 1
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    assert method_agreement(a, b) == summarize_correlations(pearson_rows(a, b))


def _random_stack(cls: type[DBN] | type[SDAE], seed: int) -> LayerStack:
    g = torch.Generator().manual_seed(seed)
    stack = cls.build([6, 5, 4], generator=g)
    with torch.no_grad():
        for p in stack.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return stack


@pytest.mark.parametrize(("cls", "layer"), [(DBN, 2), (SDAE, 1)])
def test_activation_vs_data_matches_a_brute_force_max(cls: type[DBN] | type[SDAE], layer: int) -> None:
    stack = _random_stack(cls, 0)
    g = torch.Generator().manual_seed(3)
    data = torch.rand(53, 6, generator=g)
    units = torch.tensor([3, 0, 3]) if layer == 2 else torch.tensor([4, 1, 2])
    x_star = torch.randn(3, 6, generator=g) * 3
    r = activation_vs_data(stack, layer, units, x_star, data, batch_size=7)  # batches of 7, last one of 4
    pre = torch.stack([stack.preactivation(data[i : i + 1], layer)[0] for i in range(53)])  # (n, H)
    for i, u in enumerate(units.tolist()):
        column = pre[:, u]
        assert r.data_max[i].item() == pytest.approx(column.max().item(), abs=1e-6)
        assert int(r.data_argmax[i]) == int(column.argmax())
        star = stack.preactivation(x_star[i : i + 1], layer)[0, u].item()
        assert r.x_star_activation[i].item() == pytest.approx(star, abs=1e-5)
        assert r.difference[i].item() == pytest.approx(star - column.max().item(), abs=1e-5)
        if column.max() > 0:
            assert r.ratio[i].item() == pytest.approx(star / column.max().item(), rel=1e-5)
        else:
            assert math.isnan(r.ratio[i].item())
    whole = activation_vs_data(stack, layer, units, x_star, data, batch_size=1000)
    assert torch.allclose(whole.data_max, r.data_max) and torch.equal(whole.data_argmax, r.data_argmax)


def test_ratio_is_undefined_where_the_data_maximum_is_not_positive() -> None:
    stack = _random_stack(DBN, 1)
    with torch.no_grad():
        stack.layer(1).hidden_bias.copy_(torch.tensor([-100.0, 100.0, 0.0, 0.0, 0.0]))
        stack.weight(1).zero_()
    data = torch.rand(10, 6, generator=torch.Generator().manual_seed(0))
    r = activation_vs_data(stack, 1, torch.tensor([0, 1]), torch.ones(2, 6), data)
    assert r.data_max.tolist() == [-100.0, 100.0]
    assert math.isnan(r.ratio[0].item()) and r.ratio[1].item() == 1.0
    assert r.difference.tolist() == [0.0, 0.0]
    d = r.to_dict()
    assert d["n_ratio_undefined"] == 1 and d["median_ratio"] == 1.0 and d["fraction_above_data"] == 0.0


@dataclass(frozen=True)
class _FakeResult:
    units: Tensor
    x: Tensor

    def best_x(self) -> Tensor:
        return self.x[:, 1]


def test_wrapper_and_bad_inputs() -> None:
    stack = _random_stack(DBN, 2)
    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(0))
    data = torch.rand(8, 6, generator=torch.Generator().manual_seed(1))
    res = _FakeResult(torch.tensor([1, 2]), x)
    a = activation_vs_data_of(stack, 2, res, data)  # type: ignore[arg-type]
    b = activation_vs_data(stack, 2, torch.tensor([1, 2]), x[:, 1], data)
    assert torch.equal(a.x_star_activation, b.x_star_activation)
    with pytest.raises(UnitlensError, match="batch_size"):
        activation_vs_data(stack, 2, torch.tensor([1]), x[:1, 0], data, batch_size=0)
    with pytest.raises(UnitlensError, match=r"data must be a non-empty \(n, 6\)"):
        activation_vs_data(stack, 2, torch.tensor([1]), x[:1, 0], torch.rand(8, 5))
    with pytest.raises(UnitlensError, match="same shape"):
        pearson_rows(torch.ones(2, 3), torch.ones(3, 3))
