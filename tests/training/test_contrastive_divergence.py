"""CD-k and PCD: the fused update equals a plain reference written with the RBM's public methods and
sgd_step; training raises the exact log-likelihood; a resumed run is identical to an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.training.contrastive_divergence import CDTrainer
from unitlens.training.likelihood import log_likelihood, log_partition_exact
from unitlens.training.sgd import SGDConfig, sgd_step

pytestmark = pytest.mark.usefixtures("one_thread")


def small_rbm(visible: str = "bernoulli", n_visible: int = 7, n_hidden: int = 5, seed: int = 0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, generator=g, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(0.5 * torch.randn(n_hidden, n_visible, generator=g, dtype=torch.float64))
        rbm.hidden_bias.copy_(0.3 * torch.randn(n_hidden, generator=g, dtype=torch.float64))
        rbm.visible_bias.copy_(0.3 * torch.randn(n_visible, generator=g, dtype=torch.float64))
    return rbm


def batches(visible: str, n: int, batch: int, n_visible: int = 7, seed: int = 1) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    if visible == "bernoulli":
        x = torch.rand(n * batch, n_visible, generator=g, dtype=torch.float64)
    else:
        x = torch.randn(n * batch, n_visible, generator=g, dtype=torch.float64)
    return list(x.split(batch))


class ReferenceCD:
    """CD-k / PCD written plainly with the RBM's public methods, separate gradient products and sgd_step."""

    def __init__(self, rbm: RBM, sgd: SGDConfig, total: int, k: int, persistent: bool) -> None:
        self.rbm, self.sgd, self.total, self.k, self.persistent = rbm, sgd, total, k, persistent
        self.velocities = [torch.zeros_like(p) for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias)]
        self.chain: Tensor | None = None
        self.seen = 0

    @torch.no_grad()
    def step(self, v0: Tensor, g: torch.Generator) -> float:
        rbm = self.rbm
        h_pos = rbm.hidden_probs(v0)
        if self.persistent:
            if self.chain is None:
                self.chain = rbm.sample_hidden(v0, g)
            for _ in range(self.k):
                v_neg = rbm.sample_visible(self.chain, g)
                h_neg = rbm.hidden_probs(v_neg)
                self.chain = rbm.sample_hidden(v_neg, g)
            error = float((v0 - rbm.reconstruct(v0)).square().sum(dim=1).mean())
        else:
            h = rbm.sample_hidden(v0, g)
            for i in range(self.k):
                v_neg = rbm.visible_mean(h)
                h_neg = rbm.hidden_probs(v_neg)
                if i + 1 < self.k:
                    h = rbm.sample_hidden(v_neg, g)
            error = float((v0 - v_neg).square().sum(dim=1).mean())
        grads = (
            h_pos.T @ v0 / v0.shape[0] - h_neg.T @ v_neg / v_neg.shape[0],
            h_pos.mean(dim=0) - h_neg.mean(dim=0),
            v0.mean(dim=0) - v_neg.mean(dim=0),
        )
        lr = self.sgd.learning_rate_at(self.seen, self.total)
        momentum = self.sgd.momentum_at(self.seen)
        params = (rbm.weight, rbm.hidden_bias, rbm.visible_bias)
        for index, (param, grad, velocity) in enumerate(zip(params, grads, self.velocities, strict=True)):
            decay = self.sgd.weight_decay if index == 0 else 0.0
            sgd_step(param, grad, velocity, lr, momentum, decay)
        self.seen += v0.shape[0]
        return error


SGD = SGDConfig(
    learning_rate=0.1, momentum=0.9, initial_momentum=0.5, momentum_warmup_examples=12, weight_decay=0.01
)


