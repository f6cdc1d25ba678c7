"""How the layer trainers combine their updates across data-parallel processes.

Greedy pre-training runs data-parallel under ``torch.distributed`` (``torchrun``; gloo on CPUs, NCCL on
GPUs): every process draws its own batches and computes its batch's ascent directions, and the directions
are averaged over the processes before any of them is applied, so every process applies the same update
and the layers stay identical everywhere. With equal batch sizes the average of the processes' batch
means is the mean over all their examples: one step on a batch ``world`` times as large.

The trainers take a :class:`Reducer`. :data:`SINGLE` (one process) does nothing, so a one-process run is
exactly what it was before data parallelism; :class:`ProcessGroupReducer` averages over the default process
group with one ``all_reduce`` per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from unitlens.errors import UnitlensError

__all__ = ["SINGLE", "ProcessGroupReducer", "Reducer", "SingleProcess", "reducer_for_process_group"]


class Reducer(Protocol):
    """Combines tensors of the same shapes across the processes of a data-parallel run."""

    @property
    def world(self) -> int:
        """The number of processes (1: no other process)."""
        ...

    def mean_(self, tensors: Sequence[Tensor]) -> None:
        """Replace each tensor, in place, by its mean over the processes."""
        ...

    def sum_(self, tensors: Sequence[Tensor]) -> None:
        """Replace each tensor, in place, by its sum over the processes."""
        ...


class SingleProcess:
    """One process: nothing to combine."""

    world = 1

    def mean_(self, tensors: Sequence[Tensor]) -> None:
        del tensors

    def sum_(self, tensors: Sequence[Tensor]) -> None:
        del tensors


SINGLE = SingleProcess()
"""The reducer of a run in one process."""


class ProcessGroupReducer:
    """Averages (or sums) over the default ``torch.distributed`` process group, which must be initialised.

    The tensors travel in one flat buffer, so a call is one collective whatever their number: the weight
    ascent (H, V) and the two bias ascents of a layer go together.
    """

    def __init__(self) -> None:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise UnitlensError(
                "data-parallel training needs an initialised torch.distributed process group "
                "(launch with torchrun, or call torch.distributed.init_process_group first)"
            )
        self._dist = dist
        self._world = dist.get_world_size()

    @property
    def world(self) -> int:
        return self._world

    def _all_reduce_(self, tensors: Sequence[Tensor], divide: bool) -> None:
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self._dist.all_reduce(flat)
        if divide:
            flat.div_(self._world)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def mean_(self, tensors: Sequence[Tensor]) -> None:
        self._all_reduce_(tensors, divide=True)

    def sum_(self, tensors: Sequence[Tensor]) -> None:
        self._all_reduce_(tensors, divide=False)


def reducer_for_process_group() -> Reducer:
    """:class:`ProcessGroupReducer` when a process group of more than one process is running, else
    :data:`SINGLE`."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return ProcessGroupReducer()
    return SINGLE
