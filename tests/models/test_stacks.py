import itertools

import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE, Corruption
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE


def _randomise(model: torch.nn.Module, seed: int = 0, scale: float = 1.0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def test_preactivation_is_the_mean_field_up_pass() -> None:
    dbn = DBN.build([5, 4, 3, 2], generator=torch.Generator().manual_seed(0))
    _randomise(dbn)
    x = torch.rand(6, 5)
    W = [dbn.weight(k) for k in (1, 2, 3)]
    b = [dbn.layer(k).hidden_bias for k in (1, 2, 3)]
    a1 = x @ W[0].T + b[0]
    a2 = torch.sigmoid(a1) @ W[1].T + b[1]
    a3 = torch.sigmoid(a2) @ W[2].T + b[2]
    for layer, expected in zip((1, 2, 3), (a1, a2, a3), strict=True):
        assert torch.allclose(dbn.preactivation(x, layer), expected, atol=1e-6)
    assert torch.equal(dbn.up_pass(x, 0), x)
    assert torch.allclose(dbn.up_pass(x, 2), torch.sigmoid(a2), atol=1e-6)
    assert dbn.layer_sizes == [5, 4, 3, 2]
    assert dbn.n_layers == 3


@pytest.mark.parametrize("layer", [0, 4, -1, 1.0])
def test_layer_numbers_are_one_based_and_checked(layer: object) -> None:
    dbn = DBN.build([5, 4, 3, 2])
    with pytest.raises(UnitlensError, match=r"1\.\.3"):
        dbn.preactivation(torch.rand(1, 5), layer)  # type: ignore[arg-type]


def test_mismatched_layers_are_rejected() -> None:
    with pytest.raises(UnitlensError, match="layer 2 expects 3 inputs"):
        DBN([RBM(5, 4), RBM(3, 2)])
    with pytest.raises(UnitlensError, match="bernoulli"):
        DBN([RBM(5, 4), RBM(4, 2, "gaussian")])
    with pytest.raises(UnitlensError, match="sigmoid decoder"):
        SDAE([DAE(5, 4), DAE(4, 2, "linear")])


def test_gaussian_dbn_has_gaussian_bottom_only() -> None:
    dbn = DBN.build([6, 4, 3], "gaussian")
    assert dbn.rbm(1).visible == "gaussian"
    assert dbn.rbm(2).visible == "bernoulli"


def test_down_pass_matches_enumeration_of_the_intermediate_layer() -> None:
    # E[x | h2] = sum over s1 of p(s1 | h2) * sigmoid(c1 + s1 W1): enumerate the 3 units of layer 1.
    dbn = DBN.build([4, 3, 2])
    _randomise(dbn, seed=1)
    h2 = torch.tensor([[1.0, 0.0]])
    p1 = torch.sigmoid(dbn.rbm(2).visible_preactivation(h2))[0]
    expected = torch.zeros(4)
    for bits in itertools.product([0.0, 1.0], repeat=3):
        s1 = torch.tensor(bits)
        weight = torch.prod(torch.where(s1 == 1, p1, 1 - p1))
        expected += weight * dbn.rbm(1).visible_mean(s1[None])[0]
    g = torch.Generator().manual_seed(0)
    samples = dbn.down_pass(h2.expand(40_000, 2), 2, g)
    assert samples.shape == (40_000, 4)
    assert torch.allclose(samples.mean(0), expected, atol=0.01)
    # From layer 1 the pass is deterministic: the visible means themselves.
    s1 = torch.tensor([[1.0, 0.0, 1.0]])
    assert torch.allclose(dbn.down_pass(s1, 1, g), dbn.rbm(1).visible_mean(s1))


def test_sdae_build_uses_the_first_layers_decoder_and_corruption_kind() -> None:
    sdae = SDAE.build([8, 6, 4], "linear", Corruption(kind="zero", level=0.3))
    assert (sdae.dae(1).decoder, sdae.dae(2).decoder) == ("linear", "sigmoid")
    assert sdae.dae(2).corruption == Corruption(kind="zero", level=0.3, salt=1.0, pepper=0.0)
    x = torch.rand(3, 8)
    h1 = torch.sigmoid(x @ sdae.weight(1).T + sdae.layer(1).hidden_bias)
    assert torch.allclose(sdae.preactivation(x, 2), h1 @ sdae.weight(2).T + sdae.layer(2).hidden_bias)


@pytest.mark.parametrize("cls", [DBN, SDAE])
def test_config_round_trip(cls: type[DBN] | type[SDAE]) -> None:
    model = cls.build([7, 5, 3])
    rebuilt = cls.from_config(model.config())
    assert rebuilt.config() == model.config()
    assert rebuilt.layer_sizes == [7, 5, 3]
    with pytest.raises(UnitlensError, match="kind"):
        cls.from_config({**model.config(), "kind": "other"})
    with pytest.raises(UnitlensError, match="layers"):
        cls.from_config({"kind": cls.kind, "layers": []})
