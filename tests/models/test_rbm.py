"""RBM: energies against brute-force enumeration, conditionals against scikit-learn and closed forms,
samplers against their probabilities, Gibbs sampling against the exact distribution of a tiny RBM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.neural_network import BernoulliRBM

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM, VISIBLE_TYPES, RBMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def random_rbm(
    n_visible: int, n_hidden: int, visible: str = "bernoulli", scale: float = 1.0, seed: int = 0
) -> RBM:
    """A float64 RBM with weights and biases of a non-trivial scale (not the tiny initial ones)."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, generator=g, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(scale * torch.randn(n_hidden, n_visible, generator=g, dtype=torch.float64))
        rbm.hidden_bias.copy_(scale * torch.randn(n_hidden, generator=g, dtype=torch.float64))
        rbm.visible_bias.copy_(scale * torch.randn(n_visible, generator=g, dtype=torch.float64))
    return rbm


def all_binary(n: int) -> torch.Tensor:
    """(2^n, n) every binary vector of length n, float64."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def sklearn_copy(rbm: RBM) -> BernoulliRBM:
    """A fitted-looking scikit-learn BernoulliRBM holding the same parameters."""
    sk = BernoulliRBM(n_components=rbm.n_hidden, random_state=0)
    sk.components_ = rbm.weight.detach().numpy().copy()
    sk.intercept_hidden_ = rbm.hidden_bias.detach().numpy().copy()
    sk.intercept_visible_ = rbm.visible_bias.detach().numpy().copy()
    sk.n_features_in_ = rbm.n_visible
    return sk


# ---------------------------------------------------------------------- construction and config


def test_initialisation_follows_the_generator_and_the_guide() -> None:
    a = RBM(784, 500, generator=torch.Generator().manual_seed(3))
    b = RBM(784, 500, generator=torch.Generator().manual_seed(3))
    c = RBM(784, 500, generator=torch.Generator().manual_seed(4))
    assert a.weight.shape == (500, 784)
    assert a.weight.dtype == torch.float32
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)
    assert float(a.weight.detach().std()) == pytest.approx(0.01, rel=0.02)
    assert abs(float(a.weight.detach().mean())) < 1e-4
    assert torch.count_nonzero(a.hidden_bias) == 0
    assert torch.count_nonzero(a.visible_bias) == 0
    assert RBM(3, 2, dtype=torch.float64).weight.dtype == torch.float64


def test_config_round_trip() -> None:
    for visible in VISIBLE_TYPES:
        for dtype in (torch.float32, torch.float64):
            rbm = RBM(7, 5, visible, dtype=dtype)
            config = rbm.config()
            name = str(dtype).removeprefix("torch.")
            assert config == {"n_visible": 7, "n_hidden": 5, "visible": visible, "dtype": name}
            assert rbm.cfg == RBMConfig(7, 5, visible, name)
            again = RBM.from_config(config)
            assert again.config() == config
            assert again.weight.shape == (5, 7) and again.weight.dtype == dtype
            assert RBM.from_config(rbm.cfg).config() == config


def test_config_written_before_dtype_reads_as_float32() -> None:
    rbm = RBM.from_config({"n_visible": 7, "n_hidden": 5, "visible": "gaussian"})
    assert rbm.weight.dtype == torch.float32
    assert rbm.cfg == RBMConfig(7, 5, "gaussian", "float32")


def test_config_follows_the_parameters_dtype() -> None:
    rbm = RBM(4, 3).double()
    assert rbm.cfg.dtype == "float64" and rbm.config()["dtype"] == "float64"
    with pytest.raises(UnitlensError, match="dtype"):
        RBM(4, 3, dtype=torch.float16)


@pytest.mark.parametrize(
    "config",
    [
        {"n_hidden": 5, "visible": "bernoulli"},
        {"n_visible": 7, "n_hidden": 5, "visible": "bernoulli", "dtype": "int8"},
        {"n_visible": 7, "n_hidden": 5, "visible": "bernoulli", "extra": 1},
        {"n_visible": 0, "n_hidden": 5, "visible": "bernoulli"},
        {"n_visible": 7.0, "n_hidden": 5, "visible": "bernoulli"},
        {"n_visible": True, "n_hidden": 5, "visible": "bernoulli"},
        {"n_visible": 7, "n_hidden": 5, "visible": "poisson"},
        {"n_visible": 7, "n_hidden": 5, "visible": 1},
    ],
)
def test_from_config_rejects_bad_fields(config: dict[str, object]) -> None:
    with pytest.raises(UnitlensError):
        RBM.from_config(config)


def test_constructor_and_inputs_are_validated() -> None:
    with pytest.raises(UnitlensError, match="visible"):
        RBM(3, 2, "softmax")
    with pytest.raises(UnitlensError, match="n_hidden"):
        RBM(3, -1)
    rbm = RBM(3, 2)
    with pytest.raises(UnitlensError, match="3"):
        rbm.hidden_probs(torch.zeros(4, 5))
    with pytest.raises(UnitlensError, match="2"):
        rbm.visible_mean(torch.zeros(4, 3))


def test_visible_bias_from_mean() -> None:
    mean = torch.tensor([0.0, 0.25, 0.5, 1.0])
    rbm = RBM(4, 3)
    rbm.set_visible_bias_from_mean(mean)
    expected = torch.logit(torch.tensor([1e-3, 0.25, 0.5, 1 - 1e-3]))
    torch.testing.assert_close(rbm.visible_bias.detach(), expected)
    # With zero weights the model's visible marginals are the (clamped) data means: the point of this init.
    with torch.no_grad():
        rbm.weight.zero_()
    torch.testing.assert_close(rbm.visible_mean(torch.zeros(1, 3))[0], mean.clamp(1e-3, 1 - 1e-3))
    gaussian = RBM(4, 3, "gaussian")
    gaussian.set_visible_bias_from_mean(torch.tensor([-2.0, 0.0, 1.5, 3.0]))
    torch.testing.assert_close(gaussian.visible_bias.detach(), torch.tensor([-2.0, 0.0, 1.5, 3.0]))
    with pytest.raises(UnitlensError, match="shape"):
        rbm.set_visible_bias_from_mean(torch.zeros(5))


# ---------------------------------------------------------------------- energies


@pytest.mark.parametrize("visible", VISIBLE_TYPES)
def test_energy_by_hand(visible: str) -> None:
    rbm = RBM(2, 1, visible, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(torch.tensor([[1.0, 2.0]], dtype=torch.float64))
        rbm.hidden_bias.copy_(torch.tensor([0.5], dtype=torch.float64))
        rbm.visible_bias.copy_(torch.tensor([0.1, -0.2], dtype=torch.float64))
    v, h = torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    # -b·h - h·Wv = -0.5 - 3; visible term -c·v = 0.1 or ||v - c||²/2 = (0.81 + 1.44)/2.
    expected = 0.1 - 3.5 if visible == "bernoulli" else 1.125 - 3.5
    assert float(rbm.energy(v, h).detach()[0]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("visible", VISIBLE_TYPES)
def test_free_energy_is_minus_log_sum_over_hidden_states(visible: str) -> None:
    rbm = random_rbm(4, 3, visible)
    if visible == "bernoulli":
        v = all_binary(4)
    else:
        v = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    hs = all_binary(3)  # (8, 3)
    # -E(v, h) for every pair: (16, 8).
    neg_energy = torch.stack([-rbm.energy(v, h.expand(v.shape[0], 3)) for h in hs], dim=1)
    torch.testing.assert_close(rbm.free_energy(v), -torch.logsumexp(neg_energy, dim=1))


def test_free_energy_gradient_closed_form() -> None:
    # dF/dv = -c - Wᵀ sigmoid(b + Wv) (bernoulli); activation maximization relies on autograd through these.
    rbm = random_rbm(5, 4)
    v = torch.rand(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    rbm.free_energy(v).sum().backward()
    expected = -rbm.visible_bias - rbm.hidden_probs(v) @ rbm.weight
    torch.testing.assert_close(v.grad, expected.detach())


# ---------------------------------------------------------------------- conditionals


@pytest.mark.parametrize("visible", VISIBLE_TYPES)
def test_hidden_conditional_matches_enumeration(visible: str) -> None:
    rbm = random_rbm(4, 3, visible, seed=5)
    v = all_binary(4) if visible == "bernoulli" else torch.randn(16, 4, dtype=torch.float64)
    hs = all_binary(3)
    log_joint = torch.stack([-rbm.energy(v, h.expand(v.shape[0], 3)) for h in hs], dim=1)  # (16, 8)
    posterior = torch.softmax(log_joint, dim=1)
    torch.testing.assert_close(rbm.hidden_probs(v), posterior @ hs)  # p(h_j = 1 | v)


def test_conditionals_and_free_energy_match_sklearn() -> None:
    rbm = random_rbm(6, 5, seed=7)
    sk = sklearn_copy(rbm)
    v = (torch.rand(20, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    h = (torch.rand(20, 5, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    np.testing.assert_allclose(rbm.hidden_probs(v).detach().numpy(), sk.transform(v.numpy()), rtol=1e-12)
    sk_visible = 1.0 / (1.0 + np.exp(-(h.numpy() @ sk.components_ + sk.intercept_visible_)))
    np.testing.assert_allclose(rbm.visible_mean(h).detach().numpy(), sk_visible, rtol=1e-12)
    np.testing.assert_allclose(rbm.free_energy(v).detach().numpy(), sk._free_energy(v.numpy()), rtol=1e-12)
    torch.testing.assert_close(rbm.reconstruct(v), rbm.visible_mean(rbm.hidden_probs(v)))


def test_gaussian_visible_conditional_closed_form() -> None:
    rbm = random_rbm(5, 4, "gaussian", seed=3)
    h = (torch.rand(6, 4, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    expected = rbm.visible_bias + h @ rbm.weight  # c + Wᵀh
    torch.testing.assert_close(rbm.visible_mean(h), expected)
    torch.testing.assert_close(rbm.visible_preactivation(h), expected)
    # p(v | h) = N(c + Wᵀh, I): draws have that mean and unit variance.
    many = h[:2].repeat_interleave(20_000, dim=0)
    samples = rbm.sample_visible(many, torch.Generator().manual_seed(1)).view(2, 20_000, 5)
    torch.testing.assert_close(samples.mean(dim=1), expected[:2], atol=0.04, rtol=0)
    torch.testing.assert_close(samples.var(dim=1), torch.ones(2, 5, dtype=torch.float64), atol=0.05, rtol=0)


# ---------------------------------------------------------------------- samplers


def test_sample_means_match_probabilities() -> None:
    rbm = random_rbm(6, 5, seed=11)
    v = (torch.rand(3, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    h = (torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    n = 20_000  # standard error of a mean <= 0.5 / sqrt(n) = 0.0035
    g = torch.Generator().manual_seed(2)
    hidden = rbm.sample_hidden(v.repeat_interleave(n, dim=0), g).view(3, n, 5)
    visible = rbm.sample_visible(h.repeat_interleave(n, dim=0), g).view(3, n, 6)
    for samples in (hidden, visible):
        assert samples.dtype == torch.float64
        assert set(samples.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hidden.mean(dim=1), rbm.hidden_probs(v).detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(visible.mean(dim=1), rbm.visible_mean(h).detach(), atol=0.02, rtol=0)


def test_sampling_is_reproducible() -> None:
    rbm = random_rbm(6, 5)
    v = torch.rand(4, 6, dtype=torch.float64)
    a = rbm.gibbs_step(v, torch.Generator().manual_seed(9))
    b = rbm.gibbs_step(v, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_gibbs_chain_samples_the_exact_joint_distribution() -> None:
    rbm = random_rbm(4, 3, scale=0.8, seed=2)
    vs, hs = all_binary(4), all_binary(3)
    # Exact joint p(v, h) over the 16 x 8 states.
    neg_energy = torch.stack([-rbm.energy(vs, h.expand(16, 3)) for h in hs], dim=1)
    exact = torch.softmax(neg_energy.flatten(), dim=0).view(16, 8).detach()
    g = torch.Generator().manual_seed(0)
    v = (torch.rand(2_000, 4, generator=g) < 0.5).double()
    counts = torch.zeros(16, 8, dtype=torch.float64)
    powers_v, powers_h = torch.tensor([8.0, 4.0, 2.0, 1.0]), torch.tensor([4.0, 2.0, 1.0])
    with torch.no_grad():
        for step in range(40):
            h = rbm.sample_hidden(v, g)
            if step >= 20:  # burn-in, then 20 sweeps x 2,000 chains of (v, h) ~ p(v) p(h | v)
                index = (v.float() @ powers_v).long() * 8 + (h.float() @ powers_h).long()
                counts.view(-1).index_add_(0, index, torch.ones_like(index, dtype=torch.float64))
            v = rbm.sample_visible(h, g)
    empirical = counts / counts.sum()
    total_variation = 0.5 * float((empirical - exact).abs().sum())
    assert total_variation < 0.03
    # The visible marginal on its own (a sharper check with fewer cells).
    assert 0.5 * float((empirical.sum(1) - exact.sum(1)).abs().sum()) < 0.015


def test_gibbs_step_is_sample_hidden_then_sample_visible() -> None:
    rbm = random_rbm(5, 4, "gaussian")
    v = torch.randn(3, 5, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    torch.testing.assert_close(rbm.gibbs_step(v, g1), rbm.sample_visible(rbm.sample_hidden(v, g2), g2))
