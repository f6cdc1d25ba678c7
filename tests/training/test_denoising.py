"""Tests for the denoising auto-encoder's trainer: hand-written gradients, SGD, learning and resuming."""

from __future__ import annotations

import copy

import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE, Corruption, corrupt, default_corruption
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.sgd import SGDConfig, sgd_step

PARAMS = ("weight", "hidden_bias", "visible_bias")


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clone_generator(g: torch.Generator) -> torch.Generator:
    twin = torch.Generator()
    twin.set_state(g.get_state())
    return twin


def random_dae(decoder: str, corruption: Corruption, n_visible: int = 12, n_hidden: int = 7) -> DAE:
    dae = DAE(n_visible, n_hidden, decoder, corruption, generator=gen(1), dtype=torch.float64)
    with torch.no_grad():
        # Larger than the 0.01 initialisation so that every term of the gradient matters.
        dae.weight.copy_(0.5 * torch.randn(n_hidden, n_visible, generator=gen(2), dtype=torch.float64))
        dae.hidden_bias.copy_(torch.randn(n_hidden, generator=gen(3), dtype=torch.float64))
        dae.visible_bias.copy_(torch.randn(n_visible, generator=gen(4), dtype=torch.float64))
    return dae


def batch_for(decoder: str, n: int, seed: int) -> torch.Tensor:
    if decoder == "sigmoid":
        return torch.rand(n, 12, generator=gen(seed), dtype=torch.float64)
    return torch.randn(n, 12, generator=gen(seed), dtype=torch.float64)


CASES = [("sigmoid", default_corruption("binary")), ("linear", default_corruption("real"))]


