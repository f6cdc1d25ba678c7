import pytest
import torch

from unitlens.analysis.degenerate import degenerate_optima, energy_concentration
from unitlens.errors import UnitlensError


def test_one_hot_is_fully_concentrated_and_flat_is_k_over_d() -> None:
    d = 784
    one_hot = torch.zeros(d)
    one_hot[123] = -9.3  # sign does not matter: energy is x²
    flat = torch.full((d,), 0.33)
    c = energy_concentration(torch.stack([one_hot, flat]))
    assert c[0].item() == 1.0
    assert c[1].item() == pytest.approx(10 / d, rel=1e-5)
    assert energy_concentration(flat, k=49).item() == pytest.approx(49 / d, rel=1e-5)


def test_matches_a_sorting_reference_on_any_leading_shape() -> None:
    x = torch.randn(3, 4, 50, generator=torch.Generator().manual_seed(0))
    c = energy_concentration(x, k=7)
    assert c.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            sq = sorted((v * v for v in x[i, j].tolist()), reverse=True)
            assert c[i, j].item() == pytest.approx(sum(sq[:7]) / sum(sq), rel=1e-5)


def test_flagging_and_summary() -> None:
    d = 100
    x = torch.full((4, d), 0.1)
    x[0] = 0
    x[0, 5] = 1.0  # a single dot: 1.0
    x[1, :10] = 1.0  # 10 bright pixels: 10 / (10 + 90 * 0.01) = 0.917
    x[2, :2] = 0.3  # near flat: (2 * 0.09 + 8 * 0.01) / (2 * 0.09 + 98 * 0.01) = 0.224
    r = degenerate_optima(x)
    expected = [1.0, 10 / 10.9, 0.26 / 1.16, 0.1]
    assert r.concentration.tolist() == pytest.approx(expected, rel=1e-5)
    assert r.flagged.tolist() == [True, True, False, False]
    assert r.n_flagged == 2 and r.fraction_flagged == 0.5
    assert r.median_concentration == pytest.approx((expected[1] + expected[2]) / 2, rel=1e-5)
    assert degenerate_optima(x, threshold=0.95).n_flagged == 1
    # k = 1: 1.0, 1 / 10.9 = 0.092, 0.09 / 1.16 = 0.078, 0.01.
    assert degenerate_optima(x, k=1, threshold=0.08).flagged.tolist() == [True, True, False, False]
    d_ = r.to_dict()
    assert d_["n_flagged"] == 2 and d_["k"] == 10 and d_["n_units"] == 4


def test_zero_image_is_nan_and_bad_arguments_raise() -> None:
    assert torch.isnan(energy_concentration(torch.zeros(2, 20))).all()
    with pytest.raises(UnitlensError, match=r"1\.\.20"):
        energy_concentration(torch.ones(20), k=21)
    with pytest.raises(UnitlensError, match=r"\[0, 1\]"):
        degenerate_optima(torch.ones(2, 20), threshold=1.5)
    with pytest.raises(UnitlensError, match="units, d"):
        degenerate_optima(torch.ones(20))
