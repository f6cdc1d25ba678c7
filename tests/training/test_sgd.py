import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.training.sgd import SGDConfig, sgd_step


def test_momentum_step_matches_the_formula() -> None:
    p, v = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5])
    g = torch.tensor([0.1, 0.2])
    sgd_step(p, g, v, learning_rate=0.1, momentum=0.9, weight_decay=0.01)
    expected_v = 0.9 * torch.tensor([0.5, 0.5]) + g - 0.01 * torch.tensor([1.0, -2.0])
    assert torch.allclose(v, expected_v)
    assert torch.allclose(p, torch.tensor([1.0, -2.0]) + 0.1 * expected_v)


def test_schedules() -> None:
    assert SGDConfig(learning_rate=1.0).learning_rate_at(50, 100) == 1.0
    assert SGDConfig(learning_rate=1.0, schedule="linear").learning_rate_at(25, 100) == pytest.approx(0.75)
    inv = SGDConfig(learning_rate=1.0, schedule="inverse_time", decay_examples=10)
    assert inv.learning_rate_at(10, 100) == pytest.approx(0.5)
    c = SGDConfig(momentum=0.9, initial_momentum=0.5, momentum_warmup_examples=100)
    assert (c.momentum_at(99), c.momentum_at(100)) == (0.5, 0.9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0},
        {"batch_size": 0},
        {"momentum": 1.0},
        {"weight_decay": -1},
        {"schedule": "cosine"},
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(UnitlensError):
        SGDConfig(**kwargs)  # type: ignore[arg-type]
