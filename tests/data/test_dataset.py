import math

import pytest
import torch

from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.errors import UnitlensError


def test_dataset_norm_is_the_mean_row_norm() -> None:
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert dataset_norm(x) == pytest.approx(3.0)
    with pytest.raises(UnitlensError):
        dataset_norm(torch.zeros(0, 3))


def _data(**kw: object) -> Dataset:
    args: dict[str, object] = {
        "x_train": torch.rand(5, 4),
        "y_train": torch.arange(5),
        "x_test": torch.rand(2, 4),
        "y_test": torch.arange(2),
        "image_shape": (2, 2),
        "rho": 1.0,
        "source": "test",
    }
    args.update(kw)
    return Dataset(**args)  # type: ignore[arg-type]


def test_shapes_and_dtypes_are_checked() -> None:
    assert _data().n_inputs == 4
    with pytest.raises(UnitlensError, match="x_train"):
        _data(x_train=torch.rand(5, 3))
    with pytest.raises(UnitlensError, match="x_test"):
        _data(x_test=torch.rand(2, 4, dtype=torch.float64))
    with pytest.raises(UnitlensError, match="y_train"):
        _data(y_train=torch.arange(4))
    with pytest.raises(UnitlensError, match="kind"):
        _data(kind="ternary")


def test_original_units_undo_the_standardisation() -> None:
    d = _data(pixel_mean=torch.full((4,), 2.0), pixel_scale=torch.full((4,), 3.0), kind="real")
    assert torch.allclose(d.to_original_units(torch.ones(1, 4)), torch.full((1, 4), 5.0))
    assert math.isclose(float(_data().to_original_units(torch.ones(1, 4)).sum()), 4.0)
