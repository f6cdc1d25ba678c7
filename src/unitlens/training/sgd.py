"""Stochastic gradient steps with momentum, weight decay and a learning-rate schedule; the layer trainer base.

The layer trainers (contrastive divergence, denoising) compute their own gradients without autograd for
speed. Both derive from :class:`LayerTrainer`, the protocol the greedy loop drives: ``step(x, generator)``
on a batch, ``state_dict()`` / ``load_state_dict()`` with the same key names, the same sparsity settings,
and one momentum update, :func:`sgd_step`, for all three parameters of a layer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.stack import SigmoidLayer
from unitlens.training.collective import SINGLE, Reducer

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
    ascent: Tensor | tuple[Tensor, Tensor],
    velocity: Tensor,
    learning_rate: float,
    momentum: float,
    weight_decay: float = 0.0,
    *,
    scale: float = 1.0,
) -> None:
    """One momentum step, in place, in the direction ``ascent`` (the negative gradient).

    velocity <- momentum * velocity + scale * ascent - weight_decay * param;  param <- param + lr * velocity.

    Args:
        param: the parameter, updated in place.
        ascent: the batch-averaged direction that lowers the loss: a tensor of ``param``'s shape, or a pair
            (A, B) of (n, H) and (n, V) factors of an (H, V) direction Aᵀ B, which ``addmm_`` folds into the
            momentum buffer without writing (and re-reading) the (H, V) product.
        velocity: ``param``'s shape; the momentum buffer, updated in place.
        scale: multiplies ``ascent`` (e.g. 1 / batch when the factors hold sums over the batch).
    """
    if isinstance(ascent, tuple):
        a, b = ascent
        velocity.addmm_(a.t(), b, beta=momentum, alpha=scale)
    else:
        velocity.mul_(momentum).add_(ascent, alpha=scale)
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


# The parameters every layer trainer updates, with their momentum buffers stored as ``velocity.<name>``.
PARAMETERS = ("weight", "hidden_bias", "visible_bias")


class LayerTrainer(abc.ABC):
    """Momentum SGD on one sigmoid layer (an RBM or a DAE): what the greedy layer-wise loop drives.

    A subclass computes the batch's ascent directions in :meth:`step` and hands them to :meth:`_update`,
    which applies the schedule, the momentum warm-up and weight decay (weights only, not biases) with
    :func:`sgd_step`. The resumable state has the same keys for every trainer: ``velocity.weight`` (H, V),
    ``velocity.hidden_bias`` (H,), ``velocity.visible_bias`` (V,) and ``examples_seen`` (a 0-d int64),
    plus the subclass's ``extra_state_keys``.

    Args:
        layer: the model, updated in place (no autograd).
        sgd: learning rate, schedule, momentum warm-up and weight decay.
        total_examples: the training length in examples, for the learning-rate schedule.
        sparsity_cost: beta of a sparsity penalty beta * KL(target || q_j) on each hidden unit's mean
            activation q_j over the batch (Lee, Ekanadham & Ng 2008); 0 turns it off. Each subclass says
            where the penalty's gradient enters its update.
        sparsity_target: the target mean activation rho of that penalty, in (0, 1).
        reducer: how the ascent directions are combined across data-parallel processes before they are
            applied (``unitlens.training.collective``); the default, one process, applies them as they are.

    Attributes:
        velocities: the momentum buffers by parameter name.
        examples_seen: training examples consumed so far, by every process together; drives the schedule
            and the momentum warm-up.
    """

    # Names the trainer in error messages.
    what: ClassVar[str] = "layer trainer"
    # State keys a subclass stores besides the velocities and examples_seen.
    extra_state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        layer: SigmoidLayer,
        sgd: SGDConfig,
        total_examples: int,
        *,
        sparsity_cost: float = 0.0,
        sparsity_target: float = 0.05,
        reducer: Reducer = SINGLE,
    ) -> None:
        if isinstance(total_examples, bool) or not isinstance(total_examples, int) or total_examples < 1:
            raise UnitlensError(f"total_examples must be a positive integer, got {total_examples!r}")
        check_sparsity(sparsity_cost, sparsity_target)
        self.layer, self.sgd, self.total_examples = layer, sgd, total_examples
        self.sparsity_cost, self.sparsity_target = sparsity_cost, sparsity_target
        self.examples_seen = 0
        self.velocities = {name: torch.zeros_like(getattr(layer, name)) for name in PARAMETERS}
        self.reducer = reducer

    @abc.abstractmethod
    def step(self, x: Tensor, generator: torch.Generator) -> float:
        """One parameter update on the batch ``x`` (batch, V); returns the batch's training loss."""

    @torch.no_grad()
    def _update(
        self,
        weight_ascent: Tensor | tuple[Tensor, Tensor],
        hidden_ascent: Tensor,
        visible_ascent: Tensor,
        batch: int,
        *,
        weight_scale: float = 1.0,
    ) -> float:
        """The momentum step of all three parameters (:func:`sgd_step`); then ``batch`` more examples seen.

        Args:
            weight_ascent: (H, V), or its factors; multiplied by ``weight_scale``.
            hidden_ascent: (H,).
            visible_ascent: (V,).

        Returns:
            The learning rate used.
        """
        layer, velocities = self.layer, self.velocities
        world = self.reducer.world
        if world > 1:
            # Data-parallel: the processes' directions are averaged before any is applied. The weight
            # ascent is formed here (one process folds its factors into the momentum buffer instead).
            if isinstance(weight_ascent, tuple):
                a, b = weight_ascent
                weight_ascent = torch.mm(a.t(), b).mul_(weight_scale)
                weight_scale = 1.0
            hidden_ascent, visible_ascent = hidden_ascent.clone(), visible_ascent.clone()
            self.reducer.mean_([weight_ascent, hidden_ascent, visible_ascent])
            batch *= world
        lr = self.sgd.learning_rate_at(self.examples_seen, self.total_examples)
        momentum = self.sgd.momentum_at(self.examples_seen)
        sgd_step(
            layer.weight,
            weight_ascent,
            velocities["weight"],
            lr,
            momentum,
            self.sgd.weight_decay,
            scale=weight_scale,
        )
        sgd_step(layer.hidden_bias, hidden_ascent, velocities["hidden_bias"], lr, momentum)
        sgd_step(layer.visible_bias, visible_ascent, velocities["visible_bias"], lr, momentum)
        self.examples_seen += batch
        return lr

    # ------------------------------------------------------------------ resume

    def _extra_state(self) -> dict[str, Tensor]:
        """Copies of the subclass's state under ``extra_state_keys``."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Tensor]) -> None:  # noqa: B027 (a hook: none by default)
        """Validate, then restore, the subclass's keys of ``state``; change nothing if it raises."""

    def state_dict(self) -> dict[str, Tensor]:
        """Copies of everything an exact resume needs besides the layer's own ``state_dict`` and the
        generator: the momentum buffers, ``examples_seen`` and the subclass's extra state."""
        state = {f"velocity.{name}": v.clone() for name, v in self.velocities.items()}
        state["examples_seen"] = torch.tensor(self.examples_seen, dtype=torch.int64)
        state.update(self._extra_state())
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore a :meth:`state_dict` of a trainer of the same kind, for a layer of the same shape.

        Raises:
            UnitlensError: keys or shapes do not match this trainer (nothing is changed then).
        """
        expected = {f"velocity.{name}" for name in PARAMETERS} | {"examples_seen", *self.extra_state_keys}
        missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unknown:
            raise UnitlensError(
                f"{self.what} state has keys {sorted(state)}: missing {missing}, unknown {unknown}; expected "
                f"{sorted(expected)}. It was saved by another kind of trainer or another unitlens version: "
                "delete the in-progress checkpoint to train the layer afresh"
            )
        for name, own in self.velocities.items():
            saved = state[f"velocity.{name}"]
            if saved.shape != own.shape:
                raise UnitlensError(
                    f"{self.what} state 'velocity.{name}' has shape {tuple(saved.shape)}, "
                    f"expected {tuple(own.shape)}"
                )
        if state["examples_seen"].numel() != 1:
            raise UnitlensError(
                f"{self.what} state 'examples_seen' must hold one count, got shape "
                f"{tuple(state['examples_seen'].shape)}"
            )
        self._load_extra_state(state)
        for name, own in self.velocities.items():
            own.copy_(state[f"velocity.{name}"])
        self.examples_seen = int(state["examples_seen"])
