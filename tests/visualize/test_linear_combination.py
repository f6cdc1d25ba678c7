import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.visualize.linear_combination import linear_combination, top_k_mask


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def _top_k_brute(row: list[float], k: int) -> list[int]:
    """Indices of the k largest |w|, ties to the lower index."""
    return sorted(range(len(row)), key=lambda i: (-abs(row[i]), i))[:k]


def _combination_brute(stack: LayerStack, layer: int, k: int) -> torch.Tensor:
    """Images of every unit of ``layer`` by Python loops over units and the kept lower units."""
    images = stack.weight(1).detach().clone()
    for level in range(2, layer + 1):
        W = stack.weight(level).detach()
        rows = []
        for u in range(W.shape[0]):
            image = torch.zeros(images.shape[1])
            for j in _top_k_brute(W[u].tolist(), k):
                image += W[u, j] * images[j]
            rows.append(image)
        images = torch.stack(rows)
    return images


def test_top_k_mask_keeps_the_k_largest_magnitudes_with_their_signs() -> None:
    w = torch.randn(20, 15, generator=torch.Generator().manual_seed(0))
    for k in (1, 4, 14):
        masked = top_k_mask(w, k)
        assert (masked != 0).sum(dim=1).tolist() == [k] * 20
        for u in range(20):
            kept = _top_k_brute(w[u].tolist(), k)
            expected = torch.zeros(15)
            expected[kept] = w[u, kept]
            assert torch.equal(masked[u], expected)


def test_top_k_mask_breaks_ties_towards_the_lower_index() -> None:
    w = torch.tensor([[1.0, -1.0, 1.0, 0.5], [0.5, -2.0, 2.0, -2.0]])
    assert torch.equal(top_k_mask(w, 2), torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, -2.0, 2.0, 0.0]]))
    assert torch.equal(top_k_mask(w, 1), torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, -2.0, 0.0, 0.0]]))


def test_top_k_mask_with_k_at_least_the_width_keeps_everything_in_a_copy() -> None:
    w = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    for k in (5, 100):
        out = top_k_mask(w, k)
        assert torch.equal(out, w) and out.data_ptr() != w.data_ptr()


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k_is_reported(k: object) -> None:
    with pytest.raises(UnitlensError, match="k "):
        top_k_mask(torch.ones(2, 3), k)  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="k "):
        linear_combination(DBN.build([4, 3, 2]), 2, k=k)  # type: ignore[arg-type]


def test_hand_computed_layer_2_image() -> None:
    dbn = DBN.build([2, 3, 1])
    with torch.no_grad():
        dbn.weight(1).copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        dbn.weight(2).copy_(torch.tensor([[3.0, -2.0, 0.5]]))
    # K = 2 keeps units 0 and 1: 3·(1, 0) - 2·(0, 1); biases play no part.
    assert torch.equal(linear_combination(dbn, 2, k=2), torch.tensor([[3.0, -2.0]]))
    assert torch.equal(linear_combination(dbn, 2, k=3), torch.tensor([[3.5, -1.5]]))


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_layers_2_and_3_equal_the_brute_force_recursion(kind: str, k: int) -> None:
    sizes = [12, 8, 7, 5]
    stack: LayerStack = DBN.build(sizes) if kind == "dbn" else SDAE.build(sizes)
    _randomise(stack)
    for layer in (2, 3):
        expected = _combination_brute(stack, layer, k)
        assert torch.allclose(linear_combination(stack, layer, k=k), expected, atol=1e-5)
        assert torch.allclose(
            linear_combination(stack, layer, [3, 0, 3], k=k), expected[[3, 0, 3]], atol=1e-5
        )


def test_k_at_least_the_layer_below_gives_the_full_product() -> None:
    dbn = DBN.build([12, 8, 7, 5])
    _randomise(dbn, seed=2)
    W1, W2, W3 = (dbn.weight(j).detach() for j in (1, 2, 3))
    assert torch.allclose(linear_combination(dbn, 2, k=8), W2 @ W1, atol=1e-5)
    assert torch.allclose(linear_combination(dbn, 3, k=100), W3 @ W2 @ W1, atol=1e-5)
    # K = 7 is all of layer 2 but not all of layer 1, so layer 3's images differ from the full product.
    assert not torch.allclose(linear_combination(dbn, 3, k=7), W3 @ W2 @ W1, atol=1e-3)


def test_layer_1_gives_the_filters() -> None:
    dbn = DBN.build([6, 4, 3])
    _randomise(dbn, seed=3)
    images = linear_combination(dbn, 1, [2, 1], k=1)
    assert torch.equal(images, dbn.weight(1).detach()[[2, 1]])
    assert not images.requires_grad
    assert linear_combination(dbn, 2).shape == (3, 6)
    with pytest.raises(UnitlensError, match=r"1\.\.2"):
        linear_combination(dbn, 3)
