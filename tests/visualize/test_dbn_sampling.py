import itertools

import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE
from unitlens.progress import Progress
from unitlens.visualize.dbn_sampling import ClampedChains, ClampedSamples, sample_clamped, total_steps


def _randomise(model: torch.nn.Module, seed: int, weight_scale: float, bias_scale: float = 0.5) -> None:
    # Strong weights and weak biases, so that which unit is clamped matters (checked in each test).
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = weight_scale if name.endswith("weight") else bias_scale
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def _states(n: int) -> torch.Tensor:
    """All 2**n binary vectors, (2**n, n), row r the binary digits of r (most significant first)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)))


def _code(states: torch.Tensor) -> torch.Tensor:
    """Binary rows -> the integer they spell (most significant first), matching _states' order."""
    n = states.shape[1]
    return (states @ (2.0 ** torch.arange(n - 1, -1, -1))).long()


def _clamped_joint(rbm: RBM, unit: int) -> torch.Tensor:
    """p(v, h | h_unit = 1) of a Bernoulli RBM by enumeration: (2**V, 2**H), zero where h_unit = 0."""
    v, h = _states(rbm.n_visible), _states(rbm.n_hidden)
    vv = v.repeat_interleave(len(h), dim=0)
    hh = h.repeat(len(v), 1)
    with torch.no_grad():
        logp = -rbm.energy(vv, hh).reshape(len(v), len(h))
    logp[:, h[:, unit] == 0] = -torch.inf
    return torch.softmax(logp.flatten(), 0).reshape(len(v), len(h))


def _clamped_top_layer_law(rbm: RBM, unit: int) -> torch.Tensor:
    """p(h_{j-1} | h_ji = 1) over the 2**V states of the top RBM's lower layer."""
    return _clamped_joint(rbm, unit).sum(dim=1)


def _expected_input_mean(dbn: DBN, layer: int, unit: int) -> torch.Tensor:
    """E[x | h_(layer, unit) = 1] through the directed pass, every layer enumerated. (d,)"""
    with torch.no_grad():
        law = _clamped_top_layer_law(dbn.rbm(layer), unit)  # over states of layer-1
        states = _states(dbn.rbm(layer).n_visible)
        for k in range(layer - 1, 1, -1):  # sample layer k-1 given layer k: a product of Bernoullis
            p_on = dbn.rbm(k).visible_mean(states)  # (S_k, n_{k-1})
            below = _states(dbn.rbm(k).n_visible)  # (S_{k-1}, n_{k-1})
            trans = (below[None] * p_on[:, None] + (1 - below[None]) * (1 - p_on[:, None])).prod(-1)
            law, states = law @ trans, below
        return law @ dbn.rbm(1).visible_mean(states)


def _tolerance(samples: torch.Tensor, chains: int) -> float:
    """5 standard errors of a unit's sample mean (worst unit and pixel), from its independent chains' means.

    Samples of one chain are correlated, so the chain means are the independent draws; 1e-3 covers the
    small bias left by the burn-in.
    """
    per_chain = samples.reshape(samples.shape[0], chains, -1, samples.shape[-1]).mean(dim=2)
    return 5 * float(per_chain.std(dim=1).max()) / chains**0.5 + 1e-3