@pytest.mark.parametrize(("decoder", "corruption"), CASES)
def test_step_follows_the_autograd_gradient(decoder: str, corruption: Corruption) -> None:
    dae = random_dae(decoder, corruption)
    reference = copy.deepcopy(dae)
    x = batch_for(decoder, 9, seed=5)
    g = gen(6)
    x_tilde = corrupt(x, corruption, clone_generator(g))  # the trainer draws the same corruption
    assert not torch.equal(x_tilde, x)
    expected_loss = reference.loss(x, x_tilde)
    grads = torch.autograd.grad(expected_loss, [getattr(reference, p) for p in PARAMS])

    # No momentum and a unit step: the parameters move by exactly minus the gradient.
    sgd = SGDConfig(learning_rate=1.0, momentum=0.0, initial_momentum=0.0)
    loss = DenoisingTrainer(dae, sgd, total_examples=100).step(x, g)
    assert loss == pytest.approx(expected_loss.item(), rel=1e-12)
    for name, grad in zip(PARAMS, grads, strict=True):
        delta = getattr(dae, name).detach() - getattr(reference, name).detach()
        torch.testing.assert_close(delta, -grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize(("decoder", "corruption"), CASES)
def test_steps_match_autograd_with_sgd_step(decoder: str, corruption: Corruption) -> None:
    """Momentum warm-up, the linear schedule, weight decay and batch-size changes, against a reference."""
    sgd = SGDConfig(
        learning_rate=0.2,
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_examples=20,
        weight_decay=0.01,
        schedule="linear",
    )
    total = 60
    dae = random_dae(decoder, corruption)
    reference = copy.deepcopy(dae)
    velocities = {p: torch.zeros_like(getattr(reference, p)) for p in PARAMS}
    trainer = DenoisingTrainer(dae, sgd, total)
    g, g_ref = gen(7), gen(7)
    seen = 0
    for i, n in enumerate([10, 10, 7, 10, 3]):
        x = batch_for(decoder, n, seed=20 + i)
        trainer.step(x, g)
        loss = reference.loss(x, corrupt(x, corruption, g_ref))
        grads = torch.autograd.grad(loss, [getattr(reference, p) for p in PARAMS])
        lr, momentum = sgd.learning_rate_at(seen, total), sgd.momentum_at(seen)
        for name, grad in zip(PARAMS, grads, strict=True):
            decay = sgd.weight_decay if name == "weight" else 0.0
            sgd_step(getattr(reference, name), -grad, velocities[name], lr, momentum, decay)
        seen += n
    assert trainer.examples_seen == seen
    for name in PARAMS:
        torch.testing.assert_close(getattr(dae, name), getattr(reference, name), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(trainer.velocities[name], velocities[name], rtol=1e-10, atol=1e-12)


def prototype_data(n: int, seed: int) -> torch.Tensor:
    """Binary 8x8 patterns: one of 6 fixed prototypes with 5% of the pixels flipped."""
    prototypes = (torch.rand(6, 64, generator=gen(100)) < 0.35).float()
    g = gen(seed)
    which = torch.randint(0, 6, (n,), generator=g)
    flips = torch.rand(n, 64, generator=g) < 0.05
    return (prototypes[which] - flips.float()).abs()


def test_training_lowers_held_out_cross_entropy() -> None:
    train, test = prototype_data(2000, seed=1), prototype_data(500, seed=2)
    dae = DAE(64, 32, "sigmoid", default_corruption("binary"), generator=gen(3))
    dae.set_visible_bias_from_mean(train.mean(dim=0))
    with torch.no_grad():
        before = dae.loss(test).item()
    trainer = DenoisingTrainer(dae, SGDConfig(learning_rate=0.1, batch_size=20), total_examples=40_000)
    g = gen(4)
    for idx in torch.randint(0, 2000, (300, 20), generator=g):
        trainer.step(train[idx], g)
    with torch.no_grad():
        after = dae.loss(test).item()
    # The mean predictor costs about 40 nats a pattern; the prototype alone would leave the 5% flips,
    # 64 * H(0.05) = 18.3 nats, and the code also carries some of the flips (about 13 after 300 steps).
    assert before > 35
    assert after < 0.5 * before


def test_linear_decoder_learns_low_rank_gaussian_data() -> None:
    mixing = torch.randn(4, 32, generator=gen(10)) / 2

    def sample(n: int, seed: int) -> torch.Tensor:
        g = gen(seed)
        return torch.randn(n, 4, generator=g) @ mixing + 0.1 * torch.randn(n, 32, generator=g)

    train, test = sample(2000, 1), sample(500, 2)
    dae = DAE(32, 16, "linear", default_corruption("real"), generator=gen(3))
    dae.set_visible_bias_from_mean(train.mean(dim=0))
    with torch.no_grad():
        before = dae.loss(test).item()
    trainer = DenoisingTrainer(dae, SGDConfig(learning_rate=0.01, batch_size=20), total_examples=40_000)
    g = gen(4)
    for idx in torch.randint(0, 2000, (300, 20), generator=g):
        trainer.step(train[idx], g)
    with torch.no_grad():
        after = dae.loss(test).item()
    # The mean predictor leaves the data's variance, about 17 per example; 4 directions explain most of it.
    assert after < 0.3 * before


@pytest.mark.parametrize(("decoder", "corruption"), CASES)
def test_resume_is_identical_to_an_uninterrupted_run(decoder: str, corruption: Corruption) -> None:
    sgd = SGDConfig(learning_rate=0.1, momentum_warmup_examples=30, schedule="linear", weight_decay=0.001)
    data = [batch_for(decoder, 10, seed=40 + i).float() for i in range(8)]

    def fresh() -> tuple[DAE, DenoisingTrainer]:
        dae = DAE(12, 7, decoder, corruption, generator=gen(1))
        return dae, DenoisingTrainer(dae, sgd, total_examples=80)

    dae, trainer = fresh()
    g = gen(5)
    losses = [trainer.step(x, g) for x in data]

    first, first_trainer = fresh()
    g1 = gen(5)
    resumed_losses = [first_trainer.step(x, g1) for x in data[:4]]
    model_state = copy.deepcopy(first.state_dict())
    trainer_state = first_trainer.state_dict()
    generator_state = g1.get_state()
    del first, first_trainer, g1

    second, second_trainer = fresh()
    second.load_state_dict(model_state)
    second_trainer.load_state_dict(trainer_state)
    g2 = torch.Generator()
    g2.set_state(generator_state)
    resumed_losses += [second_trainer.step(x, g2) for x in data[4:]]

    assert resumed_losses == losses
    assert second_trainer.examples_seen == trainer.examples_seen == 80
    for name in PARAMS:
        assert torch.equal(getattr(second, name), getattr(dae, name))


def test_state_dict_is_a_copy_and_is_validated() -> None:
    dae = DAE(12, 7)
    trainer = DenoisingTrainer(dae, SGDConfig(), total_examples=100)
    trainer.step(torch.rand(5, 12, generator=gen()), gen(1))
    state = trainer.state_dict()
    assert int(state["examples_seen"]) == 5
    state["velocity.weight"].zero_()
    assert trainer.velocities["weight"].abs().sum() > 0, "state_dict must not alias the velocities"
    other = DenoisingTrainer(DAE(12, 8), SGDConfig(), total_examples=100)
    with pytest.raises(UnitlensError, match=r"velocity.weight.*shape"):
        other.load_state_dict(state)
    del state["examples_seen"]
    with pytest.raises(UnitlensError, match="keys"):
        trainer.load_state_dict(state)


def test_bad_arguments_are_rejected() -> None:
    dae = DAE(12, 7)
    with pytest.raises(UnitlensError, match="total_examples"):
        DenoisingTrainer(dae, SGDConfig(), total_examples=0)
    trainer = DenoisingTrainer(dae, SGDConfig(), total_examples=10)
    with pytest.raises(UnitlensError, match=r"\(batch, 12\)"):
        trainer.step(torch.rand(4, 11), gen())
    with pytest.raises(UnitlensError, match=r"\(batch, 12\)"):
        trainer.step(torch.rand(12), gen())


@pytest.mark.parametrize(("decoder", "corruption"), CASES)
def test_sparsity_penalty_follows_the_autograd_gradient(decoder: str, corruption: Corruption) -> None:
    """The step descends loss + beta * sum_j KL(rho || q_j), q_j the batch mean of h_j on x~."""
    beta, rho = 0.7, 0.1
    dae = random_dae(decoder, corruption)
    reference = copy.deepcopy(dae)
    x = batch_for(decoder, 9, seed=5)
    g = gen(6)
    x_tilde = corrupt(x, corruption, clone_generator(g))
    q = torch.sigmoid(x_tilde @ reference.weight.t() + reference.hidden_bias).mean(dim=0)
    kl = (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()
    objective = reference.loss(x, x_tilde) + beta * kl
    grads = torch.autograd.grad(objective, [getattr(reference, p) for p in PARAMS])

    sgd = SGDConfig(learning_rate=1.0, momentum=0.0, initial_momentum=0.0)
    DenoisingTrainer(dae, sgd, total_examples=100, sparsity_cost=beta, sparsity_target=rho).step(x, g)
    for name, grad in zip(PARAMS, grads, strict=True):
        delta = getattr(dae, name).detach() - getattr(reference, name).detach()
        torch.testing.assert_close(delta, -grad, rtol=1e-10, atol=1e-12, msg=name)
    with pytest.raises(UnitlensError, match="sparsity"):
        DenoisingTrainer(dae, sgd, total_examples=100, sparsity_target=0.0)
