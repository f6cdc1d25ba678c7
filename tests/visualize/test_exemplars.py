import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.visualize.exemplars import top_exemplars


def _stack(kind: str) -> LayerStack:
    g = torch.Generator().manual_seed(0)
    stack: LayerStack = DBN.build([10, 8, 6]) if kind == "dbn" else SDAE.build([10, 8, 6])
    with torch.no_grad():
        for p in stack.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return stack


def _brute(stack: LayerStack, layer: int, x: torch.Tensor, n_top: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        acts = stack.preactivation(x, layer).t()  # (H, n)
    order = torch.sort(acts, dim=1, descending=True, stable=True).indices[:, :n_top]
    return order, acts.gather(1, order)


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
@pytest.mark.parametrize("layer", [1, 2])
def test_exemplars_equal_a_full_sort_whatever_the_batch_size(kind: str, layer: int) -> None:
    stack = _stack(kind)
    x = torch.rand(103, 10, generator=torch.Generator().manual_seed(1))
    indices, activations = _brute(stack, layer, x, 9)
    for batch_size in (1, 7, 50, 1000):
        result = top_exemplars(stack, layer, x, batch_size=batch_size)
        assert torch.equal(result.indices, indices)
        assert torch.allclose(result.activations, activations, atol=1e-6)
        assert result.indices.dtype == torch.int64 and result.layer == layer
    assert torch.all(activations[:, :-1] >= activations[:, 1:])


def test_selected_units_and_ties_go_to_the_earlier_row() -> None:
    stack = _stack("dbn")
    base = torch.rand(20, 10, generator=torch.Generator().manual_seed(2))
    x = torch.cat((base, base, base))  # every activation appears three times
    result = top_exemplars(stack, 2, x, [5, 0], n_top=6, batch_size=8)
    indices, _ = _brute(stack, 2, x, 6)
    assert torch.equal(result.indices, indices[[5, 0]])
    assert result.units.tolist() == [5, 0]
    # Each top activation's three copies come in row order: i, i + 20, i + 40.
    first = result.indices[:, 0]
    assert torch.equal(result.indices[:, 1:3], torch.stack((first + 20, first + 40), dim=1))


def test_bad_arguments_are_reported() -> None:
    stack = _stack("dbn")
    x = torch.rand(5, 10)
    with pytest.raises(UnitlensError, match="exceeds the 5 inputs"):
        top_exemplars(stack, 1, x, n_top=6)
    with pytest.raises(UnitlensError, match=r"\(n, 10\)"):
        top_exemplars(stack, 1, torch.rand(5, 9))
    with pytest.raises(UnitlensError, match="batch_size"):
        top_exemplars(stack, 1, x, batch_size=0)
    with pytest.raises(UnitlensError, match="n_top"):
        top_exemplars(stack, 1, x, n_top=0)
