import pytest
import torch

from unitlens.analysis.control import shuffled_copy
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack


def _trained_like(stack: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in stack.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("cls", [DBN, SDAE])
def test_shuffled_copy_permutes_each_matrix_and_keeps_the_rest(cls: type[DBN] | type[SDAE]) -> None:
    stack: LayerStack = cls.build([8, 6, 5, 4])
    _trained_like(stack, 0)
    before = {k: v.clone() for k, v in stack.state_dict().items()}
    copy = shuffled_copy(stack, torch.Generator().manual_seed(1))
    assert type(copy) is cls and copy.config() == stack.config()
    for k in range(1, stack.n_layers + 1):
        w, ws = stack.weight(k), copy.weight(k)
        assert ws.shape == w.shape
        assert torch.equal(ws.flatten().sort().values, w.flatten().sort().values)
        assert not torch.equal(ws, w)
        assert torch.equal(copy.layer(k).hidden_bias, stack.layer(k).hidden_bias)
        assert torch.equal(copy.layer(k).visible_bias, stack.layer(k).visible_bias)
        assert ws.data_ptr() != w.data_ptr()
    for name, value in stack.state_dict().items():
        assert torch.equal(value, before[name]), name
    # The copy is a working stack.
    assert copy.preactivation(torch.rand(3, 8), 3).shape == (3, 4)


def test_same_seed_same_copy_other_seed_other_copy() -> None:
    stack = DBN.build([10, 7, 3])
    _trained_like(stack, 3)
    a = shuffled_copy(stack, torch.Generator().manual_seed(5))
    b = shuffled_copy(stack, torch.Generator().manual_seed(5))
    c = shuffled_copy(stack, torch.Generator().manual_seed(6))
    for k in (1, 2):
        assert torch.equal(a.weight(k), b.weight(k))
    assert not torch.equal(a.weight(1), c.weight(1))


def test_entries_move_across_rows_and_columns() -> None:
    # A whole-matrix permutation, not a per-row one: row sums change.
    stack = DBN.build([20, 20])
    with torch.no_grad():
        stack.weight(1).copy_(torch.arange(400.0).reshape(20, 20))
    w = shuffled_copy(stack, torch.Generator().manual_seed(0)).weight(1)
    assert not torch.equal(w.sum(dim=1), stack.weight(1).sum(dim=1))
    assert not torch.equal(w.sum(dim=0), stack.weight(1).sum(dim=0))


def test_rejects_non_stacks() -> None:
    with pytest.raises(UnitlensError, match="LayerStack"):
        shuffled_copy(torch.nn.Linear(2, 2), torch.Generator())  # type: ignore[type-var]
    with pytest.raises(UnitlensError, match="Generator"):
        shuffled_copy(DBN.build([2, 2]), 0)  # type: ignore[arg-type]