@pytest.mark.parametrize(
    ("visible", "k", "persistent"),
    [
        ("bernoulli", 1, False),
        ("bernoulli", 3, False),
        ("gaussian", 1, False),
        ("bernoulli", 2, True),
        ("gaussian", 1, True),
    ],
)
def test_update_equals_the_plain_reference(visible: str, k: int, persistent: bool) -> None:
    fast_rbm, slow_rbm = small_rbm(visible), small_rbm(visible)
    trainer = CDTrainer(fast_rbm, SGD, 100, k=k, persistent=persistent)
    reference = ReferenceCD(slow_rbm, SGD, 100, k, persistent)
    g_fast, g_slow = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    # Batch sizes change on the way: a PCD chain keeps the first batch's size (6 chains).
    for v0 in batches(visible, 4, 6) + batches(visible, 2, 4, seed=2):
        error = trainer.step(v0, g_fast)
        expected = reference.step(v0, g_slow)
        assert error == pytest.approx(expected, rel=1e-10)
        for fast, slow in zip(fast_rbm.parameters(), slow_rbm.parameters(), strict=True):
            torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    assert trainer.examples_seen == 32
    if persistent:
        assert trainer.chain is not None and reference.chain is not None
        assert torch.equal(trainer.chain, reference.chain)


def test_learning_rate_schedule_is_followed() -> None:
    rbm = small_rbm()
    trainer = CDTrainer(rbm, SGDConfig(learning_rate=0.1, schedule="linear"), total_examples=6)
    g = torch.Generator().manual_seed(0)
    first, second = batches("bernoulli", 2, 6)
    trainer.step(first, g)
    after_first = [p.detach().clone() for p in rbm.parameters()]
    assert not torch.equal(after_first[0], small_rbm().weight)
    trainer.step(second, g)  # 6 of 6 examples seen: the linear schedule's rate is 0
    for before, now in zip(after_first, rbm.parameters(), strict=True):
        assert torch.equal(before, now)


