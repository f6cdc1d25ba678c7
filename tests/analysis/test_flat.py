import pytest
import torch

from unitlens.analysis.flat import DEAD_GRADIENT, PLATEAU_SPREAD, flat_units
from unitlens.errors import UnitlensError


def _flags(**changes: torch.Tensor) -> dict[str, list[bool]]:
    u, r = 4, 3
    args = {
        "start_gradient_norm": torch.ones(u, r),
        "reference_gradient_norm": 1.0,
        "activation": torch.tensor([[5.0, 4.0, 3.0]] * u),
        "restart_mean_cosine": torch.full((u,), 0.99),
        "data_min": torch.full((u,), -3.0),
        "data_max": torch.full((u,), 2.0),
        "threshold": 0.9,
    }
    args.update(changes)
    f = flat_units(**args)  # type: ignore[arg-type]
    return {"dead": f.dead.tolist(), "plateau": f.plateau.tolist(), "flagged": f.flagged.tolist()}


def test_healthy_units_are_not_flagged() -> None:
    assert _flags()["flagged"] == [False] * 4


def test_dead_by_gradient_or_by_data_range() -> None:
    g = torch.ones(4, 3)
    g[1] = DEAD_GRADIENT * 0.5  # every start of unit 1 has a vanishing gradient
    g[2, 0] = 0.0  # one vanishing start alone does not make a unit dead
    data_max = torch.full((4,), 2.0)
    data_max[3] = -3.0 + 1e-3  # unit 3 is constant over the data set
    flags = _flags(start_gradient_norm=g, data_max=data_max)
    assert flags["dead"] == [False, True, False, True]


def test_plateau_needs_equal_activations_and_disagreeing_patterns() -> None:
    act = torch.tensor([[5.0, 4.0, 3.0], [2.0, 2.0, 2.0 - PLATEAU_SPREAD], [2.0, 2.0, 2.0], [2.0, 2.0, 2.0]])
    cos = torch.tensor([0.5, 0.5, 0.99, 0.5])
    cos_flags = _flags(activation=act, restart_mean_cosine=cos)
    # Unit 0 disagrees but reaches different activations (several optima, a finding, not a flat unit);
    # unit 2 agrees; units 1 and 3 reach one activation with different patterns: a plateau.
    assert cos_flags["plateau"] == [False, True, False, True]
    assert cos_flags["dead"] == [False] * 4


def test_shapes_are_checked() -> None:
    with pytest.raises(UnitlensError, match="data_min"):
        _flags(data_min=torch.zeros(3))
