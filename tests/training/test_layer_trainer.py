"""The one trainer protocol: CD and denoising trainers share the momentum update and the state format."""

from __future__ import annotations

import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE
from unitlens.models.rbm import RBM
from unitlens.training.contrastive_divergence import CDTrainer
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.sgd import LayerTrainer, SGDConfig, sgd_step

pytestmark = pytest.mark.usefixtures("one_thread")

SGD = SGDConfig(learning_rate=0.1, momentum_warmup_examples=8, weight_decay=0.01)
COMMON = {"velocity.weight", "velocity.hidden_bias", "velocity.visible_bias", "examples_seen"}


def trainers() -> list[LayerTrainer]:
    g = torch.Generator().manual_seed(0)
    return [
        CDTrainer(RBM(6, 4, generator=g, dtype=torch.float64), SGD, 100),
        CDTrainer(RBM(6, 4, generator=g, dtype=torch.float64), SGD, 100, persistent=True),
        DenoisingTrainer(DAE(6, 4, generator=g, dtype=torch.float64), SGD, 100),
    ]


def test_factored_ascent_is_the_product() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 4, generator=g, dtype=torch.float64),
    )
    p1, v1 = (
        torch.randn(3, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
    )
    p2, v2 = p1.clone(), v1.clone()
    sgd_step(p1, (a, b), v1, 0.1, 0.9, 0.01, scale=0.2)
    sgd_step(p2, 0.2 * a.T @ b, v2, 0.1, 0.9, 0.01)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(p1, p2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_trainer_has_the_same_state_keys_and_resumes(index: int) -> None:
    trainer = trainers()[index]
    x = torch.rand(5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    trainer.step(x, torch.Generator().manual_seed(3))
    state = trainer.state_dict()
    assert set(state) >= COMMON and set(state) - COMMON == set(type(trainer).extra_state_keys)
    assert int(state["examples_seen"]) == 5
    fresh = trainers()[index]
    fresh.load_state_dict(state)
    assert fresh.examples_seen == 5
    for name, v in trainer.velocities.items():
        assert torch.equal(fresh.velocities[name], v)


@pytest.mark.parametrize("index", [0, 2])
def test_states_of_another_trainer_or_version_are_refused_clearly(index: int) -> None:
    """Not a KeyError: a message that names the keys and says what to do."""
    trainer, other = trainers()[index], trainers()[2 - index]
    with pytest.raises(UnitlensError, match=r"(missing|unknown) \['chain'\].*delete the in-progress"):
        trainer.load_state_dict(other.state_dict())
    with pytest.raises(UnitlensError, match=r"missing \[.*'examples_seen', 'velocity\.hidden_bias'"):
        trainer.load_state_dict({"velocity.weight": torch.zeros(4, 6)})
    with pytest.raises(UnitlensError, match="examples_seen"):
        trainer.load_state_dict({**trainer.state_dict(), "examples_seen": torch.zeros(2)})


def test_cd_state_with_the_old_velocity_keys_still_loads() -> None:
    trainer = trainers()[0]
    trainer.step(torch.rand(5, 6, dtype=torch.float64), torch.Generator().manual_seed(3))
    state = trainer.state_dict()
    old = {
        "weight_velocity": state["velocity.weight"],
        "hidden_bias_velocity": state["velocity.hidden_bias"],
        "visible_bias_velocity": state["velocity.visible_bias"],
        "chain": state["chain"],
        "examples_seen": state["examples_seen"],
    }
    fresh = trainers()[0]
    fresh.load_state_dict(old)
    assert fresh.examples_seen == 5
    assert torch.equal(fresh.velocities["weight"], trainer.velocities["weight"])