def toy_data() -> Tensor:
    """(400, 10) binary data: noisy copies of four prototypes, a distribution an RBM can learn quickly."""
    g = torch.Generator().manual_seed(0)
    prototypes = torch.tensor(
        [
            [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
            [1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
            [1, 1, 0, 0, 1, 1, 0, 0, 1, 1],
        ],
        dtype=torch.float32,
    )
    x = prototypes[torch.randint(4, (400,), generator=g)]
    flips = torch.rand(x.shape, generator=g) < 0.05
    return torch.where(flips, 1 - x, x)


@pytest.mark.parametrize("persistent", [False, True])
def test_training_raises_the_exact_log_likelihood(persistent: bool) -> None:
    x = toy_data()
    g = torch.Generator().manual_seed(1)
    rbm = RBM(10, 8, generator=g)
    rbm.set_visible_bias_from_mean(x.mean(dim=0))
    before = float(log_likelihood(rbm, x, log_partition_exact(rbm)).mean())
    # Momentum 0.5 and a decaying rate: PCD's few persistent chains oscillate with momentum 0.9 here.
    sgd = SGDConfig(learning_rate=0.1, batch_size=20, momentum=0.5, schedule="linear")
    trainer = CDTrainer(rbm, sgd, total_examples=12_000, persistent=persistent)
    errors = []
    for _ in range(30):
        order = torch.randperm(400, generator=g)
        errors += [trainer.step(x[order[i : i + 20]], g) for i in range(0, 400, 20)]
    after = float(log_likelihood(rbm, x, log_partition_exact(rbm)).mean())
    # The data-mean initialisation gives about -6.4 nats (independent pixels); the best possible is about
    # -3.4 (the entropy of four prototypes with 5% bit noise: log 4 + 10 x 0.2). Measured: CD-1 about -3.9,
    # PCD about -4.5, over five seeds.
    assert after > before + 1.2
    assert sum(errors[-20:]) < 0.6 * sum(errors[:20])


def test_gaussian_training_raises_the_exact_log_density() -> None:
    g = torch.Generator().manual_seed(2)
    # Two clusters in 6 dimensions, unit noise: a mixture a few binary hidden units can capture.
    centres = torch.tensor([[2.0, 2.0, 2.0, -2.0, -2.0, -2.0], [-2.0, 2.0, -2.0, 2.0, -2.0, 2.0]])
    x = centres[torch.randint(2, (400,), generator=g)] + torch.randn(400, 6, generator=g)
    rbm = RBM(6, 4, "gaussian", generator=g)
    rbm.set_visible_bias_from_mean(x.mean(dim=0))
    before = float(log_likelihood(rbm, x, log_partition_exact(rbm)).mean())
    trainer = CDTrainer(rbm, SGDConfig(learning_rate=0.01, batch_size=20), total_examples=8_000)
    for _ in range(20):
        order = torch.randperm(400, generator=g)
        for i in range(0, 400, 20):
            trainer.step(x[order[i : i + 20]], g)
    after = float(log_likelihood(rbm, x, log_partition_exact(rbm)).mean())
    # From about -16.5 (one broad Gaussian at the mean) to near the mixture's entropy bound,
    # 3 log(2πe) + log 2 = 9.2 nats: measured about -9.2 over five seeds.
    assert after > before + 5.0


@pytest.mark.parametrize("persistent", [False, True])
def test_resume_is_exact(persistent: bool) -> None:
    data = batches("bernoulli", 10, 8, seed=3)
    sgd = SGDConfig(learning_rate=0.05, momentum_warmup_examples=30, weight_decay=1e-3)

    straight = small_rbm()
    trainer = CDTrainer(straight, sgd, 80, persistent=persistent)
    g = torch.Generator().manual_seed(7)
    for v0 in data:
        trainer.step(v0, g)

    first = small_rbm()
    trainer = CDTrainer(first, sgd, 80, persistent=persistent)
    g = torch.Generator().manual_seed(7)
    for v0 in data[:4]:
        trainer.step(v0, g)
    saved = (trainer.state_dict(), {k: t.clone() for k, t in first.state_dict().items()}, g.get_state())
    trainer.step(data[4], g)  # work after the snapshot must not leak into it

    resumed = small_rbm(seed=99)
    trainer = CDTrainer(resumed, sgd, 80, persistent=persistent)
    trainer_state, rbm_state, generator_state = saved
    resumed.load_state_dict(rbm_state)
    trainer.load_state_dict(trainer_state)
    assert trainer.examples_seen == 32
    g = torch.Generator()
    g.set_state(generator_state)
    for v0 in data[4:]:
        trainer.step(v0, g)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_arguments_and_states_are_rejected() -> None:
    rbm = small_rbm()
    with pytest.raises(UnitlensError, match="k"):
        CDTrainer(rbm, SGD, 10, k=0)
    with pytest.raises(UnitlensError, match="total_examples"):
        CDTrainer(rbm, SGD, 0)
    trainer = CDTrainer(rbm, SGD, 10)
    with pytest.raises(UnitlensError, match="7"):
        trainer.step(torch.zeros(4, 6, dtype=torch.float64), torch.Generator())
    state = trainer.state_dict()
    assert state["chain"].shape == (0, 5)
    with pytest.raises(UnitlensError, match=r"velocity\.weight.*shape"):
        CDTrainer(small_rbm(n_hidden=6), SGD, 10).load_state_dict(state)
    with pytest.raises(UnitlensError, match="missing"):
        trainer.load_state_dict({k: v for k, v in state.items() if k != "chain"})
    pcd = CDTrainer(small_rbm(), SGD, 10, persistent=True)
    pcd.step(batches("bernoulli", 1, 4)[0], torch.Generator().manual_seed(0))
    with pytest.raises(UnitlensError, match="persistent"):
        trainer.load_state_dict(pcd.state_dict())


def test_sparsity_penalty_pulls_mean_activations_to_the_target() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(400, 20, generator=g) < 0.5).float()
    means = {}
    for cost in (0.0, 2.0):
        rbm = RBM(20, 30, generator=torch.Generator().manual_seed(1))
        trainer = CDTrainer(
            rbm,
            SGDConfig(learning_rate=0.05, momentum_warmup_examples=0),
            40_000,
            sparsity_cost=cost,
            sparsity_target=0.05,
        )
        for i in range(400):
            trainer.step(x[(i % 20) * 20 : (i % 20) * 20 + 20], g)
        means[cost] = float(rbm.hidden_probs(x).detach().mean())
    assert means[2.0] < 0.12 < means[0.0]
    with pytest.raises(UnitlensError, match="sparsity"):
        CDTrainer(RBM(4, 3), SGDConfig(), 10, sparsity_target=1.5)
