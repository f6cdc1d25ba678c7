"""Stochastic gradient steps with momentum, weight decay and a learning-rate schedule.

The layer trainers (contrastive divergence, denoising) compute their own gradients without autograd
for speed, then hand them to :func:`sgd_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unitlens.errors import UnitlensError

SCHEDULES = ("constant", "linear", "inverse_time")


@dataclass(frozen=True)
class SGDConfig:
    """How one layer is trained.

    Attributes:
        learning_rate: step size at the start. Per-example gradients are averaged over the batch.
        batch_size: examples per step (100 in Hinton's practical guide and the period's code).
        momentum: final momentum; Hinton's guide uses 0.9 once the weights settle.
        initial_momentum: momentum for the first ``momentum_warmup_examples`` examples (0.5 in the guide:
            large early gradients with high momentum make the weights oscillate).
        momentum_warmup_examples: examples trained with ``initial_momentum``.
        weight_decay: L2 penalty coefficient on the weights (not the biases).
        schedule: ``constant``; ``linear`` decay to 0 at the end of training; ``inverse_time``
            lr / (1 + examples / decay_examples).
        decay_examples: the time constant of ``inverse_time``.
    """

    learning_rate: float = 0.05
    batch_size: int = 100
    momentum: float = 0.9
    initial_momentum: float = 0.5
    momentum_warmup_examples: int = 20_000
    weight_decay: float = 0.0
    schedule: str = "constant"
    decay_examples: int = 100_000

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise UnitlensError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1:
            raise UnitlensError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("momentum", "initial_momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise UnitlensError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise UnitlensError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise UnitlensError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.momentum_warmup_examples < 0 or self.decay_examples < 1:
            raise UnitlensError("momentum_warmup_examples must be >= 0 and decay_examples >= 1")

    def learning_rate_at(self, examples_seen: int, total_examples: int) -> float:
        """The step size after ``examples_seen`` of ``total_examples`` training examples."""
        if self.schedule == "linear":
            return self.learning_rate * max(0.0, 1.0 - examples_seen / max(total_examples, 1))
        if self.schedule == "inverse_time":
            return self.learning_rate / (1.0 + examples_seen / self.decay_examples)
        return self.learning_rate

    def momentum_at(self, examples_seen: int) -> float:
        """Momentum after ``examples_seen`` training examples."""
        return self.initial_momentum if examples_seen < self.momentum_warmup_examples else self.momentum


@torch.no_grad()
def sgd_step(
    param: Tensor,
    ascent: Tensor,
    velocity: Tensor,
    learning_rate: float,
    momentum: float,
    weight_decay: float = 0.0,
) -> None:
    """One momentum step, in place, in the direction ``ascent`` (the negative gradient).

    velocity <- momentum * velocity + (ascent - weight_decay * param);  param <- param + lr * velocity.

    Args:
        param: the parameter, updated in place.
        ascent: same shape as ``param``; the batch-averaged direction that lowers the loss.
        velocity: same shape; the momentum buffer, updated in place.
    """
    velocity.mul_(momentum).add_(ascent)
    if weight_decay:
        velocity.add_(param, alpha=-weight_decay)
    param.add_(velocity, alpha=learning_rate)


def check_sparsity(cost: float, target: float) -> None:
    """Refuse a sparsity penalty with a negative cost or a target mean activation outside (0, 1)."""
    if cost < 0 or not 0 < target < 1:
        raise UnitlensError(f"sparsity_cost must be >= 0 and sparsity_target in (0, 1), got {cost}, {target}")


def sparsity_pull(h: Tensor, target: float, cost: float) -> Tensor:
    """Minus the gradient of ``cost * sum_j KL(target || q_j)`` with respect to each unit's mean activation
    ``q_j = mean_n h_nj``, divided by the batch size: (H,) ``cost / B * (rho / q - (1 - rho) / (1 - q))``.

    Multiplied by ``h (1 - h)`` it is the descent direction on each example's pre-sigmoid activation (Lee,
    Ekanadham & Ng 2008); RBMs and DAEs both use it.

    Args:
        h: (B, H) hidden probabilities of the batch.
    """
    q = h.mean(dim=0).clamp_(1e-4, 1 - 1e-4)
    return (target / q - (1 - target) / (1 - q)).mul_(cost / h.shape[0])
