"""Dealing a layer's units out to the processes of a run, and joining what they computed.

Under torchrun (``unitlens.distributed``) the costly per-unit methods of a study, activation maximization
(the trained stack's and the shuffled control's, the step size's trial runs included) and the search for
dataset exemplars, run on one block of the layer's units per process; the blocks are then joined in unit
order on every process, and everything after that runs as in one process. The results do not depend on
the number of processes: a unit's AM starts come from its own seed (``unitlens.visualize.seeding``), the
step size is chosen on the layer's reference units (their trial runs dealt out the same way), and every
process draws from the run's generator in the same order, so each unit follows the path it follows in one
process (equal up to float rounding, as batching is). Exemplars are an exact search per unit. Clamped
sampling draws every chain of a layer from one generator, so it is not dealt out: each process runs it
whole, identically.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from unitlens.distributed import World, all_gather
from unitlens.visualize.exemplars import Exemplars

__all__ = ["UnitDealer", "deals", "join_exemplars", "my_block"]


def deals(n_units: int, world: World) -> bool:
    """Whether ``n_units`` units are dealt out: more than one process, and at least one unit for each."""
    return world.size > 1 and n_units >= world.size


def my_block(units: Any, world: World) -> Any:
    """This process's contiguous block of ``units`` (a list or a tensor); blocks differ in size by one at
    most, so none is empty when there are at least as many units as processes (``deals``)."""
    n = len(units)
    return units[world.rank * n // world.size : (world.rank + 1) * n // world.size]


@dataclasses.dataclass(frozen=True)
class UnitDealer:
    """``unitlens.visualize.activation_maximization.Dealer`` over a world of processes."""

    world: World

    def block(self, units: list[int]) -> list[int]:
        return list(my_block(units, self.world)) if deals(len(units), self.world) else units

    def gather(self, value: Any) -> list[Any]:
        return all_gather(self.world, value)


def join_exemplars(world: World, part: Exemplars) -> Exemplars:
    """Every process's exemplars of its block, joined in unit order, on every process."""
    parts: list[Exemplars] = all_gather(world, part)
    return dataclasses.replace(
        parts[0],
        units=torch.cat([p.units for p in parts]),
        indices=torch.cat([p.indices for p in parts]),
        activations=torch.cat([p.activations for p in parts]),
    )
