"""Dealing a layer's units out to the processes of a run, and joining what they computed.

Under torchrun (``unitlens.distributed``) the costly per-unit methods of a study, activation maximization
(the trained stack's and the shuffled control's) and the search for dataset exemplars, run on one block of
the layer's units per process; the blocks are then joined in unit order on every process, and everything
after that runs as in one process. The results do not depend on the number of processes: a unit's AM
starts come from its own seed (``unitlens.visualize.seeding``), the step size is chosen on the layer's
reference units whatever units a process asks for, and every process draws from the run's generator in
the same order, so each unit follows the path it follows in one process (equal up to float rounding, as
batching is). Exemplars are an exact search per unit. Clamped sampling draws every chain of a layer from
one generator, so it is not dealt out: each process runs it whole, identically.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from unitlens.distributed import World, all_gather
from unitlens.visualize.activation_maximization import AMResult
from unitlens.visualize.exemplars import Exemplars

__all__ = ["deals", "join_am", "join_exemplars", "my_block"]


def deals(units: Tensor, world: World) -> bool:
    """Whether the units are dealt out: more than one process, and at least one unit for each."""
    return world.size > 1 and units.numel() >= world.size


def my_block(units: Tensor, world: World) -> Tensor:
    """This process's contiguous block of ``units``; blocks differ in size by one at most, so none is
    empty when there are at least as many units as processes (``deals``)."""
    n = units.numel()
    return units[world.rank * n // world.size : (world.rank + 1) * n // world.size]


def _held(history: Tensor, rows: int) -> Tensor:
    """``history`` (S + 1, U, R) extended to ``rows`` rows by holding its last row (a stopped restart's
    final value is held: ``AMResult.history``)."""
    extra = rows - history.shape[0]
    if extra <= 0:
        return history
    return torch.cat([history, history[-1:].expand(extra, *history.shape[1:])])


def join_am(world: World, part: AMResult) -> AMResult:
    """Every process's AM result on its block, joined in unit order, on every process."""
    parts: list[AMResult] = all_gather(world, part)
    rows = max(p.history.shape[0] for p in parts)
    first = parts[0]
    return dataclasses.replace(
        first,
        units=torch.cat([p.units for p in parts]),
        x=torch.cat([p.x for p in parts]),
        activation=torch.cat([p.activation for p in parts]),
        steps=torch.cat([p.steps for p in parts]),
        converged=torch.cat([p.converged for p in parts]),
        history=torch.cat([_held(p.history, rows) for p in parts], dim=1),
        best=torch.cat([p.best for p in parts]),
        start_gradient_norm=torch.cat([p.start_gradient_norm for p in parts]),
        stationarity=torch.cat([p.stationarity for p in parts]),
        snapshots=None if first.snapshots is None else torch.cat([p.snapshots for p in parts], dim=1),  # type: ignore[misc]
    )


def join_exemplars(world: World, part: Exemplars) -> Exemplars:
    """Every process's exemplars of its block, joined in unit order, on every process."""
    parts: list[Exemplars] = all_gather(world, part)
    return dataclasses.replace(
        parts[0],
        units=torch.cat([p.units for p in parts]),
        indices=torch.cat([p.indices for p in parts]),
        activations=torch.cat([p.activations for p in parts]),
    )
