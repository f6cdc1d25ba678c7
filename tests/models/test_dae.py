"""Tests for the denoising auto-encoder model and its corruption processes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

from unitlens.errors import UnitlensError
from unitlens.models.dae import (
    DAE,
    Corruption,
    corrupt,
    corrupt_into,
    default_corruption,
    default_decoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- corruption -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "level"), [(100, 0.25), (37, 0.3), (10, 1.0), (784, 0.25)])
def test_zero_masking_sets_exactly_round_level_d_inputs_to_zero(d: int, level: float) -> None:
    x = torch.full((50, d), 0.5)
    out = corrupt(x, Corruption(kind="zero", level=level), gen())
    k = round(level * d)
    assert torch.equal((out == 0).sum(dim=1), torch.full((50,), k))
    assert torch.all((out == 0) | (out == 0.5))
    assert torch.equal(x, torch.full((50, d), 0.5)), "corrupt must not modify its input"


def test_salt_and_pepper_counts_values_and_fair_coin() -> None:
    x = torch.full((400, 100), 0.5)
    out = corrupt(x, Corruption(kind="salt_pepper", level=0.25), gen(1))
    changed = out != 0.5
    assert torch.equal(changed.sum(dim=1), torch.full((400,), 25))
    values = out[changed]
    assert torch.all((values == 0.0) | (values == 1.0))
    # 10,000 fair coins: the salt fraction has standard deviation 0.005; allow 4 of them.
    salt_fraction = (values == 1.0).double().mean().item()
    assert abs(salt_fraction - 0.5) < 0.02


def test_salt_and_pepper_custom_values() -> None:
    x = torch.full((200, 40), 0.5)
    out = corrupt(x, Corruption(kind="salt_pepper", level=0.5, salt=3.0, pepper=-2.0), gen(2))
    changed = out != 0.5
    assert torch.equal(changed.sum(dim=1), torch.full((200,), 20))
    values = out[changed]
    assert set(values.unique().tolist()) == {3.0, -2.0}


@pytest.mark.parametrize(
    "corruption", [Corruption(kind="none", level=0.5), Corruption(kind="zero", level=0.0)]
)
def test_no_corruption_returns_an_equal_new_tensor(corruption: Corruption) -> None:
    x = torch.rand(8, 30, generator=gen())
    out = corrupt(x, corruption, gen())
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_chosen_subsets_are_uniform_and_differ_between_rows() -> None:
    n, d, k = 3000, 20, 5
    x = torch.full((n, d), 0.5)
    mask = (corrupt(x, Corruption(kind="zero", level=k / d), gen(3)) == 0).double()
    # Each position is chosen with probability k/d: chi-square over the 20 positions (19 dof).
    counts = mask.sum(dim=0)
    expected = n * k / d
    stat = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2.sf(stat, d - 1) > 1e-3
    # Each pair is chosen together with probability k(k-1) / (d(d-1)) for a uniform k-subset (a per-input
    # coin with the same marginal would give (k/d)^2 instead, about 10% more).
    together = mask.T @ mask
    pairs = together[torch.triu(torch.ones(d, d, dtype=torch.bool), diagonal=1)]
    expected_pair = n * k * (k - 1) / (d * (d - 1))
    assert abs(pairs.mean().item() - expected_pair) < 1e-9  # fixed by the exact row count
    pair_stat = ((pairs - expected_pair) ** 2 / expected_pair).sum().item()
    n_pairs = pairs.numel()
    assert abs(pair_stat - n_pairs) < 5 * (2 * n_pairs) ** 0.5
    # 15,504 possible subsets: 3,000 independent rows repeat only a few hundred times.
    distinct = torch.unique(mask, dim=0).shape[0]
    assert distinct > 2500


def test_corrupt_is_reproducible_and_seed_dependent() -> None:
    x = torch.rand(16, 50, generator=gen())
    c = Corruption(kind="salt_pepper", level=0.3)
    a, b = corrupt(x, c, gen(7)), corrupt(x, c, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, corrupt(x, c, gen(8)))
    # The subsets are drawn in float32 whatever the input's dtype.
    assert torch.equal(corrupt(x.double(), c, gen(7)).float(), a)


def test_corrupt_rejects_non_matrix() -> None:
    with pytest.raises(UnitlensError, match="batch, d"):
        corrupt(torch.zeros(10), Corruption(), gen())
    with pytest.raises(UnitlensError, match="output shape"):
        corrupt_into(torch.zeros(4, 10), Corruption(), gen(), out=torch.zeros(5, 10))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "gaussian"},
        {"level": -0.1},
        {"level": 1.5},
        {"level": float("nan")},
        {"level": True},
        {"salt": float("inf")},
        {"pepper": "0"},
    ],
)
def test_bad_corruptions_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(UnitlensError, match="corruption"):
        Corruption(**kwargs)  # type: ignore[arg-type]


def test_corruption_dict_round_trip_and_errors() -> None:
    c = Corruption(kind="zero", level=0.1, salt=2.0, pepper=-1.0)
    d = json.loads(json.dumps(c.to_dict()))
    assert Corruption.from_dict(d) == c
    assert Corruption.from_dict({"level": 0.4}) == Corruption(level=0.4)
    with pytest.raises(UnitlensError, match="unknown fields"):
        Corruption.from_dict({"kind": "zero", "noise": 0.1})
    with pytest.raises(UnitlensError, match="dict"):
        Corruption.from_dict([("kind", "zero")])  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="kind"):
        Corruption.from_dict({"kind": 3})


def test_default_corruptions_follow_the_spec() -> None:
    assert default_corruption("binary") == Corruption(kind="salt_pepper", level=0.25, salt=1.0, pepper=0.0)
    assert default_corruption("real") == Corruption(kind="zero", level=0.25)
    assert default_decoder("binary") == "sigmoid"
    assert default_decoder("real") == "linear"
    with pytest.raises(UnitlensError, match="kind of data"):
        default_corruption("grey")
    with pytest.raises(UnitlensError, match="kind of data"):
        default_decoder("grey")


# --- model --------------------------------------------------------------------------------------------


def test_initialisation() -> None:
    dae = DAE(300, 200, generator=gen(4))
    assert dae.weight.shape == (200, 300)
    assert dae.weight.dtype == torch.float32
    assert torch.equal(dae.hidden_bias, torch.zeros(200))
    assert torch.equal(dae.visible_bias, torch.zeros(300))
    # 60,000 draws: the sample std of N(0, 0.01^2) is within 1% of 0.01 with overwhelming probability.
    assert abs(dae.weight.std().item() - 0.01) < 1e-4
    assert abs(dae.weight.mean().item()) < 1e-4
    assert torch.equal(DAE(300, 200, generator=gen(4)).weight, dae.weight)
    assert not torch.equal(DAE(300, 200, generator=gen(5)).weight, dae.weight)
    assert torch.equal(DAE(300, 200).weight, DAE(300, 200).weight), "no generator: still deterministic"
    assert DAE(3, 2, dtype=torch.float64).weight.dtype == torch.float64


def small_dae(decoder: str, dtype: torch.dtype = torch.float64) -> DAE:
    dae = DAE(6, 4, decoder, generator=gen(9), dtype=dtype)
    with torch.no_grad():
        # Weights large enough that the outputs depend visibly on the inputs.
        dae.weight.copy_(torch.randn(4, 6, generator=gen(10), dtype=dtype))
        dae.hidden_bias.copy_(torch.randn(4, generator=gen(11), dtype=dtype))
        dae.visible_bias.copy_(torch.randn(6, generator=gen(12), dtype=dtype))
    return dae


def test_encoder_and_decoder_formulas() -> None:
    dae = small_dae("sigmoid")
    x = torch.rand(5, 6, generator=gen(), dtype=torch.float64)
    W, b, c = dae.weight.detach(), dae.hidden_bias.detach(), dae.visible_bias.detach()
    pre = x @ W.T + b
    torch.testing.assert_close(dae.hidden_preactivation(x), pre)
    h = torch.sigmoid(pre)
    torch.testing.assert_close(dae.hidden_probs(x), h)
    torch.testing.assert_close(dae(x), h)
    torch.testing.assert_close(dae.decode(h), torch.sigmoid(h @ W + c))
    torch.testing.assert_close(dae.reconstruct(x), torch.sigmoid(h @ W + c))
    linear = small_dae("linear")
    torch.testing.assert_close(linear.decode(h), h @ W + c)
    torch.testing.assert_close(linear.reconstruct(x), h @ W + c)


def test_sigmoid_loss_is_summed_binary_cross_entropy() -> None:
    dae = small_dae("sigmoid")
    x = torch.rand(5, 6, generator=gen(), dtype=torch.float64)  # targets in [0, 1], not only 0/1
    x_tilde = corrupt(x, Corruption(level=0.5), gen(1))
    x_hat = dae.decode(dae.hidden_probs(x_tilde))
    expected = F.binary_cross_entropy(x_hat, x, reduction="sum") / 5
    torch.testing.assert_close(dae.loss(x, x_tilde), expected)
    clean = F.binary_cross_entropy(dae.reconstruct(x), x, reduction="sum") / 5
    torch.testing.assert_close(dae.loss(x), clean)


def test_linear_loss_is_half_summed_squared_error() -> None:
    dae = small_dae("linear")
    x = torch.randn(5, 6, generator=gen(), dtype=torch.float64)
    x_tilde = corrupt(x, Corruption(kind="zero", level=0.5), gen(1))
    x_hat = dae.decode(dae.hidden_probs(x_tilde))
    expected = 0.5 * F.mse_loss(x_hat, x, reduction="sum") / 5
    torch.testing.assert_close(dae.loss(x, x_tilde), expected)


def test_sigmoid_loss_is_finite_when_the_decoder_saturates() -> None:
    dae = DAE(2, 1, dtype=torch.float64)
    with torch.no_grad():
        dae.weight.zero_()
        dae.visible_bias.copy_(torch.tensor([200.0, -200.0]))
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    # x^ is 1 - 1e-87 and 1e-87: the cross-entropy is 200 per input, where log(x^) would give inf.
    torch.testing.assert_close(dae.loss(x), torch.tensor(400.0, dtype=torch.float64))


def test_loss_rejects_mismatched_corrupted_input() -> None:
    dae = small_dae("sigmoid")
    with pytest.raises(UnitlensError, match="corrupted input shape"):
        dae.loss(torch.rand(3, 6, dtype=torch.float64), torch.rand(2, 6, dtype=torch.float64))


class _LossOf(torch.nn.Module):
    """Exposes DAE.loss as forward, so functional_call can vary its parameters."""

    def __init__(self, dae: DAE) -> None:
        super().__init__()
        self.dae = dae

    def forward(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        return self.dae.loss(x, x_tilde)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_loss_gradcheck(decoder: str) -> None:
    dae = small_dae(decoder)
    wrapper = _LossOf(dae)
    x = (torch.rand if decoder == "sigmoid" else torch.randn)(3, 6, generator=gen(), dtype=torch.float64)
    params = tuple(
        p.detach().clone().requires_grad_(True) for p in (dae.weight, dae.hidden_bias, dae.visible_bias)
    )
    x_tilde = corrupt(x, Corruption(level=0.3), gen(1)).requires_grad_(True)

    def loss(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        names = {"dae.weight": W, "dae.hidden_bias": b, "dae.visible_bias": c}
        out: torch.Tensor = torch.func.functional_call(wrapper, names, (x, xt))
        return out

    assert torch.autograd.gradcheck(loss, (*params, x_tilde))


def test_set_visible_bias_from_mean() -> None:
    mean = torch.tensor([0.0, 0.2, 0.5, 1.0])
    dae = DAE(4, 3)
    dae.set_visible_bias_from_mean(mean)
    # Decoding a zero code (no weights) gives the clamped mean back.
    torch.testing.assert_close(torch.sigmoid(dae.visible_bias.detach()), mean.clamp(1e-3, 1 - 1e-3))
    linear = DAE(4, 3, "linear")
    linear.set_visible_bias_from_mean(mean.double() - 3)
    torch.testing.assert_close(linear.visible_bias.detach(), mean - 3)
    with pytest.raises(UnitlensError, match=r"shape \(4,\)"):
        dae.set_visible_bias_from_mean(torch.zeros(5))


def test_config_round_trip() -> None:
    dae = DAE(12, 5, "linear", Corruption(kind="zero", level=0.1), dtype=torch.float64)
    config = json.loads(json.dumps(dae.config()))
    rebuilt = DAE.from_config(config)
    assert rebuilt.config() == dae.config()
    assert (rebuilt.n_visible, rebuilt.n_hidden, rebuilt.decoder) == (12, 5, "linear")
    assert rebuilt.corruption == Corruption(kind="zero", level=0.1)
    assert rebuilt.weight.dtype == torch.float64
    rebuilt.load_state_dict(dae.state_dict())
    assert torch.equal(rebuilt.weight, dae.weight)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_hidden": 0}, "n_hidden"),
        ({"n_visible": "12"}, "n_visible"),
        ({"n_visible": True}, "n_visible"),
        ({"decoder": "relu"}, "decoder"),
        ({"decoder": 1}, "decoder"),
        ({"corruption": {"kind": "zero", "level": 2.0}}, "corruption.level"),
        ({"corruption": "zero"}, "corruption"),
        ({"dtype": "int8"}, "dtype"),
        ({"hidden": 5}, "unknown fields"),
    ],
)
def test_bad_configs_are_rejected(change: dict[str, object], message: str) -> None:
    config = {**DAE(12, 5).config(), **change}
    with pytest.raises(UnitlensError, match=message):
        DAE.from_config(config)


def test_config_missing_fields_and_non_dict() -> None:
    with pytest.raises(UnitlensError, match="missing"):
        DAE.from_config({"n_visible": 3})
    with pytest.raises(UnitlensError, match="dict"):
        DAE.from_config([3, 4])  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="Corruption"):
        DAE(3, 4, corruption={"kind": "zero"})  # type: ignore[arg-type]
