import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.visualize.filters import first_layer_filters, unit_indices


def test_first_layer_filters_are_copies_of_the_rows_of_w1() -> None:
    for stack in (DBN.build([6, 4, 3]), SDAE.build([6, 4, 3])):
        W1 = stack.weight(1).detach().clone()
        filters = first_layer_filters(stack)
        assert torch.equal(filters, W1)
        assert torch.equal(first_layer_filters(stack, [3, 0]), W1[[3, 0]])
        assert not filters.requires_grad
        filters.zero_()  # a copy: the model is untouched
        assert torch.equal(stack.weight(1).detach(), W1)


def test_unit_indices_accepts_none_int_sequences_and_integer_tensors() -> None:
    dbn = DBN.build([6, 4, 3])
    assert unit_indices(dbn, 1).tolist() == [0, 1, 2, 3]
    assert unit_indices(dbn, 2).tolist() == [0, 1, 2]
    assert unit_indices(dbn, 1, 2).tolist() == [2]
    assert unit_indices(dbn, 1, (3, 1, 3)).tolist() == [3, 1, 3]
    index = unit_indices(dbn, 1, torch.tensor([1, 2], dtype=torch.int32))
    assert index.dtype == torch.int64 and index.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ([4], r"0\.\.3"),
        ([-1], r"0\.\.3"),
        ([], "no unit"),
        ([1.0], "integers"),
        ([True], "integers"),
        (torch.tensor([True, False]), "integer tensor"),
        (torch.tensor([1.0]), "integer tensor"),
        (torch.tensor([[1]]), "1-D"),
    ],
)
def test_bad_units_are_reported(units: object, message: str) -> None:
    with pytest.raises(UnitlensError, match=message):
        unit_indices(DBN.build([6, 4, 3]), 1, units)  # type: ignore[arg-type]


def test_bad_layer_is_reported() -> None:
    with pytest.raises(UnitlensError, match=r"1\.\.2"):
        unit_indices(DBN.build([6, 4, 3]), 0)


def test_numpy_integers_are_unit_indices() -> None:
    import numpy as np

    assert unit_indices(DBN.build([6, 4, 3]), 1, [np.int64(2), np.int32(0)]).tolist() == [2, 0]
