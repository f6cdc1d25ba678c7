"""Likelihood: exact log Z against brute force and numerical integration, AIS against exact log Z,
pseudo-likelihood against enumeration and scikit-learn's free energies."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.neural_network import BernoulliRBM

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.training import likelihood
from unitlens.training.likelihood import (
    ais_log_partition,
    log_likelihood,
    log_partition_exact,
    pseudo_log_likelihood,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def random_rbm(
    n_visible: int, n_hidden: int, visible: str = "bernoulli", scale: float = 1.0, seed: int = 0
) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, generator=g, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(scale * torch.randn(n_hidden, n_visible, generator=g, dtype=torch.float64))
        rbm.hidden_bias.copy_(scale * torch.randn(n_hidden, generator=g, dtype=torch.float64))
        rbm.visible_bias.copy_(scale * torch.randn(n_visible, generator=g, dtype=torch.float64))
    return rbm


def all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


@torch.no_grad()
def brute_force_log_z(rbm: RBM) -> float:
    """log Σ_{v, h} exp(-E(v, h)) over every joint binary state."""
    vs, hs = all_binary(rbm.n_visible), all_binary(rbm.n_hidden)
    neg_energy = torch.stack([-rbm.energy(vs, h.expand(vs.shape[0], -1)) for h in hs])
    return float(torch.logsumexp(neg_energy.flatten(), dim=0))


# ---------------------------------------------------------------------- exact log Z


@pytest.mark.parametrize(("n_visible", "n_hidden"), [(4, 3), (3, 4), (5, 5)])
def test_exact_log_partition_matches_brute_force(n_visible: int, n_hidden: int) -> None:
    # (4, 3) enumerates the hidden layer, (3, 4) and (5, 5) the visible one.
    rbm = random_rbm(n_visible, n_hidden, seed=n_visible * 10 + n_hidden)
    assert log_partition_exact(rbm) == pytest.approx(brute_force_log_z(rbm), abs=1e-10)


def test_exact_log_likelihood_sums_to_one() -> None:
    rbm = random_rbm(4, 3, scale=1.5)
    log_z = log_partition_exact(rbm)
    log_p = log_likelihood(rbm, all_binary(4), log_z)
    assert log_p.shape == (16,)
    assert float(torch.logsumexp(log_p, dim=0)) == pytest.approx(0.0, abs=1e-12)
    # float32 models are evaluated in float64 too.
    assert log_likelihood(RBM(4, 3), all_binary(4).float(), 0.0).dtype == torch.float64


def test_gaussian_log_partition_matches_numerical_integration() -> None:
    # Z = ∫ exp(-F(v)) dv over R², integrated on a grid wide enough for unit-variance Gaussians.
    rbm = random_rbm(2, 3, "gaussian", scale=0.7, seed=4)
    grid = torch.linspace(-12.0, 12.0, 801, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        log_integral = float(torch.logsumexp(-rbm.free_energy(points), dim=0)) + 2 * math.log(step)
    log_z = log_partition_exact(rbm)
    assert log_z == pytest.approx(log_integral, abs=1e-6)
    # The log density integrates to one as well.
    density = log_likelihood(rbm, points, log_z).exp().sum() * step**2
    assert float(density) == pytest.approx(1.0, abs=1e-6)


def test_exact_log_partition_refuses_large_layers() -> None:
    with pytest.raises(UnitlensError, match="24"):
        log_partition_exact(RBM(30, 25))
    with pytest.raises(UnitlensError, match="24"):
        log_partition_exact(RBM(10, 25, "gaussian"))  # Gaussian: the hidden layer is enumerated
    assert math.isfinite(log_partition_exact(RBM(100, 12)))


# ---------------------------------------------------------------------- AIS


@pytest.mark.parametrize("schedule", ["piecewise", "linear"])
def test_ais_matches_exact_log_partition(schedule: str) -> None:
    # 40 visible units are too many to enumerate, 12 hidden ones are not: exact log Z via the hidden layer.
    rbm = random_rbm(40, 12, scale=0.5, seed=3)
    exact = log_partition_exact(rbm)
    estimate, error = ais_log_partition(
        rbm, n_chains=200, n_betas=2_000, generator=torch.Generator().manual_seed(0), schedule=schedule
    )
    assert 0 < error < 0.1
    assert estimate == pytest.approx(exact, abs=max(0.05, 4 * error))


def test_ais_with_a_data_base_rate_model_on_a_float32_rbm() -> None:
    rbm = random_rbm(30, 10, scale=0.6, seed=8).float()
    data = (torch.rand(500, 30, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    mean = data.mean(dim=0).clamp(1e-3, 1 - 1e-3)
    estimate, error = ais_log_partition(
        rbm,
        n_chains=200,
        n_betas=2_000,
        generator=torch.Generator().manual_seed(5),
        base_visible_bias=torch.logit(mean),
    )
    assert estimate == pytest.approx(log_partition_exact(rbm), abs=max(0.05, 4 * error))
    same = ais_log_partition(rbm, n_chains=10, n_betas=50, generator=torch.Generator().manual_seed(5))
    again = ais_log_partition(rbm, n_chains=10, n_betas=50, generator=torch.Generator().manual_seed(5))
    assert same == again


def test_ais_is_exact_for_a_model_equal_to_its_base() -> None:
    # Zero weights and hidden biases: the RBM *is* the base-rate model, every importance weight is 1.
    rbm = RBM(20, 30, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.zero_()
        rbm.visible_bias.copy_(torch.linspace(-2, 2, 20, dtype=torch.float64))
    estimate, error = ais_log_partition(
        rbm, n_chains=5, n_betas=20, generator=torch.Generator().manual_seed(0)
    )
    assert estimate == pytest.approx(log_partition_exact(rbm), abs=1e-9)
    assert error == pytest.approx(0.0, abs=1e-12)


def test_ais_rejects_bad_arguments() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(UnitlensError, match="Bernoulli"):
        ais_log_partition(RBM(4, 3, "gaussian"), generator=g)
    with pytest.raises(UnitlensError, match="n_betas"):
        ais_log_partition(RBM(4, 3), n_betas=1, generator=g)
    with pytest.raises(UnitlensError, match="schedule"):
        ais_log_partition(RBM(4, 3), schedule="geometric", generator=g)
    with pytest.raises(UnitlensError, match="base_visible_bias"):
        ais_log_partition(RBM(4, 3), base_visible_bias=torch.zeros(5), generator=g)


# ---------------------------------------------------------------------- pseudo-likelihood


def test_pseudo_log_likelihood_matches_enumeration() -> None:
    rbm = random_rbm(5, 4, scale=1.2, seed=6)
    vs = all_binary(5)
    log_p = log_likelihood(rbm, vs, log_partition_exact(rbm))  # (32,) indexed by the binary code
    codes = (vs @ torch.tensor([16.0, 8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).long()
    expected = torch.zeros(32, dtype=torch.float64)
    for i in range(5):
        flipped = codes ^ (1 << (4 - i))
        expected += log_p[codes] - torch.logaddexp(log_p[codes], log_p[flipped])  # log p(v_i | v_-i)
    torch.testing.assert_close(pseudo_log_likelihood(rbm, vs), expected)


def test_pseudo_log_likelihood_matches_sklearn_free_energies(monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn's score_samples is V · log sigmoid(F(ṽ) - F(v)) for one random flipped bit; the exact
    # pseudo-likelihood is its average over all flips. A small chunk size makes the batch take 9 chunks.
    monkeypatch.setattr(likelihood, "_PLL_CHUNK_ELEMENTS", 12 * 64 * 30)
    rbm = random_rbm(64, 30, scale=0.2, seed=1)
    sk = BernoulliRBM(n_components=30)
    sk.components_ = rbm.weight.detach().numpy()
    sk.intercept_hidden_ = rbm.hidden_bias.detach().numpy()
    sk.intercept_visible_ = rbm.visible_bias.detach().numpy()
    v = (torch.rand(100, 64, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    x = v.numpy()
    fe = sk._free_energy(x)
    per_flip = np.empty((100, 64))
    for i in range(64):
        flipped = x.copy()
        flipped[:, i] = 1 - flipped[:, i]
        per_flip[:, i] = -64 * np.logaddexp(0, -(sk._free_energy(flipped) - fe))
    np.testing.assert_allclose(pseudo_log_likelihood(rbm, v).numpy(), per_flip.mean(axis=1), rtol=1e-9)
    # The one-flip estimate draws one of those values per row.
    sampled = pseudo_log_likelihood(rbm, v, torch.Generator().manual_seed(3)).numpy()
    distance = np.abs(per_flip - sampled[:, None]).min(axis=1)
    assert distance.max() < 1e-8 * np.abs(sampled).max()


@pytest.mark.parametrize("scale", [0.3, 8.0, 20.0, 100.0])
def test_pseudo_log_likelihood_is_accurate_for_large_weights_and_float32(scale: float) -> None:
    # Against the plain float64 softplus differences: the log1p form must hold where p or q rounds to 0 or 1
    # and expm1(±W) spans many orders of magnitude (hidden inputs reach hundreds at scale 20); weights past
    # float32's expm1 range (scale 100) take the softplus path themselves.
    rbm = random_rbm(30, 20, scale=scale, seed=9)
    v = (torch.rand(10, 30, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    reference = likelihood._pseudo_log_likelihood_softplus(rbm, v, None)
    torch.testing.assert_close(pseudo_log_likelihood(rbm, v), reference, rtol=1e-10, atol=1e-7)
    got = pseudo_log_likelihood(rbm.float(), v.float())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-4)


def test_stochastic_pseudo_log_likelihood_is_unbiased() -> None:
    rbm = random_rbm(8, 5, seed=2)
    v = (torch.rand(2, 8, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    exact = pseudo_log_likelihood(rbm, v)
    draws = pseudo_log_likelihood(rbm, v.repeat_interleave(20_000, dim=0), torch.Generator().manual_seed(1))
    means = draws.view(2, 20_000).mean(dim=1)
    spread = draws.view(2, 20_000).std(dim=1) / math.sqrt(20_000)
    assert torch.all((means - exact).abs() < 5 * spread)


def test_pseudo_log_likelihood_rejects_gaussian_and_bad_shapes() -> None:
    with pytest.raises(UnitlensError, match="Bernoulli"):
        pseudo_log_likelihood(RBM(4, 3, "gaussian"), torch.zeros(2, 4))
    with pytest.raises(UnitlensError, match="4"):
        pseudo_log_likelihood(RBM(4, 3), torch.zeros(2, 5))
    with pytest.raises(UnitlensError, match="4"):
        log_likelihood(RBM(4, 3), torch.zeros(2, 5), 0.0)