def _total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def test_clamped_chains_reach_the_enumerated_joint_law() -> None:
    # Tiny 3-visible, 2-hidden RBM with weights large enough that clamping changes the law a lot.
    rbm = RBM(3, 2)
    _randomise(rbm, seed=6, weight_scale=2.0)
    n = 4000
    clamped = torch.tensor([0] * n + [1] * n)  # both units' chains in one batch
    chains = ClampedChains(rbm, clamped, torch.Generator().manual_seed(0))
    chains.run(30)
    counts = torch.zeros(2, 8, 4)
    for _ in range(5):
        chains.run(3)
        for unit in (0, 1):
            rows = slice(unit * n, (unit + 1) * n)
            cell = _code(chains.visible[rows]) * 4 + _code(chains.hidden[rows])
            counts[unit].view(-1).index_add_(0, cell, torch.ones(n))
    assert torch.equal(chains.clamped_fraction, torch.ones(2 * n))
    assert chains.steps == 45
    for unit in (0, 1):
        expected = _clamped_joint(rbm, unit)
        empirical = counts[unit] / counts[unit].sum()
        assert _total_variation(empirical, expected) < 0.03
        # The other hidden unit is sampled, not stuck: it is on in a fraction of the states far from 0 and 1.
        other_on = empirical[:, 3].sum()  # hidden code 3 = (1, 1): the other unit on beside the clamped one
        assert 0.05 < float(other_on) < 0.95
        # The check can fail: the unclamped law of the visible units is far from the clamped one.
        with torch.no_grad():
            free = torch.softmax(-rbm.free_energy(_states(3)), 0)
        assert _total_variation(empirical.sum(1), free) > 0.1


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("layer", [2, 3])
def test_sample_mean_matches_enumerated_conditional_input_mean(layer: int, visible: str) -> None:
    dbn = DBN.build([4, 3, 3, 2], visible)
    _randomise(dbn, seed=3, weight_scale=2.0)
    chains = 3000
    result = sample_clamped(
        dbn, layer, burn_in=30, n_samples=4, every=3, chains_per_unit=chains,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    n_units = dbn.layer_sizes[layer]
    assert result.samples.shape == (n_units, chains * 4, 4)
    assert result.mean.shape == (n_units, 4)
    assert torch.equal(result.clamped_fraction, torch.ones(n_units))
    expected = torch.stack([_expected_input_mean(dbn, layer, u) for u in range(n_units)])
    assert (result.mean - expected).abs().max() < _tolerance(result.samples, chains)
    # Clamping different units gives clearly different answers, so a mix-up of units would be caught.
    gaps = [float((expected[a] - expected[b]).abs().max()) for a in range(n_units) for b in range(a)]
    assert min(gaps) > 0.05


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_first_layer_clamping_shows_visible_means_of_rbm_1(visible: str) -> None:
    dbn = DBN.build([4, 3], visible)
    _randomise(dbn, seed=11, weight_scale=1.0)
    rbm = dbn.rbm(1)
    h = _states(3)
    with torch.no_grad():
        if visible == "bernoulli":  # p(h) ∝ Σ_v exp(-E(v, h)) = exp(b·h) Π_i (1 + exp(c_i + (Wᵀh)_i))
            logp = h @ rbm.hidden_bias + torch.nn.functional.softplus(rbm.visible_preactivation(h)).sum(1)
        else:  # ∫ exp(-||v - c||²/2 + h·Wv) dv ∝ exp(c·Wᵀh + ||Wᵀh||²/2)
            wh = h @ rbm.weight
            logp = h @ rbm.hidden_bias + wh @ rbm.visible_bias + 0.5 * wh.square().sum(1)
        means = rbm.visible_mean(h)
    expected = []
    for unit in range(3):
        p = torch.softmax(logp.masked_fill(h[:, unit] == 0, -torch.inf), 0)
        expected.append(p @ means)
    result = sample_clamped(
        dbn, 1, burn_in=30, n_samples=4, every=3, chains_per_unit=3000,
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert torch.equal(result.clamped_fraction, torch.ones(3))
    assert (result.mean - torch.stack(expected)).abs().max() < _tolerance(result.samples, 3000)


def _switch_dbn() -> DBN:
    """4-2-2 DBN in which clamping top unit 0 gives the input (1, 1, 0, 0) and unit 1 gives (0, 0, 1, 1)."""
    dbn = DBN.build([4, 2, 2])
    with torch.no_grad():
        for rbm in (dbn.rbm(1), dbn.rbm(2)):
            rbm.hidden_bias.zero_()
            rbm.visible_bias.zero_()
        dbn.rbm(2).weight.copy_(torch.tensor([[12.0, -12.0], [-12.0, 12.0]]))
        dbn.rbm(1).weight.copy_(torch.tensor([[12.0, 12.0, -12.0, -12.0], [-12.0, -12.0, 12.0, 12.0]]))
    return dbn


def test_hand_checkable_switch_net_keeps_units_and_chains_in_their_rows() -> None:
    dbn = _switch_dbn()
    result = sample_clamped(
        dbn, 2, [1, 0, 1], burn_in=5, n_samples=4, every=2, chains_per_unit=3,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert result.units.tolist() == [1, 0, 1]
    assert result.samples.shape == (3, 12, 4)
    a, b = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])
    for row, pattern in zip(range(3), (b, a, b), strict=True):
        assert torch.allclose(result.samples[row], pattern.expand(12, 4), atol=1e-4)
        assert torch.allclose(result.mean[row], pattern, atol=1e-4)
    assert (result.layer, result.burn_in, result.every, result.chains_per_unit) == (2, 5, 2, 3)


def test_same_seed_same_samples_and_other_seed_other_samples() -> None:
    dbn = DBN.build([6, 5, 4])
    _randomise(dbn, seed=0, weight_scale=1.0)

    def run(seed: int) -> torch.Tensor:
        return sample_clamped(
            dbn, 2, burn_in=3, n_samples=2, every=2, generator=torch.Generator().manual_seed(seed)
        ).samples

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_one_unit_alone_has_the_same_law_as_in_the_full_batch() -> None:
    # Exact equality across batch compositions is not promised (the chains share one random stream);
    # the law of a unit's samples must not depend on the batch.
    dbn = DBN.build([5, 4, 3])
    _randomise(dbn, seed=4, weight_scale=2.0)

    def run(units: list[int] | None, seed: int) -> ClampedSamples:
        return sample_clamped(
            dbn, 2, units, burn_in=20, n_samples=3, every=3, chains_per_unit=3000,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip

    alone, batch = run([2], 0), run(None, 1)
    tolerance = _tolerance(alone.samples, 3000)
    assert (alone.mean[0] - batch.mean[2]).abs().max() < 2 * tolerance
    assert (alone.mean[0] - _expected_input_mean(dbn, 2, 2)).abs().max() < tolerance


def test_steps_and_start_states() -> None:
    dbn = DBN.build([6, 5, 4])
    progress = Progress(total_steps(7, 3, 4), "sampling", quiet=True)
    result = sample_clamped(
        dbn, 2, [0], burn_in=7, n_samples=3, every=4, generator=torch.Generator().manual_seed(0),
        progress=progress,
    )  # fmt: skip
    assert progress.done == 7 + 3 * 4 == total_steps(7, 3, 4)
    assert torch.isfinite(result.samples).all()
    rbm = dbn.rbm(2)
    zeros = ClampedChains(rbm, torch.zeros(50, dtype=torch.long), torch.Generator(), start="zeros")
    assert torch.equal(zeros.visible, torch.zeros(50, 5))
    coins = ClampedChains(rbm, torch.zeros(2000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert set(coins.visible.unique().tolist()) == {0.0, 1.0}
    assert abs(float(coins.visible.mean()) - 0.5) < 0.02
    with pytest.raises(UnitlensError, match="start"):
        ClampedChains(rbm, torch.zeros(2, dtype=torch.long), torch.Generator(), start="uniform")
    with pytest.raises(UnitlensError, match=r"0\.\.3"):
        ClampedChains(rbm, torch.tensor([4]), torch.Generator())


def test_gaussian_dbn_samples_are_finite() -> None:
    dbn = DBN.build([8, 6, 5, 4], "gaussian", generator=torch.Generator().manual_seed(0))
    for layer in (1, 2, 3):
        result = sample_clamped(
            dbn, layer, burn_in=5, n_samples=3, every=2, generator=torch.Generator().manual_seed(0)
        )
        n_units = dbn.layer_sizes[layer]
        assert result.samples.shape == (n_units, 3, 8)
        assert result.samples.dtype == torch.float32
        assert torch.isfinite(result.samples).all() and torch.isfinite(result.mean).all()
        assert torch.equal(result.clamped_fraction, torch.ones(n_units))


def test_an_sdae_is_refused_as_not_generative() -> None:
    sdae = SDAE.build([6, 5, 4])
    with pytest.raises(UnitlensError, match="SDAE is not a generative model"):
        sample_clamped(sdae, 2, generator=torch.Generator())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"layer": 3}, r"1\.\.2"),
        ({"layer": 2, "units": [4]}, r"0\.\.3"),
        ({"layer": 2, "burn_in": -1}, "burn_in"),
        ({"layer": 2, "n_samples": 0}, "n_samples"),
        ({"layer": 2, "every": 0}, "every"),
        ({"layer": 2, "chains_per_unit": 0}, "chains_per_unit"),
        ({"layer": 2, "start": "gaussian"}, "start"),
    ],
)
def test_bad_arguments_are_reported(args: dict[str, object], message: str) -> None:
    dbn = DBN.build([6, 5, 4])
    with pytest.raises(UnitlensError, match=message):
        sample_clamped(dbn, generator=torch.Generator(), **args)  # type: ignore[arg-type]


def test_dtype_follows_the_model() -> None:
    dbn = DBN.build([6, 5, 4], dtype=torch.float64)
    for layer in (1, 2):
        result = sample_clamped(dbn, layer, burn_in=2, n_samples=2, every=1, generator=torch.Generator())
        assert result.samples.dtype == result.mean.dtype == torch.float64
        assert not result.samples.requires_grad
